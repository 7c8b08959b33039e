//! The RTSP Transport header parser on arbitrary text: never panic, and
//! what it accepts gives a reply that is one header line.

#![no_main]

use libfuzzer_sys::fuzz_target;
use streamswitch::rtsp::transport::{self, Requested};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reply = match transport::parse(text) {
        Some(Requested::Tcp { interleaved }) => {
            transport::reply_tcp(interleaved.unwrap_or((0, 1)), 0x1234_5678)
        }
        Some(Requested::Udp { client_port }) => {
            transport::reply_udp(client_port, (6970, 6971), 0x1234_5678)
        }
        None => return,
    };
    assert!(!reply.contains('\r') && !reply.contains('\n'), "{reply:?}");
});
