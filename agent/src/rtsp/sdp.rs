//! The session description (RFC 4566) a DESCRIBE returns: one media
//! section per track, H.264 as RFC 6184 says, H.265 as RFC 7798 says, AAC
//! as RFC 3640 says, MJPEG as RFC 2435 says.

use std::fmt::Write;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::rtp;
use crate::media::{StreamInfo, TrackParams};

/// The RTP payload type of track `index`: JPEG's static type 26 (the one
/// every MJPEG client knows), otherwise dynamic types from 96.
pub fn payload_type(index: usize, params: &TrackParams) -> u8 {
    match params {
        TrackParams::Jpeg(_) => rtp::jpeg::PAYLOAD_TYPE,
        _ => 96 + (index as u8 & 0x1f),
    }
}

/// The `a=control` value of track `index`, relative to the Content-Base.
pub fn track_control(index: usize) -> String {
    format!("trackID={index}")
}

/// The SDP of `info`. `session_id` goes in the origin line, `ip` is the
/// address the client reached us on.
pub fn describe(info: &StreamInfo, name: &str, session_id: u64, ip: &str) -> String {
    let family = if ip.contains(':') { "IP6" } else { "IP4" };
    let mut s = String::with_capacity(512);
    let _ = write!(
        s,
        "v=0\r\no=- {session_id} 1 IN {family} {ip}\r\ns={name}\r\nc=IN {family} {}\r\nt=0 0\r\na=tool:StreamSwitch\r\na=range:npt=now-\r\na=control:*\r\n",
        if family == "IP4" { "0.0.0.0" } else { "::" }
    );
    for (i, track) in info.tracks.iter().enumerate() {
        let pt = payload_type(i, &track.params);
        match &track.params {
            TrackParams::H264(p) => {
                let _ = write!(
                    s,
                    "m=video 0 RTP/AVP {pt}\r\na=rtpmap:{pt} H264/{}\r\na=fmtp:{pt} packetization-mode=1",
                    track.clock_rate
                );
                if let Some(pli) = p.profile_level_id() {
                    let _ = write!(
                        s,
                        ";profile-level-id={:02X}{:02X}{:02X}",
                        pli[0], pli[1], pli[2]
                    );
                }
                let _ = write!(
                    s,
                    ";sprop-parameter-sets={},{}\r\n",
                    BASE64.encode(&p.sps),
                    BASE64.encode(&p.pps)
                );
                if p.width > 0 && p.height > 0 {
                    let _ = write!(s, "a=framesize:{pt} {}-{}\r\n", p.width, p.height);
                }
            }
            TrackParams::H265(p) => {
                let ptl = p.profile();
                let _ = write!(
                    s,
                    "m=video 0 RTP/AVP {pt}\r\na=rtpmap:{pt} H265/{}\r\na=fmtp:{pt} profile-space={};profile-id={};tier-flag={};level-id={};sprop-vps={};sprop-sps={};sprop-pps={}\r\n",
                    track.clock_rate,
                    ptl.profile_space,
                    ptl.profile_idc,
                    u8::from(ptl.tier),
                    ptl.level_idc,
                    BASE64.encode(&p.vps),
                    BASE64.encode(&p.sps),
                    BASE64.encode(&p.pps)
                );
                if p.width > 0 && p.height > 0 {
                    let _ = write!(s, "a=framesize:{pt} {}-{}\r\n", p.width, p.height);
                }
            }
            TrackParams::Aac(p) => {
                let config: String = p.config.iter().map(|b| format!("{b:02X}")).collect();
                let _ = write!(
                    s,
                    "m=audio 0 RTP/AVP {pt}\r\na=rtpmap:{pt} mpeg4-generic/{}/{}\r\na=fmtp:{pt} streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={config}\r\n",
                    track.clock_rate, p.channels
                );
            }
            TrackParams::Jpeg(p) => {
                let _ = write!(
                    s,
                    "m=video 0 RTP/AVP {pt}\r\na=rtpmap:{pt} JPEG/{}\r\na=framesize:{pt} {}-{}\r\n",
                    track.clock_rate, p.width, p.height
                );
            }
        }
        let _ = write!(s, "a=control:{}\r\n", track_control(i));
    }
    s
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn h264_and_aac_tracks_are_described() {
        let info = crate::media::test_stream_info();
        let sdp = describe(&info, "cam", 42, "127.0.0.1");
        let lines: Vec<&str> = sdp.split("\r\n").collect();
        assert_eq!(lines[0], "v=0");
        assert!(lines.contains(&"o=- 42 1 IN IP4 127.0.0.1"));
        assert!(lines.contains(&"s=cam"));
        assert!(lines.contains(&"m=video 0 RTP/AVP 96"));
        assert!(lines.contains(&"a=rtpmap:96 H264/90000"));
        assert!(lines.contains(
            &"a=fmtp:96 packetization-mode=1;profile-level-id=42C01F;sprop-parameter-sets=Z0LAH9o=,aM48gA=="
        ));
        assert!(lines.contains(&"a=control:trackID=0"));
        assert!(lines.contains(&"m=audio 0 RTP/AVP 97"));
        assert!(lines.contains(&"a=rtpmap:97 mpeg4-generic/48000/1"));
        assert!(lines.contains(&"a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1188"));
        assert!(lines.contains(&"a=control:trackID=1"));
        assert!(sdp.ends_with("\r\n"));
    }

    #[test]
    fn mjpeg_takes_the_static_payload_type() {
        let mut info = crate::media::test_stream_info();
        info.tracks[0].params = TrackParams::Jpeg(crate::media::jpeg::JpegParams {
            width: 640,
            height: 480,
        });
        let sdp = describe(&info, "cam", 42, "127.0.0.1");
        let lines: Vec<&str> = sdp.split("\r\n").collect();
        assert!(lines.contains(&"m=video 0 RTP/AVP 26"));
        assert!(lines.contains(&"a=rtpmap:26 JPEG/90000"));
        assert!(lines.contains(&"a=framesize:26 640-480"));
        assert!(lines.contains(&"m=audio 0 RTP/AVP 97"));
    }
}
