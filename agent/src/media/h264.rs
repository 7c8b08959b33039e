//! H.264 helpers: NAL unit framing and the parameters a track needs.

use bytes::{BufMut, Bytes, BytesMut};

pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;

/// SPS and PPS of an H.264 track, and the picture size they describe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H264Params {
    pub sps: Bytes,
    pub pps: Bytes,
    pub width: u32,
    pub height: u32,
}

impl H264Params {
    /// profile_idc, constraint flags and level_idc: the SDP profile-level-id
    /// and the avcC header. `None` when the SPS is too short.
    pub fn profile_level_id(&self) -> Option<[u8; 3]> {
        Some([*self.sps.get(1)?, *self.sps.get(2)?, *self.sps.get(3)?])
    }
}

/// Joins NAL units into one access unit with 4-byte big-endian lengths.
pub fn length_prefixed<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::new();
    for nal in nals {
        out.put_u32(nal.len() as u32);
        out.put_slice(nal);
    }
    out.freeze()
}

/// Iterates over the NAL units of a length-prefixed access unit. Stops at the
/// first length that runs past the end.
pub fn nal_units(au: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let len_bytes = au.get(pos..pos + 4)?;
        let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let start = pos + 4;
        let end = start.checked_add(len as usize)?;
        if end > au.len() {
            return None;
        }
        pos = end;
        Some(au.slice(start..end))
    })
}

/// Removes emulation-prevention bytes (00 00 03 -> 00 00).
pub fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nal_units_split_and_stop_on_truncation() {
        let au = length_prefixed([&[0x67u8, 1, 2][..], &[0x68, 3][..]]);
        let nals: Vec<Bytes> = nal_units(&au).collect();
        assert_eq!(
            nals,
            vec![
                Bytes::from_static(&[0x67, 1, 2]),
                Bytes::from_static(&[0x68, 3])
            ]
        );
        let truncated = au.slice(..au.len() - 1);
        assert_eq!(nal_units(&truncated).count(), 1);
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }
}
