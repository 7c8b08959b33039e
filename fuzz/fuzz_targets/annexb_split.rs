//! The Annex B splitter and access unit assembler on arbitrary bytes, cut
//! into chunks where the first byte says: never panic, the same NAL units
//! whatever the chunking, no NAL unit with a start code or trailing zero,
//! and every access unit a valid length-prefixed run of NAL units. The SPS
//! parsers see every NAL unit too.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use streamswitch::media::annexb::{AccessUnitAssembler, AnnexBSplitter, VideoCodec};
use streamswitch::media::{h264, h265};

fn split<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> Vec<Bytes> {
    let mut s = AnnexBSplitter::new();
    let mut out = Vec::new();
    for c in chunks {
        s.push(c);
        while let Some(nal) = s.next_nal() {
            out.push(nal);
        }
    }
    out.extend(s.finish());
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let whole = split(std::iter::once(rest));
    let chunked = split(rest.chunks(step as usize % 17 + 1));
    assert_eq!(whole, chunked);
    for nal in &whole {
        assert!(!nal.is_empty());
        assert_ne!(nal[nal.len() - 1], 0);
        assert!(!nal.windows(3).any(|w| w == [0, 0, 1]));
        let _ = h264::sps_size(nal);
        let _ = h265::sps_size(nal);
    }
    for codec in [VideoCodec::H264, VideoCodec::H265] {
        let mut a = AccessUnitAssembler::new(codec);
        let mut aus: Vec<_> = whole.iter().filter_map(|nal| a.push(nal.clone())).collect();
        aus.extend(a.flush());
        for au in aus {
            let total: usize = h264::nal_units(&au.data).map(|n| n.len() + 4).sum();
            assert_eq!(total, au.data.len());
        }
    }
});
