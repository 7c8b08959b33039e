//! Baseline JPEG pictures (a camera's MJPEG) read as far as RFC 2435 needs
//! to carry them over RTP: the picture size, the chroma subsampling, the
//! restart interval, the two quantization tables and the entropy-coded
//! scan. RFC 2435 sends no Huffman tables: a picture whose own tables
//! differ from the standard ones (ITU-T T.81 K.3) cannot travel that way
//! and is refused, as are the forms it has no type for (progressive,
//! 12-bit, grey, 4:4:4). Pure.

use thiserror::Error;

/// A track of MJPEG pictures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JpegParams {
    pub width: u32,
    pub height: u32,
}

/// Chroma subsampling of the picture: RFC 2435's types 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subsampling {
    /// 4:2:2: luma sampled 2x1 (type 0).
    Yuv422,
    /// 4:2:0: luma sampled 2x2 (type 1).
    Yuv420,
}

/// The parts of one picture RFC 2435 sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JpegPicture<'a> {
    pub width: u32,
    pub height: u32,
    pub subsampling: Subsampling,
    /// MCUs between restart markers; 0 when the picture has none.
    pub restart_interval: u16,
    /// The luma table, then the chroma table (8-bit, 64 bytes each, in
    /// zig-zag order as in the file).
    pub luma_table: &'a [u8],
    pub chroma_table: &'a [u8],
    /// The entropy-coded data after the scan header, without the EOI.
    pub scan: &'a [u8],
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum JpegError {
    #[error("not a JPEG picture (no SOI marker)")]
    NotJpeg,
    #[error("JPEG picture cut short at byte {0}")]
    Truncated(usize),
    #[error("JPEG marker segment at byte {0} is malformed")]
    Malformed(usize),
    #[error("JPEG picture is {0} (RTP carries baseline 8-bit YCbCr only)")]
    Unsupported(&'static str),
    #[error("JPEG picture has its own Huffman tables; RTP (RFC 2435) carries only the standard ones: encode to H.264 instead")]
    OwnHuffmanTables,
    #[error("JPEG picture is {0}x{1}; RTP (RFC 2435) carries at most 2040x2040")]
    TooLarge(u32, u32),
}

const SOI: u8 = 0xd8;
const EOI: u8 = 0xd9;
const SOS: u8 = 0xda;
const DQT: u8 = 0xdb;
const DHT: u8 = 0xc4;
const DRI: u8 = 0xdd;
/// The largest side RFC 2435's 8-bit size fields (in 8-pixel units) hold.
pub const MAX_SIDE: u32 = 255 * 8;

/// Reads `data` as one baseline JPEG picture.
pub fn parse(data: &[u8]) -> Result<JpegPicture<'_>, JpegError> {
    if data.get(..2) != Some(&[0xff, SOI]) {
        return Err(JpegError::NotJpeg);
    }
    let mut tables: [Option<&[u8]>; 4] = [None; 4];
    let mut frame: Option<Frame> = None;
    let mut restart_interval = 0u16;
    let mut at = 2;
    loop {
        // Markers may be preceded by fill bytes (0xff).
        while data.get(at) == Some(&0xff) && data.get(at + 1) == Some(&0xff) {
            at += 1;
        }
        let marker = match data.get(at..at + 2) {
            Some([0xff, m]) => *m,
            Some(_) => return Err(JpegError::Malformed(at)),
            None => return Err(JpegError::Truncated(at)),
        };
        if marker == EOI {
            return Err(JpegError::Truncated(at));
        }
        let len = data
            .get(at + 2..at + 4)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .ok_or(JpegError::Truncated(at))?;
        if len < 2 {
            return Err(JpegError::Malformed(at));
        }
        let body = data
            .get(at + 4..at + 2 + len)
            .ok_or(JpegError::Truncated(at))?;
        match marker {
            DQT => read_tables(body, &mut tables).ok_or(JpegError::Malformed(at))?,
            DHT => check_huffman(body).map_err(|e| e.at(at))?,
            DRI => {
                let b = body.get(..2).ok_or(JpegError::Malformed(at))?;
                restart_interval = u16::from_be_bytes([b[0], b[1]]);
            }
            0xc0 | 0xc1 => frame = Some(read_frame(body).map_err(|e| e.at(at))?),
            // SOF2 and up (DHT is taken above): progressive, lossless,
            // arithmetic-coded.
            0xc2..=0xcf => return Err(JpegError::Unsupported("not baseline")),
            SOS => {
                let frame = frame.ok_or(JpegError::Malformed(at))?;
                check_scan(body).map_err(|e| e.at(at))?;
                let table = |i: u8| tables[i as usize].ok_or(JpegError::Malformed(at));
                let (luma_table, chroma_table) = (table(frame.tables[0])?, table(frame.tables[1])?);
                let scan = &data[at + 2 + len..];
                return Ok(JpegPicture {
                    width: frame.width,
                    height: frame.height,
                    subsampling: frame.subsampling,
                    restart_interval,
                    luma_table,
                    chroma_table,
                    scan: strip_eoi(scan),
                });
            }
            _ => {}
        }
        at += 2 + len;
    }
}

/// What the frame header (SOF0/SOF1) says.
#[derive(Clone, Copy)]
struct Frame {
    width: u32,
    height: u32,
    subsampling: Subsampling,
    /// Quantization table ids of luma and chroma.
    tables: [u8; 2],
}

/// A parse error without its place yet; `at` adds the marker's offset.
enum Problem {
    Malformed,
    Error(JpegError),
}

impl Problem {
    fn at(self, offset: usize) -> JpegError {
        match self {
            Problem::Malformed => JpegError::Malformed(offset),
            Problem::Error(e) => e,
        }
    }
}

fn read_tables<'a>(mut body: &'a [u8], tables: &mut [Option<&'a [u8]>; 4]) -> Option<()> {
    while let Some((&pq_tq, rest)) = body.split_first() {
        let size = if pq_tq >> 4 == 0 { 64 } else { 128 };
        let table = rest.get(..size)?;
        let id = (pq_tq & 0x0f) as usize;
        // 16-bit tables are kept out: RFC 2435 receivers take 8-bit ones.
        *tables.get_mut(id)? = (size == 64).then_some(table);
        body = &rest[size..];
    }
    Some(())
}

fn read_frame(body: &[u8]) -> Result<Frame, Problem> {
    let header = body.get(..6).ok_or(Problem::Malformed)?;
    if header[0] != 8 {
        return Err(Problem::Error(JpegError::Unsupported("not 8-bit")));
    }
    let height = u16::from_be_bytes([header[1], header[2]]) as u32;
    let width = u16::from_be_bytes([header[3], header[4]]) as u32;
    if header[5] != 3 {
        return Err(Problem::Error(JpegError::Unsupported(
            "not three-component YCbCr",
        )));
    }
    let c = body.get(6..15).ok_or(Problem::Malformed)?;
    let (y, cb, cr) = (&c[0..3], &c[3..6], &c[6..9]);
    let subsampling = match (y[1], cb[1], cr[1]) {
        (0x21, 0x11, 0x11) => Subsampling::Yuv422,
        (0x22, 0x11, 0x11) => Subsampling::Yuv420,
        _ => return Err(Problem::Error(JpegError::Unsupported("not 4:2:2 or 4:2:0"))),
    };
    if cb[2] != cr[2] {
        return Err(Problem::Error(JpegError::Unsupported(
            "using two chroma tables",
        )));
    }
    if width == 0 || height == 0 {
        return Err(Problem::Malformed);
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(Problem::Error(JpegError::TooLarge(width, height)));
    }
    Ok(Frame {
        width,
        height,
        subsampling,
        tables: [y[2] & 3, cb[2] & 3],
    })
}

/// One interleaved scan of the three components, luma with Huffman tables
/// 0 and chroma with tables 1, as RFC 2435 receivers rebuild it.
fn check_scan(body: &[u8]) -> Result<(), Problem> {
    let count = *body.first().ok_or(Problem::Malformed)? as usize;
    let components = body.get(1..1 + 2 * count).ok_or(Problem::Malformed)?;
    if count != 3 {
        return Err(Problem::Error(JpegError::Unsupported(
            "not one interleaved scan",
        )));
    }
    if !components.chunks(2).map(|c| c[1]).eq([0x00, 0x11, 0x11]) {
        return Err(Problem::Error(JpegError::OwnHuffmanTables));
    }
    Ok(())
}

/// Checks that every table of a DHT segment is the standard one for its
/// class and id.
fn check_huffman(mut body: &[u8]) -> Result<(), Problem> {
    let own = || Problem::Error(JpegError::OwnHuffmanTables);
    while let Some((&tc_th, rest)) = body.split_first() {
        let counts = rest.get(..16).ok_or(Problem::Malformed)?;
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        let values = rest.get(16..16 + total).ok_or(Problem::Malformed)?;
        let standard = match tc_th {
            0x00 => &DC_LUMA,
            0x01 => &DC_CHROMA,
            0x10 => &AC_LUMA,
            0x11 => &AC_CHROMA,
            _ => return Err(own()),
        };
        if counts != standard.0 || values != standard.1 {
            return Err(own());
        }
        body = &rest[16 + total..];
    }
    Ok(())
}

/// The scan without the EOI marker that ends it (and anything after it,
/// such as a camera's padding); all of it when there is no EOI.
fn strip_eoi(scan: &[u8]) -> &[u8] {
    match scan.windows(2).position(|w| w == [0xff, EOI]) {
        Some(end) => &scan[..end],
        None => scan,
    }
}

type HuffmanTable = ([u8; 16], &'static [u8]);

// ITU-T T.81 Annex K.3: the tables RFC 2435 receivers assume.
const DC_LUMA: HuffmanTable = (
    [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
    &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
);
const DC_CHROMA: HuffmanTable = (
    [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
    &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
);
const AC_LUMA: HuffmanTable = (
    [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d],
    &[
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61,
        0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52,
        0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25,
        0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45,
        0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64,
        0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83,
        0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
        0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
        0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3,
        0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8,
        0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ],
);
const AC_CHROMA: HuffmanTable = (
    [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
    &[
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61,
        0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33,
        0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18,
        0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44,
        0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63,
        0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
        0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4,
        0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca,
        0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7,
        0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ],
);

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A 4:2:0 picture from jpeg-encoder (standard Huffman tables), the
    /// way hal's loop camera makes MJPEG.
    pub fn picture(width: u16, height: u16, restart_interval: Option<u16>) -> Vec<u8> {
        picture_with(
            width,
            height,
            jpeg_encoder::SamplingFactor::F_2_2,
            restart_interval,
        )
    }

    fn picture_with(
        width: u16,
        height: u16,
        sampling: jpeg_encoder::SamplingFactor,
        restart_interval: Option<u16>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 80);
        encoder.set_sampling_factor(sampling);
        if let Some(r) = restart_interval {
            encoder.set_restart_interval(r);
        }
        let pixels: Vec<u8> = (0..width as usize * height as usize * 3)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        encoder
            .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    #[test]
    fn a_baseline_picture_is_read() {
        let data = picture(64, 48, None);
        let p = parse(&data).unwrap();
        assert_eq!((p.width, p.height), (64, 48));
        assert_eq!(p.subsampling, Subsampling::Yuv420);
        assert_eq!(p.restart_interval, 0);
        assert_eq!((p.luma_table.len(), p.chroma_table.len()), (64, 64));
        assert_ne!(p.luma_table, p.chroma_table);
        // The scan runs to the EOI, which is left out.
        let end = data.len() - 2;
        assert_eq!(&data[end..], &[0xff, EOI]);
        assert_eq!(p.scan, &data[end - p.scan.len()..end]);
        assert!(!p.scan.is_empty());
    }

    /// ffmpeg's MJPEG encoder (`-huffman default`): the fuzz target's
    /// seeds, less their two bytes of packet size. Its 4:2:0 goes; its
    /// 4:2:2 is coded with 2x2 luma and 1x2 chroma blocks, a layout RFC
    /// 2435's type 0 (2x1 and 1x1) cannot describe.
    #[test]
    fn ffmpeg_pictures() {
        let seed = include_bytes!("../../../fuzz/seeds/jpeg_rtp/ffmpeg-420.bin");
        let p = parse(&seed[2..]).unwrap();
        assert_eq!(
            (p.subsampling, p.width, p.height),
            (Subsampling::Yuv420, 32, 24)
        );
        // ffmpeg quantizes chroma with the luma table.
        assert_eq!(p.luma_table, p.chroma_table);
        let seed = include_bytes!("../../../fuzz/seeds/jpeg_rtp/ffmpeg-422.bin");
        assert_eq!(
            parse(&seed[2..]),
            Err(JpegError::Unsupported("not 4:2:2 or 4:2:0"))
        );
    }

    #[test]
    fn a_422_picture_is_read() {
        let data = picture_with(48, 16, jpeg_encoder::SamplingFactor::F_2_1, None);
        let p = parse(&data).unwrap();
        assert_eq!(
            (p.subsampling, p.width, p.height),
            (Subsampling::Yuv422, 48, 16)
        );
    }

    #[test]
    fn the_restart_interval_is_read() {
        assert_eq!(
            parse(&picture(64, 48, Some(2))).unwrap().restart_interval,
            2
        );
    }

    #[test]
    fn own_huffman_tables_are_refused() {
        let mut data = picture(32, 32, None);
        // The first DHT's first value (after class/id and 16 counts).
        let dht = data.windows(2).position(|w| w == [0xff, DHT]).unwrap();
        data[dht + 5 + 16] ^= 1;
        assert_eq!(parse(&data), Err(JpegError::OwnHuffmanTables));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let data = picture(32, 32, None);
        assert_eq!(parse(b"GIF89a"), Err(JpegError::NotJpeg));
        let sos = data.windows(2).position(|w| w == [0xff, SOS]).unwrap();
        for cut in 2..sos + 4 {
            assert!(parse(&data[..cut]).is_err(), "cut at {cut}");
        }
        let mut sof = data.clone();
        let at = sof.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
        sof[at + 4] = 12;
        assert_eq!(parse(&sof), Err(JpegError::Unsupported("not 8-bit")));
        sof[at + 1] = 0xc2;
        assert!(matches!(parse(&sof), Err(JpegError::Unsupported(_))));
    }

    #[test]
    fn a_picture_wider_than_2040_is_refused() {
        let mut data = picture(32, 32, None);
        let at = data.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
        data[at + 7..at + 9].copy_from_slice(&2048u16.to_be_bytes());
        assert_eq!(parse(&data), Err(JpegError::TooLarge(2048, 32)));
    }
}
