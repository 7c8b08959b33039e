//! What a request URL names: `rtsp://host:port/<stream>` for the whole
//! stream, `rtsp://host:port/<stream>/trackID=<n>` for one track.

use rtsp_types::Url;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub stream: String,
    pub track: Option<usize>,
}

const TRACK_PREFIX: &str = "trackID=";

pub fn target(url: &Url) -> Option<Target> {
    let path = url.path().trim_matches('/');
    let (stream, track) = match path.rsplit_once('/') {
        Some((stream, last)) if last.starts_with(TRACK_PREFIX) => {
            (stream, Some(last[TRACK_PREFIX.len()..].parse().ok()?))
        }
        _ => (path, None),
    };
    (!stream.is_empty()).then(|| Target {
        stream: stream.to_owned(),
        track,
    })
}

/// The URL of the stream itself, ending with `/` so that relative track
/// controls resolve under it (the Content-Base of a DESCRIBE).
pub fn base(url: &Url, stream: &str) -> String {
    // host_str keeps the brackets of an IPv6 address.
    let host = url.host_str().unwrap_or("localhost");
    match url.port() {
        Some(port) => format!("rtsp://{host}:{port}/{stream}/"),
        None => format!("rtsp://{host}/{stream}/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Option<Target> {
        target(&Url::parse(s).unwrap())
    }

    #[test]
    fn stream_and_track_are_found() {
        let cam = |track| {
            Some(Target {
                stream: "cam".into(),
                track,
            })
        };
        assert_eq!(t("rtsp://h:8554/cam"), cam(None));
        assert_eq!(t("rtsp://h:8554/cam/"), cam(None));
        assert_eq!(t("rtsp://h/cam/trackID=1"), cam(Some(1)));
        assert_eq!(t("rtsp://h/cam?x=1"), cam(None));
        assert_eq!(t("rtsp://h/"), None);
        assert_eq!(t("rtsp://h/cam/trackID=x"), None);
    }

    #[test]
    fn base_ends_with_a_slash() {
        let url = Url::parse("rtsp://127.0.0.1:8554/cam").unwrap();
        assert_eq!(base(&url, "cam"), "rtsp://127.0.0.1:8554/cam/");
    }
}
