//! The RTSP framing of arbitrary bytes: never panics, always makes
//! progress, a request cut one byte short is incomplete, and a request
//! written back out frames to the same request.

#![no_main]

use libfuzzer_sys::fuzz_target;
use streamswitch::rtsp::message::{frame, Framed};

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    while !buf.is_empty() {
        let used = match frame(buf) {
            Framed::Incomplete | Framed::Error { consumed: None, .. } => break,
            Framed::Skip(n)
            | Framed::Interleaved { consumed: n, .. }
            | Framed::Error {
                consumed: Some(n), ..
            } => n,
            Framed::Request(request, n) => {
                assert!(matches!(frame(&buf[..n - 1]), Framed::Incomplete));
                let mut written = Vec::new();
                request.write(&mut written).expect("write to a Vec");
                match frame(&written) {
                    Framed::Request(again, m) => {
                        assert_eq!(m, written.len());
                        assert_eq!(*again, *request);
                    }
                    other => panic!("{request:?} written as {written:?} frames as {other:?}"),
                }
                n
            }
        };
        assert!(used > 0 && used <= buf.len());
        buf = &buf[used..];
    }
});
