//! A stream's `source`: one table per kind, each with its own keys.
//!
//! The table is read through [`SourceSpec`], a flat struct that knows every
//! key of every kind: serde's tagged enums buffer their input and lose the
//! position of a bad value, and every config error must name its line and
//! key. Which keys a kind takes is then checked by [`SourceConfig::validate`],
//! so a key of another kind is refused with its place in the file too.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize, Serializer};
use streamswitch_hal::PixelFormat;

use super::Invalid;

/// What feeds a stream.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(try_from = "SourceSpec")]
pub enum SourceConfig {
    /// The built-in test pattern and tone.
    Test(TestSourceConfig),
    /// Any program that writes a stream to its stdout.
    Exec(ExecSourceConfig),
    /// Another camera or agent, pulled over RTSP (proxy mode).
    Rtsp(RtspSourceConfig),
    /// A camera on this board.
    V4l2(V4l2SourceConfig),
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Test,
    Exec,
    Rtsp,
    V4l2,
}

impl SourceKind {
    fn as_str(self) -> &'static str {
        match self {
            SourceKind::Test => "test",
            SourceKind::Exec => "exec",
            SourceKind::Rtsp => "rtsp",
            SourceKind::V4l2 => "v4l2",
        }
    }

    /// The keys a source of this kind takes, besides `kind`.
    fn keys(self) -> &'static [&'static str] {
        match self {
            SourceKind::Test => &[
                "width",
                "height",
                "fps",
                "bitrate_kbps",
                "audio",
                "keyframe_seconds",
                "format",
                "encoder",
            ],
            SourceKind::Exec => &["command", "format", "fps", "stall_seconds", "env"],
            SourceKind::Rtsp => &["url", "transport", "username", "password", "stall_seconds"],
            SourceKind::V4l2 => &[
                "device",
                "width",
                "height",
                "fps",
                "format",
                "bitrate_kbps",
                "keyframe_seconds",
                "controls",
                "encoder",
            ],
        }
    }
}

/// The `source` table as written: every key of every kind, all optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    kind: SourceKind,
    width: Option<u32>,
    height: Option<u32>,
    fps: Option<u32>,
    bitrate_kbps: Option<u32>,
    audio: Option<bool>,
    keyframe_seconds: Option<f64>,
    command: Option<Vec<String>>,
    /// The exec program's stream format, or the camera's (or the test
    /// pattern's) picture format: read per kind.
    format: Option<String>,
    stall_seconds: Option<u32>,
    env: Option<BTreeMap<String, String>>,
    url: Option<String>,
    transport: Option<PullTransport>,
    username: Option<String>,
    password: Option<String>,
    device: Option<String>,
    controls: Option<BTreeMap<String, i64>>,
    encoder: Option<EncoderChoice>,
}

impl SourceSpec {
    /// The keys present in the table.
    fn written(&self) -> BTreeSet<&'static str> {
        let present = [
            ("width", self.width.is_some()),
            ("height", self.height.is_some()),
            ("fps", self.fps.is_some()),
            ("bitrate_kbps", self.bitrate_kbps.is_some()),
            ("audio", self.audio.is_some()),
            ("keyframe_seconds", self.keyframe_seconds.is_some()),
            ("command", self.command.is_some()),
            ("format", self.format.is_some()),
            ("stall_seconds", self.stall_seconds.is_some()),
            ("env", self.env.is_some()),
            ("url", self.url.is_some()),
            ("transport", self.transport.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("device", self.device.is_some()),
            ("controls", self.controls.is_some()),
            ("encoder", self.encoder.is_some()),
        ];
        present
            .into_iter()
            .filter_map(|(k, p)| p.then_some(k))
            .collect()
    }
}

impl TryFrom<SourceSpec> for SourceConfig {
    type Error = String;

    fn try_from(s: SourceSpec) -> Result<Self, String> {
        let written = s.written();
        // A key of another kind is refused in `validate`, where its place
        // in the file can still be found.
        let mut refused = written
            .iter()
            .find(|k| !s.kind.keys().contains(k))
            .map(|k| {
                (
                    (*k).to_owned(),
                    format!(
                        "unknown key for a `{}` source; its keys are: kind, {}",
                        s.kind.as_str(),
                        s.kind.keys().join(", ")
                    ),
                )
            });
        match s.kind {
            SourceKind::Test => Ok(SourceConfig::Test(TestSourceConfig {
                width: s.width.unwrap_or(1280),
                height: s.height.unwrap_or(720),
                fps: s.fps.unwrap_or(30),
                bitrate_kbps: s.bitrate_kbps.unwrap_or(2000),
                audio: s.audio.unwrap_or(true),
                keyframe_seconds: s.keyframe_seconds.unwrap_or(1.0),
                format: parse_format(s.format.as_deref(), TestFormat::Yu12, &mut refused),
                encoder: s.encoder.unwrap_or(EncoderChoice::Auto),
                refused,
            })),
            SourceKind::Exec => Ok(SourceConfig::Exec(ExecSourceConfig {
                command: s.command.unwrap_or_default(),
                format: parse_format(s.format.as_deref(), ExecFormat::Mpegts, &mut refused),
                fps: s.fps,
                stall_seconds: s.stall_seconds.unwrap_or(5),
                env: s.env.unwrap_or_default(),
                refused,
            })),
            SourceKind::Rtsp => Ok(SourceConfig::Rtsp(RtspSourceConfig {
                url: s.url.unwrap_or_default(),
                transport: s.transport.unwrap_or(PullTransport::Tcp),
                username: s.username,
                password: s.password,
                stall_seconds: s.stall_seconds.unwrap_or(10),
                refused,
            })),
            SourceKind::V4l2 => Ok(SourceConfig::V4l2(V4l2SourceConfig {
                device: s.device.unwrap_or_default(),
                width: s.width.unwrap_or(1280),
                height: s.height.unwrap_or(720),
                fps: s.fps.unwrap_or(30),
                format: parse_format(s.format.as_deref(), CaptureFormat::AUTO, &mut refused),
                bitrate_kbps: s.bitrate_kbps.unwrap_or(2000),
                keyframe_seconds: s.keyframe_seconds.unwrap_or(1.0),
                controls: s.controls.unwrap_or_default(),
                encoder: s.encoder.unwrap_or(EncoderChoice::Auto),
                refused,
            })),
        }
    }
}

/// Reads `format` as the kind's own format names; an unknown one is kept
/// in `refused` (first problem wins) for `validate` to report with its line.
fn parse_format<F: serde::de::DeserializeOwned + Serialize + FormatNames>(
    written: Option<&str>,
    default: F,
    refused: &mut Option<Invalid>,
) -> F {
    let Some(name) = written else {
        return default;
    };
    match F::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(name)) {
        Ok(f) => f,
        Err(_) => {
            refused.get_or_insert_with(|| {
                (
                    "format".into(),
                    format!("`{name}` is not one of: {}", F::NAMES.join(", ")),
                )
            });
            default
        }
    }
}

/// The names a `format` key takes, for the error message.
trait FormatNames {
    const NAMES: &'static [&'static str];
}

impl FormatNames for ExecFormat {
    const NAMES: &'static [&'static str] = &["mpegts", "h264", "h265"];
}

impl FormatNames for TestFormat {
    const NAMES: &'static [&'static str] = &["yu12", "yuyv", "mjpeg"];
}

impl FormatNames for CaptureFormat {
    const NAMES: &'static [&'static str] = &[
        "auto", "h264", "mjpeg", "yuyv", "uyvy", "nv12", "nv21", "yu12", "yv12",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_format_names_are_hals() {
        let mut ours = CaptureFormat::NAMES[1..].to_vec();
        let mut theirs: Vec<&str> = PixelFormat::PREFERENCE.iter().map(|f| f.name()).collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs);
    }
}

/// Written back (the API's view, the file on a config change) as the
/// kind's own table, with every key.
impl Serialize for SourceConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Tagged<'a, T> {
            kind: SourceKind,
            #[serde(flatten)]
            config: &'a T,
        }
        match self {
            SourceConfig::Test(c) => Tagged {
                kind: SourceKind::Test,
                config: c,
            }
            .serialize(serializer),
            SourceConfig::Exec(c) => Tagged {
                kind: SourceKind::Exec,
                config: c,
            }
            .serialize(serializer),
            SourceConfig::Rtsp(c) => Tagged {
                kind: SourceKind::Rtsp,
                config: c,
            }
            .serialize(serializer),
            SourceConfig::V4l2(c) => Tagged {
                kind: SourceKind::V4l2,
                config: c,
            }
            .serialize(serializer),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TestSourceConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub audio: bool,
    /// Seconds between keyframes.
    pub keyframe_seconds: f64,
    /// The pictures the pattern camera delivers.
    pub format: TestFormat,
    /// `auto` (openh264) or `copy` (MJPEG pictures served as they are).
    #[serde(skip_serializing_if = "EncoderChoice::is_auto")]
    pub encoder: EncoderChoice,
    /// A problem found while reading the table (a key of another kind),
    /// reported by `validate`, where its line can be found.
    #[serde(skip)]
    refused: Option<Invalid>,
}

/// How the test pattern reaches the capture pipeline: drawn in I420 for
/// every picture (`yu12`), or as a raw or MJPEG camera delivers it, a few
/// pictures made once and replayed (so the pipeline's conversion or
/// decoding can be measured and tested without a camera).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TestFormat {
    Yu12,
    Yuyv,
    Mjpeg,
}

/// What the exec source's program writes to its stdout.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExecFormat {
    /// MPEG-TS with H.264 or H.265 video and/or AAC (ADTS) audio.
    Mpegts,
    /// Raw H.264 Annex B, paced at `fps`.
    H264,
    /// Raw H.265 Annex B, paced at `fps`.
    H265,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ExecSourceConfig {
    /// The program and its arguments (no shell).
    pub command: Vec<String>,
    pub format: ExecFormat,
    /// Frame rate of a raw `h264` stream (required there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
    /// No frame for this long restarts the program.
    pub stall_seconds: u32,
    /// Added to the agent's environment.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip)]
    refused: Option<Invalid>,
}

impl ExecSourceConfig {
    fn validate(&self) -> Result<(), Invalid> {
        if self.command.first().is_none_or(|c| c.is_empty()) {
            return Err((
                "command".into(),
                "must name a program: [\"prog\", \"arg\", ...]".into(),
            ));
        }
        match (self.format, self.fps) {
            (ExecFormat::H264 | ExecFormat::H265, None) => {
                return Err((
                    "fps".into(),
                    "is required with a raw format (h264, h265)".into(),
                ))
            }
            (_, Some(fps)) if !(1..=120).contains(&fps) => {
                return Err(("fps".into(), "must be 1 to 120".into()))
            }
            _ => {}
        }
        if !(1..=600).contains(&self.stall_seconds) {
            return Err(("stall_seconds".into(), "must be 1 to 600".into()));
        }
        Ok(())
    }
}

/// How a pulled stream's RTP comes: interleaved on the RTSP connection
/// (works through NAT and firewalls) or over UDP.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PullTransport {
    Tcp,
    Udp,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RtspSourceConfig {
    /// `rtsp://[user:pass@]host[:port]/path`.
    pub url: String,
    pub transport: PullTransport,
    /// Credentials, when not in the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// No frame for this long reconnects.
    pub stall_seconds: u32,
    #[serde(skip)]
    refused: Option<Invalid>,
}

impl RtspSourceConfig {
    fn validate(&self) -> Result<(), Invalid> {
        let ok = self
            .url
            .strip_prefix("rtsp://")
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
        if !ok {
            return Err(("url".into(), "must be rtsp://host[:port]/path".into()));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(("username".into(), "is needed with password".into()));
        }
        if !(1..=600).contains(&self.stall_seconds) {
            return Err(("stall_seconds".into(), "must be 1 to 600".into()));
        }
        Ok(())
    }
}

impl SourceConfig {
    pub fn kind(&self) -> SourceKind {
        match self {
            SourceConfig::Test(_) => SourceKind::Test,
            SourceConfig::Exec(_) => SourceKind::Exec,
            SourceConfig::Rtsp(_) => SourceKind::Rtsp,
            SourceConfig::V4l2(_) => SourceKind::V4l2,
        }
    }

    fn refused(&self) -> Option<&Invalid> {
        match self {
            SourceConfig::Test(c) => c.refused.as_ref(),
            SourceConfig::Exec(c) => c.refused.as_ref(),
            SourceConfig::Rtsp(c) => c.refused.as_ref(),
            SourceConfig::V4l2(c) => c.refused.as_ref(),
        }
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if let Some(problem) = self.refused() {
            return Err(problem.clone());
        }
        match self {
            SourceConfig::Test(t) => t.validate(),
            SourceConfig::Exec(e) => e.validate(),
            SourceConfig::Rtsp(r) => r.validate(),
            SourceConfig::V4l2(v) => v.validate(),
        }
    }
}

impl TestSourceConfig {
    fn validate(&self) -> Result<(), Invalid> {
        validate_picture(
            self.width,
            self.height,
            self.fps,
            self.bitrate_kbps,
            self.keyframe_seconds,
        )?;
        match self.encoder {
            EncoderChoice::V4l2m2m => Err((
                "encoder".into(),
                "the test source encodes with openh264 (\"auto\") or sends MJPEG as it is (\"copy\")".into(),
            )),
            EncoderChoice::Copy if self.format != TestFormat::Mjpeg => Err((
                "encoder".into(),
                "\"copy\" sends the pictures as they are coded: it needs format = \"mjpeg\"".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// The picture and encoding settings the test source and cameras share.
fn validate_picture(
    width: u32,
    height: u32,
    fps: u32,
    bitrate_kbps: u32,
    keyframe_seconds: f64,
) -> Result<(), Invalid> {
    let even = |v: u32| (16..=4096).contains(&v) && v % 2 == 0;
    if !even(width) {
        return Err(("width".into(), "must be even, 16 to 4096".into()));
    }
    if !even(height) {
        return Err(("height".into(), "must be even, 16 to 4096".into()));
    }
    if !(1..=120).contains(&fps) {
        return Err(("fps".into(), "must be 1 to 120".into()));
    }
    if !(10..=100_000).contains(&bitrate_kbps) {
        return Err(("bitrate_kbps".into(), "must be 10 to 100000".into()));
    }
    if !(0.1..=60.0).contains(&keyframe_seconds) {
        return Err(("keyframe_seconds".into(), "must be 0.1 to 60".into()));
    }
    Ok(())
}

/// What a camera is asked to deliver: `"auto"` (H.264 if offered, no
/// re-encode; else MJPEG; else raw) or one of hal's pixel formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureFormat(pub Option<PixelFormat>);

impl CaptureFormat {
    pub const AUTO: CaptureFormat = CaptureFormat(None);
}

impl<'de> Deserialize<'de> for CaptureFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if name == "auto" {
            return Ok(Self::AUTO);
        }
        PixelFormat::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&name))
            .map(|f| CaptureFormat(Some(f)))
    }
}

impl Serialize for CaptureFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.map_or("auto", PixelFormat::name))
    }
}

/// Which H.264 encoder turns a camera's pictures into a stream, or none.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EncoderChoice {
    /// A V4L2 mem2mem encoder if the board has one, else openh264.
    Auto,
    V4l2m2m,
    Openh264,
    /// No encoder: the camera's coded pictures (H.264 or MJPEG) are served
    /// as they come. MJPEG then goes out over RTSP (RFC 2435) and into
    /// recordings, not over HLS or RTMP.
    Copy,
}

impl EncoderChoice {
    fn is_auto(&self) -> bool {
        *self == EncoderChoice::Auto
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct V4l2SourceConfig {
    /// `/dev/video0`, or a stable name such as `/dev/v4l/by-id/...`.
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub format: CaptureFormat,
    /// For the encoder (raw and MJPEG cameras).
    pub bitrate_kbps: u32,
    pub keyframe_seconds: f64,
    /// Camera controls by name (`v4l2-ctl --list-ctrls`, lower case).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub controls: BTreeMap<String, i64>,
    pub encoder: EncoderChoice,
    #[serde(skip)]
    refused: Option<Invalid>,
}

impl V4l2SourceConfig {
    fn validate(&self) -> Result<(), Invalid> {
        if !self.device.starts_with('/') {
            return Err((
                "device".into(),
                "must be a device path such as /dev/video0".into(),
            ));
        }
        validate_picture(
            self.width,
            self.height,
            self.fps,
            self.bitrate_kbps,
            self.keyframe_seconds,
        )?;
        if self.encoder == EncoderChoice::Copy
            && !matches!(self.format.0, Some(PixelFormat::Mjpeg | PixelFormat::H264))
        {
            return Err((
                "encoder".into(),
                "\"copy\" sends the camera's coded pictures as they are: it needs format = \"mjpeg\" or \"h264\"".into(),
            ));
        }
        for (name, value) in &self.controls {
            if name.is_empty() || i32::try_from(*value).is_err() {
                return Err((
                    format!("controls.{name}"),
                    "must be a control name with a 32-bit integer value".into(),
                ));
            }
        }
        Ok(())
    }
}
