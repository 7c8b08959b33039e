//! Commands as they arrive on `cmd/<name>`: a JSON object in, a typed
//! [`Command`] out, or a clear error that names the problem; replies in
//! their one shape. Pure, so every bad payload is unit-tested.

use std::collections::{HashMap, VecDeque};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// Payloads above this are refused, not parsed.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Ids remembered to carry each command out at most once.
const REMEMBERED_IDS: usize = 256;

pub const NAMES: [&str; 9] = [
    "status",
    "record",
    "stream",
    "keyframe",
    "recordings",
    "config.get",
    "config.set",
    "restart",
    "uplink",
];

#[derive(Debug, PartialEq)]
pub enum Command {
    Status,
    Record {
        stream: String,
        enabled: bool,
    },
    Stream {
        stream: String,
        enabled: bool,
    },
    Keyframe {
        stream: String,
    },
    Recordings {
        stream: String,
        from: Option<String>,
        to: Option<String>,
    },
    ConfigGet,
    ConfigSet {
        config: Value,
    },
    Restart,
    Uplink {
        stream: String,
        target: String,
        enabled: bool,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Switch {
    stream: String,
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamOnly {
    stream: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    stream: String,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigArg {
    config: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Nothing {}

/// `target`: the uplink's index (a number or its string) or URL.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UplinkSwitch {
    stream: String,
    target: Value,
    enabled: bool,
}

/// A request: its id (echoed, `null` when absent) and the command, or the
/// error to answer with.
pub struct Request {
    pub id: Value,
    pub command: Result<Command, String>,
}

/// Parses the payload of `cmd/<name>`.
pub fn parse(name: &str, payload: &[u8]) -> Request {
    if payload.len() > MAX_PAYLOAD {
        return Request {
            id: Value::Null,
            command: Err(format!(
                "the payload is {} bytes, over the limit of {MAX_PAYLOAD}",
                payload.len()
            )),
        };
    }
    let mut object = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            return Request {
                id: Value::Null,
                command: Err("the payload must be a JSON object".into()),
            }
        }
        // An empty payload is an empty object: commands without arguments
        // can be sent bare.
        Err(_) if payload.iter().all(u8::is_ascii_whitespace) => serde_json::Map::new(),
        Err(e) => {
            return Request {
                id: Value::Null,
                command: Err(format!("bad JSON: {e}")),
            }
        }
    };
    let id = object.remove("id").unwrap_or(Value::Null);
    let args = Value::Object(object);
    let command = match name {
        "status" => args_of::<Nothing>(args).map(|_| Command::Status),
        "record" => args_of::<Switch>(args).map(|a| Command::Record {
            stream: a.stream,
            enabled: a.enabled,
        }),
        "stream" => args_of::<Switch>(args).map(|a| Command::Stream {
            stream: a.stream,
            enabled: a.enabled,
        }),
        "keyframe" => args_of::<StreamOnly>(args).map(|a| Command::Keyframe { stream: a.stream }),
        "recordings" => args_of::<Range>(args).map(|a| Command::Recordings {
            stream: a.stream,
            from: a.from,
            to: a.to,
        }),
        "config.get" => args_of::<Nothing>(args).map(|_| Command::ConfigGet),
        "config.set" => args_of::<ConfigArg>(args).map(|a| Command::ConfigSet { config: a.config }),
        "restart" => args_of::<Nothing>(args).map(|_| Command::Restart),
        "uplink" => args_of::<UplinkSwitch>(args).and_then(|a| {
            let target = match a.target {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                _ => return Err("bad arguments: `target` is an index or a URL".into()),
            };
            Ok(Command::Uplink {
                stream: a.stream,
                target,
                enabled: a.enabled,
            })
        }),
        other => Err(format!(
            "unknown command `{other}`; the commands are: {}",
            NAMES.join(", ")
        )),
    };
    Request { id, command }
}

fn args_of<T: DeserializeOwned>(args: Value) -> Result<T, String> {
    serde_json::from_value(args).map_err(|e| format!("bad arguments: {e}"))
}

pub fn ok_reply(id: &Value, result: Value) -> Value {
    json!({"id": id, "ok": true, "result": result})
}

pub fn error_reply(id: &Value, error: &str) -> Value {
    json!({"id": id, "ok": false, "error": error})
}

/// The replies of the last [`REMEMBERED_IDS`] requests that had an id: a
/// request sent again is answered again, not carried out again.
#[derive(Default)]
pub struct Replies {
    by_id: HashMap<String, Value>,
    order: VecDeque<String>,
}

impl Replies {
    fn key(name: &str, id: &Value) -> Option<String> {
        (!id.is_null()).then(|| format!("{name}\u{0}{id}"))
    }

    pub fn get(&self, name: &str, id: &Value) -> Option<&Value> {
        self.by_id.get(&Self::key(name, id)?)
    }

    pub fn remember(&mut self, name: &str, id: &Value, reply: &Value) {
        let Some(key) = Self::key(name, id) else {
            return;
        };
        if self.by_id.insert(key.clone(), reply.clone()).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > REMEMBERED_IDS {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(name: &str, payload: &str) -> String {
        parse(name, payload.as_bytes()).command.unwrap_err()
    }

    #[test]
    fn commands_parse_with_their_id() {
        let r = parse("record", br#"{"id": 7, "stream": "cam", "enabled": true}"#);
        assert_eq!(r.id, json!(7));
        assert_eq!(
            r.command.unwrap(),
            Command::Record {
                stream: "cam".into(),
                enabled: true
            }
        );
        assert_eq!(parse("status", b"").command.unwrap(), Command::Status);
        assert_eq!(parse("restart", b"{}").command.unwrap(), Command::Restart);
        assert!(matches!(
            parse("config.set", br#"{"config": {"hls": {"segments": 4}}}"#).command,
            Ok(Command::ConfigSet { .. })
        ));
    }

    #[test]
    fn bad_requests_name_the_problem() {
        assert!(err("record", "{").starts_with("bad JSON"));
        assert!(err("record", "[1]").contains("JSON object"));
        assert!(err("record", r#"{"stream": "cam"}"#).contains("missing field `enabled`"));
        assert!(err("record", r#"{"stream": "cam", "enabled": "yes"}"#).contains("invalid type"));
        assert!(err("record", r#"{"stream": 1, "enabled": true}"#).contains("invalid type"));
        assert!(err("keyframe", r#"{"stream": "a", "x": 1}"#).contains("unknown field `x`"));
        assert!(err("explode", "{}").contains("unknown command `explode`"));
        let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(MAX_PAYLOAD));
        assert!(err("status", &big).contains("over the limit"));
    }

    #[test]
    fn replies_are_remembered_by_id_and_forgotten_after_256() {
        let mut r = Replies::default();
        let reply = ok_reply(&json!("a"), json!(1));
        r.remember("record", &json!("a"), &reply);
        assert_eq!(r.get("record", &json!("a")), Some(&reply));
        assert_eq!(r.get("stream", &json!("a")), None, "ids are per command");
        r.remember("status", &Value::Null, &reply);
        assert_eq!(r.get("status", &Value::Null), None);
        for i in 0..256 {
            r.remember("record", &json!(i), &reply);
        }
        assert_eq!(r.get("record", &json!("a")), None);
        assert!(r.get("record", &json!(255)).is_some());
    }
}
