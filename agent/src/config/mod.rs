//! The agent's configuration: TOML, unknown keys refused, and every error
//! names the file, the line and the key.

pub mod audio;
mod edit;
pub mod http;
mod locate;
pub mod mqtt;
pub mod persist;
pub mod record;
pub mod rtsp;
pub mod source;
pub mod uplink;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use audio::{AudioConfig, AudioKind};
pub use edit::JSON_SOURCE;
pub use http::{HlsConfig, HttpAuthConfig, HttpConfig};
pub use mqtt::{MqttConfig, MqttProtocol};
pub use record::{FsyncPolicy, RecordConfig, RecordingConfig};
pub use rtsp::{RtspAuthConfig, RtspAuthMethod, RtspConfig, User};
pub use source::{
    CaptureFormat, EncoderChoice, ExecFormat, ExecSourceConfig, PullTransport, RtspSourceConfig,
    SourceConfig, SourceKind, TestFormat, TestSourceConfig, V4l2SourceConfig,
};
pub use uplink::{UplinkConfig, UplinkProtocol};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub agent: AgentConfig,
    #[serde(default)]
    pub rtsp: RtspConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub hls: HlsConfig,
    #[serde(default)]
    pub recording: RecordingConfig,
    /// Remote control through a broker; none when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttConfig>,
    #[serde(default, rename = "stream")]
    pub streams: Vec<StreamConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub device_id: String,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    pub name: String,
    pub source: SourceConfig,
    /// A microphone beside a camera (`v4l2` sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioConfig>,
    #[serde(default)]
    pub record: RecordConfig,
    /// Where the stream is pushed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uplink: Vec<UplinkConfig>,
}

/// A configuration problem: where it is and what is wrong.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// Dotted key path such as `stream[0].source.width`, when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A semantic problem found after parsing: the key path and the message.
pub type Invalid = (String, String);

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`; `file` only names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => (
                    Some(locate::line_of(text, span.start)),
                    locate::key_before(text, span.start),
                ),
                None => (None, None),
            };
            ConfigError {
                file: file.to_owned(),
                line,
                key,
                message: e.message().trim().to_owned(),
            }
        })?;
        config.validate().map_err(|(key, message)| ConfigError {
            file: file.to_owned(),
            line: locate::line_of_path(text, &key),
            key: Some(key),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), Invalid> {
        if self.agent.device_id.is_empty() || !is_name(&self.agent.device_id) {
            return Err((
                "agent.device_id".into(),
                "must be 1-64 characters of A-Z a-z 0-9 _ -".into(),
            ));
        }
        self.rtsp.validate()?;
        self.http.validate()?;
        self.hls.validate()?;
        self.recording.validate()?;
        if let Some(m) = &self.mqtt {
            m.validate()?;
        }
        let mut names = HashSet::new();
        for (i, s) in self.streams.iter().enumerate() {
            if !is_name(&s.name) {
                return Err((
                    format!("stream[{i}].name"),
                    format!("`{}` must be 1-64 characters of A-Z a-z 0-9 _ -", s.name),
                ));
            }
            if RESERVED_NAMES.contains(&s.name.as_str()) {
                return Err((
                    format!("stream[{i}].name"),
                    format!(
                        "`{}` is reserved for the HTTP server's own routes ({})",
                        s.name,
                        RESERVED_NAMES.join(", ")
                    ),
                ));
            }
            if !names.insert(s.name.as_str()) {
                return Err((
                    format!("stream[{i}].name"),
                    format!("stream `{}` is defined twice", s.name),
                ));
            }
            s.source
                .validate()
                .map_err(|(k, m)| (format!("stream[{i}].source.{k}"), m))?;
            if let Some(a) = &s.audio {
                if s.source.kind() != SourceKind::V4l2 {
                    return Err((
                        format!("stream[{i}].audio"),
                        "only a `v4l2` source takes a separate microphone".into(),
                    ));
                }
                a.validate()
                    .map_err(|(k, m)| (format!("stream[{i}].audio.{k}"), m))?;
            }
            s.record
                .validate()
                .map_err(|(k, m)| (format!("stream[{i}].record.{k}"), m))?;
            for (j, u) in s.uplink.iter().enumerate() {
                u.validate()
                    .map_err(|(k, m)| (format!("stream[{i}].uplink[{j}].{k}"), m))?;
            }
        }
        if self.rtsp.listen.port() != 0 && self.rtsp.listen == self.http.listen {
            return Err(("http.listen".into(), "must differ from rtsp.listen".into()));
        }
        Ok(())
    }
}

/// Top-level HTTP routes: a stream of that name would hide them, since
/// HLS is served under `/<stream>/`.
pub const RESERVED_NAMES: [&str; 4] = ["api", "recordings", "metrics", "assets"];

/// Stream names and device ids go into URLs, paths and MQTT topics.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[agent]
device_id = "edge-01"
data_dir = "./data"

[rtsp]
listen = "0.0.0.0:8554"

[http]
listen = "0.0.0.0:8888"

[[stream]]
name = "cam"
source = { kind = "test", width = 1280, height = 720, fps = 30, bitrate_kbps = 2000, audio = true }
"#;

    fn err(text: &str) -> ConfigError {
        Config::parse(text, Path::new("x.toml")).unwrap_err()
    }

    #[test]
    fn the_issue_example_parses() {
        let c = Config::parse(GOOD, Path::new("x.toml")).unwrap();
        assert_eq!(c.streams.len(), 1);
        assert_eq!(c.rtsp.listen.port(), 8554);
        let SourceConfig::Test(t) = &c.streams[0].source else {
            panic!("not a test source");
        };
        assert_eq!((t.width, t.height, t.fps), (1280, 720, 30));
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = GOOD.replace("[rtsp]\n", "[rtsp]\nlisten_port = 1\n");
        let e = err(&text);
        assert_eq!(e.line, Some(7));
        assert_eq!(e.key.as_deref(), Some("listen_port"));
        let shown = e.to_string();
        assert!(shown.starts_with("x.toml:7"), "{shown}");
        assert!(shown.contains("unknown field"), "{shown}");
    }

    #[test]
    fn bad_value_inside_an_inline_table_names_its_key() {
        let text = GOOD.replace("fps = 30", "fps = \"fast\"");
        let e = err(&text);
        assert_eq!(e.line, Some(14));
        assert_eq!(e.key.as_deref(), Some("fps"));
    }

    #[test]
    fn semantic_errors_are_located() {
        let text = GOOD.replace("width = 1280", "width = 1281");
        let e = err(&text);
        assert_eq!(e.key.as_deref(), Some("stream[0].source.width"));
        assert_eq!(e.line, Some(14));
        let text = format!("{GOOD}\n[[stream]]\nname = \"cam\"\nsource = {{ kind = \"test\" }}\n");
        let e = err(&text);
        assert_eq!(e.key.as_deref(), Some("stream[1].name"));
        assert_eq!(e.line, Some(17));
    }

    #[test]
    fn each_source_kind_takes_only_its_own_keys() {
        let exec = GOOD.replace(
            "source = { kind = \"test\", width = 1280, height = 720, fps = 30, bitrate_kbps = 2000, audio = true }",
            "source = { kind = \"exec\", command = [\"ffmpeg\", \"-i\", \"x\"], stall_seconds = 3 }",
        );
        let c = Config::parse(&exec, Path::new("x.toml")).unwrap();
        let SourceConfig::Exec(e) = &c.streams[0].source else {
            panic!("not an exec source");
        };
        assert_eq!(e.format, ExecFormat::Mpegts);
        assert_eq!(e.stall_seconds, 3);
        let e = err(&exec.replace("stall_seconds = 3", "width = 640"));
        assert_eq!(e.key.as_deref(), Some("stream[0].source.width"));
        assert_eq!(e.line, Some(14));
        assert!(e.message.contains("`exec` source"), "{}", e.message);
        let e = err(&GOOD.replace("audio = true", "audio = true, command = [\"x\"]"));
        assert_eq!(e.key.as_deref(), Some("stream[0].source.command"));
        let e = err(&exec.replace("stall_seconds = 3", "format = \"h264\""));
        assert_eq!(e.key.as_deref(), Some("stream[0].source.fps"));
        let e = err(&exec.replace("stall_seconds = 3", "format = \"avi\""));
        assert_eq!(e.key.as_deref(), Some("stream[0].source.format"));
        assert_eq!(e.line, Some(14));
    }

    #[test]
    fn values_that_would_overflow_are_refused_with_their_place() {
        for (table, line, key) in [
            (
                "[recording]\nmax_age_hours = 9223372036854775807\n",
                "max_age_hours",
                "recording.max_age_hours",
            ),
            (
                "[rtsp]\nmax_sessions = 9223372036854775807\n",
                "max_sessions",
                "rtsp.max_sessions",
            ),
            (
                "[rtsp]\nmax_connections_per_client = 0\n",
                "max_connections_per_client",
                "rtsp.max_connections_per_client",
            ),
            (
                "[recording]\nqueue_seconds = 0\n",
                "queue_seconds",
                "recording.queue_seconds",
            ),
            (
                "[http]\nmax_connections = 0\n",
                "max_connections",
                "http.max_connections",
            ),
            (
                "[http]\nheader_timeout_seconds = 99999\n",
                "header_timeout_seconds",
                "http.header_timeout_seconds",
            ),
        ] {
            let section = table.lines().next().unwrap();
            let text = if GOOD.contains(section) {
                GOOD.replace(&format!("{section}\n"), table)
            } else {
                format!("{table}{GOOD}")
            };
            let e = err(&text);
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            let expected_line = text.lines().position(|l| l.starts_with(line)).unwrap() + 1;
            assert_eq!(e.line, Some(expected_line), "{e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("x.toml:{expected_line}")),
                "{e}"
            );
        }
    }

    #[test]
    fn stream_names_of_http_routes_are_refused() {
        let e = err(&GOOD.replace("name = \"cam\"", "name = \"metrics\""));
        assert_eq!(e.key.as_deref(), Some("stream[0].name"));
        assert!(e.message.contains("reserved"), "{}", e.message);
    }

    #[test]
    fn the_test_pattern_comes_in_a_cameras_formats() {
        let format =
            |text: &str| match &Config::parse(text, Path::new("x.toml")).unwrap().streams[0].source
            {
                SourceConfig::Test(t) => t.format,
                _ => panic!("not a test source"),
            };
        assert_eq!(format(GOOD), TestFormat::Yu12);
        let mjpeg = GOOD.replace("audio = true", "audio = true, format = \"mjpeg\"");
        assert_eq!(format(&mjpeg), TestFormat::Mjpeg);
        assert_eq!(
            format(&mjpeg.replace("\"mjpeg\"", "\"yuyv\"")),
            TestFormat::Yuyv
        );
        // Written back (API, config file) with the key.
        let written =
            toml::to_string(&Config::parse(&mjpeg, Path::new("x.toml")).unwrap().streams[0].source)
                .unwrap();
        assert!(written.contains("format = \"mjpeg\""), "{written}");
        let e = err(&mjpeg.replace("\"mjpeg\"", "\"nv12\""));
        assert_eq!(e.key.as_deref(), Some("stream[0].source.format"), "{e}");
        assert!(e.message.contains("yu12, yuyv, mjpeg"), "{e}");
        assert_eq!(e.line, Some(14), "{e}");
    }

    #[test]
    fn a_camera_with_a_microphone() {
        let text = GOOD.replace(
            "source = { kind = \"test\", width = 1280, height = 720, fps = 30, bitrate_kbps = 2000, audio = true }",
            "source = { kind = \"v4l2\", device = \"/dev/video0\", width = 640, height = 480, format = \"mjpeg\", controls = { brightness = 128 }, encoder = \"openh264\" }\naudio = { kind = \"alsa\", device = \"hw:1,0\", rate = 44100, channels = 2 }",
        );
        let c = Config::parse(&text, Path::new("x.toml")).unwrap();
        let SourceConfig::V4l2(v) = &c.streams[0].source else {
            panic!("not a v4l2 source");
        };
        assert_eq!((v.width, v.height, v.fps), (640, 480, 30));
        assert_eq!(
            v.format,
            CaptureFormat(Some(streamswitch_hal::PixelFormat::Mjpeg))
        );
        assert_eq!(v.encoder, EncoderChoice::Openh264);
        assert_eq!(v.controls.get("brightness"), Some(&128));
        let a = c.streams[0].audio.as_ref().unwrap();
        assert_eq!(
            (a.device.as_str(), a.rate, a.channels),
            ("hw:1,0", 44100, 2)
        );

        let e = err(&text.replace("\"mjpeg\"", "\"h265\""));
        assert_eq!(e.key.as_deref(), Some("stream[0].source.format"), "{e}");
        assert!(e.message.contains("yuyv"), "{e}");
        assert_eq!(e.line, Some(14), "{e}");
        let e = err(&text.replace("rate = 44100", "rate = 44000"));
        assert_eq!(e.key.as_deref(), Some("stream[0].audio.rate"), "{e}");
        let e = err(&text.replace("\"/dev/video0\"", "\"video0\""));
        assert_eq!(e.key.as_deref(), Some("stream[0].source.device"), "{e}");
        // A microphone goes with a camera only.
        let e = err(&format!(
            "{GOOD}audio = {{ kind = \"alsa\", device = \"hw:1,0\" }}\n"
        ));
        assert_eq!(e.key.as_deref(), Some("stream[0].audio"), "{e}");
        // The exec source's format names are its own.
        let e = err(&GOOD.replace(
            "kind = \"test\", width = 1280, height = 720, fps = 30, bitrate_kbps = 2000, audio = true",
            "kind = \"exec\", command = [\"x\"], format = \"mjpeg\"",
        ));
        assert_eq!(e.key.as_deref(), Some("stream[0].source.format"), "{e}");
        assert!(e.message.contains("mpegts"), "{e}");
    }
}
