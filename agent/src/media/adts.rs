//! ADTS (ISO/IEC 13818-7 / 14496-3 1.A.2): the framing of AAC in MPEG-TS
//! and in raw `.aac` streams. Splits a PES payload into raw AAC frames, the
//! form a [`super::Frame`] carries, and derives the AudioSpecificConfig a
//! track needs from the header.

use bytes::Bytes;

use super::aac::AacParams;

/// Sampling frequencies by index (ISO/IEC 14496-3 table 1.18); ADTS allows
/// indexes 0 to 12.
const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// AAC samples per channel in one raw frame.
pub const SAMPLES_PER_FRAME: u32 = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdtsError {
    #[error("ADTS at offset {offset}: no sync word (found {found:#06x})")]
    NoSync { offset: usize, found: u16 },
    #[error("ADTS at offset {offset}: header cut short ({available} of {needed} bytes)")]
    Truncated {
        offset: usize,
        available: usize,
        needed: usize,
    },
    #[error("ADTS at offset {offset}: {what}")]
    Invalid { offset: usize, what: &'static str },
    #[error("ADTS at offset {offset}: {what} is not supported")]
    Unsupported { offset: usize, what: &'static str },
}

/// The fields of an ADTS header that matter for splitting and for the
/// AudioSpecificConfig.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdtsHeader {
    /// MPEG-4 audio object type: the ADTS profile plus one (2 is AAC-LC).
    pub object_type: u8,
    pub sampling_frequency_index: u8,
    /// 1 to 7 (channel configuration 0, with an in-band PCE, is refused).
    pub channel_config: u8,
    /// 7, or 9 with a CRC.
    pub header_len: usize,
    /// The whole frame, header included.
    pub frame_len: usize,
}

impl AdtsHeader {
    /// Parses and checks the header at the start of `data`; `offset` is
    /// where `data` starts, for errors.
    pub fn parse(data: &[u8], offset: usize) -> Result<AdtsHeader, AdtsError> {
        if data.len() < 7 {
            if data.len() >= 2 && !is_sync(data) {
                return Err(no_sync(data, offset));
            }
            return Err(AdtsError::Truncated {
                offset,
                available: data.len(),
                needed: 7,
            });
        }
        if !is_sync(data) {
            return Err(no_sync(data, offset));
        }
        let invalid = |what| AdtsError::Invalid { offset, what };
        let unsupported = |what| AdtsError::Unsupported { offset, what };
        if data[1] & 0x06 != 0 {
            return Err(invalid("layer is not 0"));
        }
        let protection_absent = data[1] & 0x01 != 0;
        let profile = data[2] >> 6;
        let sampling_frequency_index = (data[2] >> 2) & 0x0f;
        let channel_config = ((data[2] & 0x01) << 2) | (data[3] >> 6);
        let frame_len = (((data[3] & 0x03) as usize) << 11)
            | ((data[4] as usize) << 3)
            | (data[5] >> 5) as usize;
        let raw_blocks = data[6] & 0x03;
        let header_len = if protection_absent { 7 } else { 9 };
        if sampling_frequency_index as usize >= SAMPLE_RATES.len() {
            return Err(invalid("reserved sampling frequency index"));
        }
        if channel_config == 0 {
            return Err(unsupported("channel configuration 0 (PCE)"));
        }
        if raw_blocks != 0 {
            return Err(unsupported("more than one raw data block per frame"));
        }
        if frame_len <= header_len {
            return Err(invalid("frame length shorter than the header"));
        }
        Ok(AdtsHeader {
            object_type: profile + 1,
            sampling_frequency_index,
            channel_config,
            header_len,
            frame_len,
        })
    }

    pub fn sample_rate(&self) -> u32 {
        SAMPLE_RATES[self.sampling_frequency_index as usize]
    }

    /// The 2-byte AudioSpecificConfig: object type (5 bits), sampling
    /// frequency index (4), channel configuration (4), then three zero flags.
    pub fn audio_specific_config(&self) -> [u8; 2] {
        [
            (self.object_type << 3) | (self.sampling_frequency_index >> 1),
            ((self.sampling_frequency_index & 1) << 7) | (self.channel_config << 3),
        ]
    }

    /// The track parameters this header describes.
    pub fn params(&self) -> AacParams {
        AacParams {
            config: Bytes::copy_from_slice(&self.audio_specific_config()),
            sample_rate: self.sample_rate(),
            channels: self.channel_config as u16,
        }
    }
}

fn is_sync(data: &[u8]) -> bool {
    data[0] == 0xff && data[1] & 0xf0 == 0xf0
}

fn no_sync(data: &[u8], offset: usize) -> AdtsError {
    AdtsError::NoSync {
        offset,
        found: u16::from_be_bytes([data[0], data[1]]),
    }
}

/// One raw AAC frame and the header it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdtsFrame {
    pub header: AdtsHeader,
    /// The raw_data_block, without header or CRC.
    pub data: Bytes,
}

/// The ADTS frames of `payload` (a PES payload or any run of whole frames).
/// After the first error (garbage, or a frame cut short) the iterator ends.
pub fn frames(payload: &Bytes) -> AdtsFrames<'_> {
    AdtsFrames {
        payload,
        pos: 0,
        failed: false,
    }
}

/// Iterator returned by [`frames`].
#[derive(Debug)]
pub struct AdtsFrames<'a> {
    payload: &'a Bytes,
    pos: usize,
    failed: bool,
}

impl Iterator for AdtsFrames<'_> {
    type Item = Result<AdtsFrame, AdtsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.payload.len() {
            return None;
        }
        let payload = self.payload;
        let rest = &payload[self.pos..];
        let result = AdtsHeader::parse(rest, self.pos).and_then(|header| {
            if header.frame_len > rest.len() {
                return Err(AdtsError::Truncated {
                    offset: self.pos,
                    available: rest.len(),
                    needed: header.frame_len,
                });
            }
            let start = self.pos + header.header_len;
            let end = self.pos + header.frame_len;
            self.pos = end;
            Ok(AdtsFrame {
                header,
                data: payload.slice(start..end),
            })
        });
        self.failed = result.is_err();
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ADTS header for AAC-LC with the given fields and no CRC.
    fn header(sfi: u8, channels: u8, frame_len: usize) -> [u8; 7] {
        [
            0xff,
            0xf1,
            (1 << 6) | (sfi << 2) | (channels >> 2),
            ((channels & 3) << 6) | ((frame_len >> 11) as u8 & 3),
            (frame_len >> 3) as u8,
            ((frame_len & 7) << 5) as u8 | 0x1f,
            0xfc,
        ]
    }

    fn frame(sfi: u8, channels: u8, body: &[u8]) -> Vec<u8> {
        let mut f = header(sfi, channels, 7 + body.len()).to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn splits_frames_and_derives_the_config() {
        let mut pes = frame(3, 1, &[1, 2, 3]);
        pes.extend(frame(3, 1, &[4, 5]));
        let pes = Bytes::from(pes);
        let got: Vec<AdtsFrame> = frames(&pes).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0].data[..], &[1, 2, 3]);
        assert_eq!(&got[1].data[..], &[4, 5]);
        let params = got[0].header.params();
        assert_eq!(params, AacParams::lc(48_000, 1));
        let stereo = AdtsHeader::parse(&header(4, 2, 100), 0).unwrap();
        assert_eq!(stereo.params(), AacParams::lc(44_100, 2));
    }

    #[test]
    fn a_crc_is_skipped() {
        let mut f = frame(3, 2, &[0xaa, 0xbb, 9, 9]);
        f[1] = 0xf0; // protection_absent = 0: two CRC bytes follow the header.
        let f = Bytes::from(f);
        let got: Vec<_> = frames(&f).collect();
        assert_eq!(got[0].as_ref().unwrap().data[..], [9, 9]);
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        let garbage = Bytes::from_static(&[0x12, 0x34, 0x56]);
        let got: Vec<_> = frames(&garbage).collect();
        assert_eq!(
            got,
            vec![Err(AdtsError::NoSync {
                offset: 0,
                found: 0x1234
            })]
        );
        let mut two = frame(3, 1, &[1, 2, 3]);
        two.extend(&frame(3, 1, &[4, 5, 6])[..8]);
        let two = Bytes::from(two);
        let got: Vec<_> = frames(&two).collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert_eq!(
            got[1],
            Err(AdtsError::Truncated {
                offset: 10,
                available: 8,
                needed: 10
            })
        );
        let reserved = header(13, 1, 20);
        assert!(matches!(
            AdtsHeader::parse(&reserved, 5),
            Err(AdtsError::Invalid { offset: 5, .. })
        ));
        assert!(AdtsHeader::parse(&header(3, 0, 20), 0).is_err());
        assert!(AdtsHeader::parse(&header(3, 1, 7), 0).is_err());
    }

    #[test]
    fn every_prefix_of_a_frame_fails_cleanly() {
        let f = frame(3, 1, &[1, 2, 3, 4]);
        for len in 0..f.len() {
            let cut = Bytes::copy_from_slice(&f[..len]);
            assert!(frames(&cut).all(|r| r.is_err()), "prefix {len}");
        }
    }
}
