//! The ADTS parser on arbitrary bytes: never panic, frames tile the input
//! from its start, and a parsed header gives a consistent configuration.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use streamswitch::media::adts::{self, AdtsHeader};

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    let mut pos = 0;
    for frame in adts::frames(&payload) {
        let Ok(frame) = frame else {
            break;
        };
        let h = frame.header;
        assert_eq!(frame.data.len(), h.frame_len - h.header_len);
        pos += h.frame_len;
        let asc = h.audio_specific_config();
        assert_eq!(asc[0] >> 3, h.object_type);
        assert_eq!(h.params().channels, h.channel_config as u16);
        assert!(h.sample_rate() >= 7_350);
    }
    assert!(pos <= data.len());
    let _ = AdtsHeader::parse(data, 0);
});
