//! The Transport header (RFC 2326 12.39): what a client asks for in SETUP
//! and what we answer. Unicast RTP over TCP (interleaved) or UDP only.

/// A transport the server can give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requested {
    /// RTP/AVP/TCP; `None` lets the server pick the channels.
    Tcp { interleaved: Option<(u8, u8)> },
    /// RTP/AVP[/UDP] to the client's RTP and RTCP ports.
    Udp { client_port: (u16, u16) },
}

/// The first transport of a (comma-separated) Transport header that we
/// support, or `None` (461 Unsupported Transport).
pub fn parse(header: &str) -> Option<Requested> {
    header.split(',').find_map(parse_one)
}

fn parse_one(spec: &str) -> Option<Requested> {
    let mut parts = spec.split(';').map(str::trim);
    let protocol = parts.next()?.to_ascii_uppercase();
    let tcp = match protocol.as_str() {
        "RTP/AVP" | "RTP/AVP/UDP" => false,
        "RTP/AVP/TCP" => true,
        _ => return None,
    };
    let (mut interleaved, mut client_port) = (None, None);
    for p in parts {
        let (key, value) = p.split_once('=').unwrap_or((p, ""));
        match key.trim().to_ascii_lowercase().as_str() {
            "multicast" => return None,
            "interleaved" => interleaved = Some(pair(value, u8::checked_add)?),
            "client_port" => client_port = Some(pair(value, u16::checked_add)?),
            "mode" => {
                let mode = value.trim().trim_matches('"');
                if !mode.eq_ignore_ascii_case("play") {
                    return None;
                }
            }
            _ => {}
        }
    }
    if tcp {
        Some(Requested::Tcp { interleaved })
    } else {
        Some(Requested::Udp {
            client_port: client_port.filter(|(rtp, _)| *rtp != 0)?,
        })
    }
}

/// `a-b`, or `a` meaning `a-(a+1)`.
fn pair<T>(value: &str, add: fn(T, T) -> Option<T>) -> Option<(T, T)>
where
    T: std::str::FromStr + Copy + From<u8>,
{
    match value.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: T = value.trim().parse().ok()?;
            Some((a, add(a, T::from(1))?))
        }
    }
}

pub fn reply_tcp(channels: (u8, u8), ssrc: u32) -> String {
    format!(
        "RTP/AVP/TCP;unicast;interleaved={}-{};ssrc={ssrc:08X};mode=\"PLAY\"",
        channels.0, channels.1
    )
}

pub fn reply_udp(client: (u16, u16), server: (u16, u16), ssrc: u32) -> String {
    format!(
        "RTP/AVP;unicast;client_port={}-{};server_port={}-{};ssrc={ssrc:08X};mode=\"PLAY\"",
        client.0, client.1, server.0, server.1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_and_udp_requests_are_understood() {
        assert_eq!(
            parse("RTP/AVP/TCP;unicast;interleaved=2-3"),
            Some(Requested::Tcp {
                interleaved: Some((2, 3))
            })
        );
        assert_eq!(
            parse("RTP/AVP/TCP;unicast;mode=\"PLAY\""),
            Some(Requested::Tcp { interleaved: None })
        );
        assert_eq!(
            parse("RTP/AVP;unicast;client_port=5000-5001"),
            Some(Requested::Udp {
                client_port: (5000, 5001)
            })
        );
        assert_eq!(
            parse("rtp/avp/udp;unicast;client_port=6000"),
            Some(Requested::Udp {
                client_port: (6000, 6001)
            })
        );
    }

    #[test]
    fn the_first_supported_transport_wins() {
        assert_eq!(
            parse(
                "RTP/AVP;multicast, RTP/SAVP;unicast;client_port=1-2, RTP/AVP/TCP;interleaved=0-1"
            ),
            Some(Requested::Tcp {
                interleaved: Some((0, 1))
            })
        );
    }

    #[test]
    fn unsupported_or_broken_transports_are_refused() {
        for bad in [
            "",
            "RAW/RAW/UDP;unicast",
            "RTP/AVP;multicast;client_port=5000-5001",
            "RTP/AVP;unicast",
            "RTP/AVP;unicast;client_port=x-y",
            "RTP/AVP;unicast;client_port=65535",
            "RTP/AVP/TCP;interleaved=255",
            "RTP/AVP/TCP;interleaved=300-301",
            "RTP/AVP/TCP;unicast;mode=record",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn replies_name_channels_ports_and_ssrc() {
        assert_eq!(
            reply_tcp((0, 1), 0xab),
            "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=000000AB;mode=\"PLAY\""
        );
        assert_eq!(
            reply_udp((5000, 5001), (6000, 6001), 1),
            "RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001;ssrc=00000001;mode=\"PLAY\""
        );
    }
}
