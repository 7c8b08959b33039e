//! Pictures from a camera to the I420 an encoder takes: the raw formats
//! V4L2 cameras deliver, and MJPEG (decoded with `zune-jpeg`). Pure: no
//! device, fuzzable.

use streamswitch_hal::{PixelFormat, VideoFormat};
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConvertError {
    #[error("a {format} picture of {width}x{height} needs {needed} bytes, got {got}")]
    Short {
        format: PixelFormat,
        width: u32,
        height: u32,
        needed: usize,
        got: usize,
    },
    #[error("JPEG: {0}")]
    Jpeg(String),
    #[error("JPEG of {got_w}x{got_h} where the camera said {width}x{height}")]
    JpegSize {
        width: u32,
        height: u32,
        got_w: usize,
        got_h: usize,
    },
    #[error("{0} is coded: nothing to convert")]
    Coded(PixelFormat),
}

/// Converts one picture into `out` (resized to `width * height * 3 / 2`).
/// Odd sizes lose their last column or row: 4:2:0 needs even ones.
pub fn to_i420(format: &VideoFormat, src: &[u8], out: &mut Vec<u8>) -> Result<(), ConvertError> {
    let (w, h) = ((format.width & !1) as usize, (format.height & !1) as usize);
    out.resize(w * h * 3 / 2, 0);
    let (y, chroma) = out.split_at_mut(w * h);
    let (u, v) = chroma.split_at_mut(w * h / 4);
    let stride = (format.stride as usize).max(min_stride(format.pixel, w));
    let needed = match format.pixel {
        PixelFormat::Yuyv | PixelFormat::Uyvy => stride * h,
        PixelFormat::Nv12 | PixelFormat::Nv21 => stride * h + stride * h / 2,
        PixelFormat::Yu12 | PixelFormat::Yv12 => stride * h + 2 * (stride / 2) * (h / 2),
        PixelFormat::Mjpeg => return decode_jpeg(format, src, y, u, v),
        PixelFormat::H264 => return Err(ConvertError::Coded(format.pixel)),
    };
    if src.len() < needed {
        return Err(ConvertError::Short {
            format: format.pixel,
            width: format.width,
            height: format.height,
            needed,
            got: src.len(),
        });
    }
    match format.pixel {
        PixelFormat::Yuyv => packed_422(src, stride, w, h, [0, 1, 3], y, u, v),
        PixelFormat::Uyvy => packed_422(src, stride, w, h, [1, 0, 2], y, u, v),
        PixelFormat::Nv12 => semi_planar(src, stride, w, h, false, y, u, v),
        PixelFormat::Nv21 => semi_planar(src, stride, w, h, true, y, u, v),
        PixelFormat::Yu12 => planar(src, stride, w, h, false, y, u, v),
        PixelFormat::Yv12 => planar(src, stride, w, h, true, y, u, v),
        // Returned above.
        PixelFormat::Mjpeg | PixelFormat::H264 => {}
    }
    Ok(())
}

fn min_stride(pixel: PixelFormat, w: usize) -> usize {
    match pixel {
        PixelFormat::Yuyv | PixelFormat::Uyvy => w * 2,
        _ => w,
    }
}

/// 4:2:2 packed: `offsets` = [first luma, U, V] within each 4-byte pair of
/// pixels. Chroma is taken from even rows.
#[allow(clippy::too_many_arguments)]
fn packed_422(
    src: &[u8],
    stride: usize,
    w: usize,
    h: usize,
    offsets: [usize; 3],
    y: &mut [u8],
    u: &mut [u8],
    v: &mut [u8],
) {
    let [ly, lu, lv] = offsets;
    for row in 0..h {
        let line = &src[row * stride..row * stride + w * 2];
        let out = &mut y[row * w..(row + 1) * w];
        for (i, px) in line.chunks_exact(4).enumerate() {
            out[2 * i] = px[ly];
            out[2 * i + 1] = px[ly + 2];
        }
        if row % 2 == 0 {
            let c = row / 2 * (w / 2);
            for (i, px) in line.chunks_exact(4).enumerate() {
                u[c + i] = px[lu];
                v[c + i] = px[lv];
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn semi_planar(
    src: &[u8],
    stride: usize,
    w: usize,
    h: usize,
    swapped: bool,
    y: &mut [u8],
    u: &mut [u8],
    v: &mut [u8],
) {
    copy_plane(src, stride, w, h, y);
    let uv = &src[stride * h..];
    let (first, second) = if swapped { (v, u) } else { (u, v) };
    for row in 0..h / 2 {
        let line = &uv[row * stride..row * stride + w];
        for (i, pair) in line.chunks_exact(2).enumerate() {
            first[row * w / 2 + i] = pair[0];
            second[row * w / 2 + i] = pair[1];
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn planar(
    src: &[u8],
    stride: usize,
    w: usize,
    h: usize,
    swapped: bool,
    y: &mut [u8],
    u: &mut [u8],
    v: &mut [u8],
) {
    copy_plane(src, stride, w, h, y);
    let cs = stride / 2;
    let first = &src[stride * h..];
    let second = &first[cs * (h / 2)..];
    let (pu, pv) = if swapped {
        (second, first)
    } else {
        (first, second)
    };
    copy_plane(pu, cs, w / 2, h / 2, u);
    copy_plane(pv, cs, w / 2, h / 2, v);
}

fn copy_plane(src: &[u8], stride: usize, w: usize, h: usize, out: &mut [u8]) {
    for row in 0..h {
        out[row * w..(row + 1) * w].copy_from_slice(&src[row * stride..row * stride + w]);
    }
}

fn decode_jpeg(
    format: &VideoFormat,
    src: &[u8],
    y: &mut [u8],
    u: &mut [u8],
    v: &mut [u8],
) -> Result<(), ConvertError> {
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::YCbCr)
        .set_max_width(8192)
        .set_max_height(8192);
    let mut decoder = JpegDecoder::new_with_options(src, options);
    let pixels = decoder
        .decode()
        .map_err(|e| ConvertError::Jpeg(format!("{e:?}")))?;
    let (jw, jh) = decoder.dimensions().unwrap_or((0, 0));
    let (w, h) = ((format.width & !1) as usize, (format.height & !1) as usize);
    if jw < w || jh < h || pixels.len() < jw * jh * 3 {
        return Err(ConvertError::JpegSize {
            width: format.width,
            height: format.height,
            got_w: jw,
            got_h: jh,
        });
    }
    for row in 0..h {
        let line = &pixels[row * jw * 3..row * jw * 3 + w * 3];
        for (x, px) in line.chunks_exact(3).enumerate() {
            y[row * w + x] = px[0];
        }
        if row % 2 == 0 {
            let c = row / 2 * (w / 2);
            for (i, px) in line.chunks_exact(6).enumerate() {
                u[c + i] = px[1];
                v[c + i] = px[2];
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(pixel: PixelFormat, width: u32, height: u32, stride: u32) -> VideoFormat {
        VideoFormat {
            pixel,
            width,
            height,
            stride,
            fps: (30, 1),
        }
    }

    #[test]
    fn yuyv_with_padded_lines() {
        // 4x2, stride 12 (4 bytes of padding per line).
        let src = [
            10, 100, 11, 200, 12, 101, 13, 201, 0, 0, 0, 0, //
            20, 102, 21, 202, 22, 103, 23, 203, 0, 0, 0, 0,
        ];
        let mut out = Vec::new();
        to_i420(&format(PixelFormat::Yuyv, 4, 2, 12), &src, &mut out).unwrap();
        assert_eq!(out, [10, 11, 12, 13, 20, 21, 22, 23, 100, 101, 200, 201]);
    }

    #[test]
    fn uyvy_nv12_nv21_yv12() {
        let mut out = Vec::new();
        let src = [
            100, 10, 200, 11, 101, 12, 201, 13, 102, 20, 202, 21, 103, 22, 203, 23,
        ];
        to_i420(&format(PixelFormat::Uyvy, 4, 2, 8), &src, &mut out).unwrap();
        assert_eq!(out, [10, 11, 12, 13, 20, 21, 22, 23, 100, 101, 200, 201]);
        let nv = [10, 11, 12, 13, 20, 21, 22, 23, 100, 200, 101, 201];
        to_i420(&format(PixelFormat::Nv12, 4, 2, 4), &nv, &mut out).unwrap();
        assert_eq!(out, [10, 11, 12, 13, 20, 21, 22, 23, 100, 101, 200, 201]);
        to_i420(&format(PixelFormat::Nv21, 4, 2, 4), &nv, &mut out).unwrap();
        assert_eq!(out, [10, 11, 12, 13, 20, 21, 22, 23, 200, 201, 100, 101]);
        let yv = [10, 11, 12, 13, 20, 21, 22, 23, 200, 201, 100, 101];
        to_i420(&format(PixelFormat::Yv12, 4, 2, 4), &yv, &mut out).unwrap();
        assert_eq!(out, [10, 11, 12, 13, 20, 21, 22, 23, 100, 101, 200, 201]);
    }

    /// The test source's YUYV and MJPEG cameras give the pattern camera's
    /// picture back: exactly from YUYV, within JPEG's loss from MJPEG.
    #[test]
    fn the_test_patterns_camera_formats_convert_back_to_the_pattern() {
        use std::sync::Arc;
        use std::time::Duration;
        use streamswitch_hal::fake::{LoopCamera, PatternCamera};
        use streamswitch_hal::{Clock, VideoCapture};

        struct Frozen;
        impl Clock for Frozen {
            fn now(&self) -> Duration {
                Duration::ZERO
            }
        }
        let (w, h) = (160, 96);
        let mut pattern = PatternCamera::new(w, h, 30, Arc::new(Frozen));
        let want = pattern.next_frame().unwrap().data.to_vec();
        let mut out = Vec::new();
        for pixel in [PixelFormat::Yuyv, PixelFormat::Mjpeg] {
            let mut camera = LoopCamera::new(pixel, w, h, 30, Arc::new(Frozen)).unwrap();
            let format = camera.format();
            to_i420(&format, camera.next_frame().unwrap().data, &mut out).unwrap();
            assert_eq!(out.len(), want.len());
            let worst = out
                .iter()
                .zip(&want)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            let mean = out
                .iter()
                .zip(&want)
                .map(|(a, b)| f64::from(a.abs_diff(*b)))
                .sum::<f64>()
                / out.len() as f64;
            match pixel {
                PixelFormat::Yuyv => assert_eq!(worst, 0),
                _ => assert!(mean < 3.0, "{pixel}: mean error {mean}"),
            }
        }
    }

    #[test]
    fn short_buffers_and_garbage_jpegs_are_errors() {
        let mut out = Vec::new();
        let e = to_i420(
            &format(PixelFormat::Yuyv, 640, 480, 1280),
            &[0; 100],
            &mut out,
        );
        assert!(matches!(e, Err(ConvertError::Short { .. })), "{e:?}");
        // v4l2loopback's first buffer of an MJPEG stream is not a JPEG.
        let e = to_i420(&format(PixelFormat::Mjpeg, 64, 48, 0), &[0; 4608], &mut out);
        assert!(matches!(e, Err(ConvertError::Jpeg(_))), "{e:?}");
    }
}
