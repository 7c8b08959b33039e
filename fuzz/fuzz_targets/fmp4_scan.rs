//! The fMP4 scanner that start-up repair runs on torn files, on arbitrary
//! bytes: never panic; what it calls complete lies inside the input, in
//! order; the header search used when the moov does not decode agrees.

#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use streamswitch::fmp4;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = fmp4::scan(&mut Cursor::new(data)) {
        assert_eq!(s.file_len, data.len() as u64);
        assert!(s.complete_len <= s.file_len);
        assert!(s.header_len <= s.file_len);
        let mut end = 0;
        for f in &s.fragments {
            assert!(f.offset >= end && f.end > f.offset && f.end <= s.complete_len);
            end = f.end;
        }
        // Writing the duration back never panics either.
        if let Some(header) = data.get(..s.header_len as usize) {
            let _ = fmp4::with_duration(header, s.media_duration);
        }
    }
    if let Ok(frags) = fmp4::fragments_without_header(&mut Cursor::new(data), 1 << 20) {
        for f in &frags {
            assert!(f.end <= data.len() as u64 && f.offset < f.end);
        }
    }
    let _ = fmp4::declared_duration(data);
});
