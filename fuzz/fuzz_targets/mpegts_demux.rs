//! The MPEG-TS demuxer on arbitrary bytes, cut into chunks where the first
//! byte says: never panic, and the same PES packets and errors whatever the
//! chunking. The ADTS parser sees every AAC payload, and the timestamp
//! unwrapper every timestamp.

#![no_main]

use libfuzzer_sys::fuzz_target;
use streamswitch::media::adts;
use streamswitch::media::mpegts::{StreamKind, TimestampUnwrapper, TsDemuxer};

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let mut whole = TsDemuxer::new();
    let mut expected = whole.push(rest);
    expected.extend(whole.flush());

    let mut chunked = TsDemuxer::new();
    let mut got = Vec::new();
    for chunk in rest.chunks(step as usize * 3 + 1) {
        got.extend(chunked.push(chunk));
    }
    got.extend(chunked.flush());
    assert_eq!(got, expected);
    assert_eq!(chunked.stats(), whole.stats());

    let mut unwrapper = TimestampUnwrapper::new();
    for pes in expected.into_iter().flatten() {
        for ts in pes.pts.into_iter().chain(pes.dts) {
            assert!(ts < 1 << 33);
            unwrapper.extend(ts);
        }
        if pes.kind == StreamKind::Aac {
            for frame in adts::frames(&pes.payload).flatten() {
                assert!(frame.data.len() < pes.payload.len());
            }
        }
    }
});
