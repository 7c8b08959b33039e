//! Config changes that come as JSON: the whole config (`PUT /api/config`)
//! or a partial one merged into the running config (RFC 7396 JSON merge
//! patch: `PATCH /api/config`, MQTT `config.set`). Both end as TOML text
//! checked by [`Config::parse`], so they meet exactly the rules a file
//! meets; errors then name the key path instead of a line.

use std::path::Path;

use serde_json::{Map, Value};

use super::{Config, ConfigError};

/// What errors name as the "file" of a config that came as JSON.
pub const JSON_SOURCE: &str = "request";

impl Config {
    /// A whole config given as JSON, in the shape of the TOML file.
    pub fn from_json(value: &Value) -> Result<Config, ConfigError> {
        let text = toml::to_string(value).map_err(|e| ConfigError {
            file: JSON_SOURCE.into(),
            line: None,
            key: None,
            message: format!("not a config: {e}"),
        })?;
        Config::parse(&text, Path::new(JSON_SOURCE)).map_err(|e| ConfigError { line: None, ..e })
    }

    /// This config as JSON, in the shape of the TOML file.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// This config with `patch` merged in (RFC 7396), validated.
    ///
    /// One extension, since streams are an array and a merge patch replaces
    /// arrays whole: `stream` may also be an object keyed by stream name,
    /// whose entries are merged into the stream of that name (`null`
    /// removes it, a new name adds a stream).
    pub fn patched(&self, patch: &Value) -> Result<Config, ConfigError> {
        let mut target = self.to_json();
        apply_patch(&mut target, patch).map_err(|message| ConfigError {
            file: JSON_SOURCE.into(),
            line: None,
            key: Some("stream".into()),
            message,
        })?;
        Config::from_json(&target)
    }
}

fn apply_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if let Some(Value::Object(by_name)) = fields.get("stream") {
        let mut rest = fields.clone();
        rest.remove("stream");
        merge(target, &Value::Object(rest));
        return patch_streams(target, by_name);
    }
    merge(target, patch);
    Ok(())
}

/// RFC 7396 section 2.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (key, value) in fields {
        if value.is_null() {
            t.remove(key);
        } else {
            merge(t.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn patch_streams(target: &mut Value, by_name: &Map<String, Value>) -> Result<(), String> {
    let Value::Object(t) = target else {
        return Err("the config is not an object".into());
    };
    let streams = t
        .entry("stream")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(list) = streams else {
        return Err("`stream` is not an array".into());
    };
    for (name, patch) in by_name {
        let at = list
            .iter()
            .position(|s| s.get("name").and_then(Value::as_str) == Some(name));
        match (at, patch.is_null()) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => return Err(format!("no stream named `{name}` to remove")),
            (Some(i), false) => {
                merge(&mut list[i], patch);
                list[i]["name"] = Value::String(name.clone());
            }
            (None, false) => {
                let mut stream = Value::Object(Map::new());
                merge(&mut stream, patch);
                stream["name"] = Value::String(name.clone());
                list.push(stream);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> Config {
        Config::parse(
            r#"
[agent]
device_id = "edge"

[[stream]]
name = "a"
source = { kind = "test", width = 320, height = 240 }

[[stream]]
name = "b"
source = { kind = "test" }
"#,
            Path::new("x.toml"),
        )
        .unwrap()
    }

    #[test]
    fn a_config_round_trips_through_json() {
        let c = base();
        assert_eq!(Config::from_json(&c.to_json()).unwrap(), c);
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut v = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge(&mut v, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(v, json!({"a": "z", "c": {"d": "e"}}));
        let mut v = json!([1, 2]);
        merge(&mut v, &json!({"a": 1}));
        assert_eq!(v, json!({"a": 1}));
    }

    #[test]
    fn streams_are_patched_by_name() {
        let c = base()
            .patched(&json!({
                "rtsp": {"max_sessions": 7},
                "stream": {
                    "a": {"record": {"enabled": true}},
                    "b": null,
                    "c": {"source": {"kind": "test", "fps": 10}}
                }
            }))
            .unwrap();
        assert_eq!(c.rtsp.max_sessions, 7);
        let names: Vec<&str> = c.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert!(c.streams[0].record.enabled);
        assert_eq!(c.streams[0].source, base().streams[0].source);
    }

    #[test]
    fn a_bad_patch_names_the_key_path() {
        let e = base()
            .patched(&json!({"stream": {"a": {"source": {"fps": 0}}}}))
            .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("stream[0].source.fps"));
        assert_eq!(e.line, None);
        let e = base().patched(&json!({"rtsp": {"listen": 5}})).unwrap_err();
        assert!(e.to_string().contains("listen"), "{e}");
        let e = base()
            .patched(&json!({"stream": {"zz": null}}))
            .unwrap_err();
        assert!(e.message.contains("zz"), "{e}");
    }
}
