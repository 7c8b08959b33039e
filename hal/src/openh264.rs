//! Software H.264 encoder (Cisco's openh264, built from bundled source).

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSlices;
use openh264::OpenH264API;

use crate::video::{EncodedPicture, H264EncoderConfig, I420Image, VideoEncoder};
use crate::HalError;

pub struct H264Encoder {
    inner: Encoder,
    config: H264EncoderConfig,
}

impl H264Encoder {
    pub fn new(config: H264EncoderConfig) -> Result<Self, HalError> {
        if config.width == 0
            || config.height == 0
            || config.width % 2 != 0
            || config.height % 2 != 0
        {
            return Err(HalError::InvalidInput(format!(
                "picture size {}x{} must be even and non-zero",
                config.width, config.height
            )));
        }
        let api_config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(config.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(config.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .complexity(Complexity::Low)
            .skip_frames(false)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .intra_frame_period(IntraFramePeriod::from_num_frames(config.keyframe_interval))
            .num_threads(1);
        let inner = Encoder::with_api_config(OpenH264API::from_source(), api_config)
            .map_err(|e| HalError::VideoEncoder(e.to_string()))?;
        Ok(Self { inner, config })
    }
}

impl VideoEncoder for H264Encoder {
    fn encode(&mut self, image: &I420Image<'_>) -> Result<EncodedPicture, HalError> {
        let (w, h) = (image.width as usize, image.height as usize);
        if image.width != self.config.width || image.height != self.config.height {
            return Err(HalError::InvalidInput(format!(
                "picture is {w}x{h}, encoder expects {}x{}",
                self.config.width, self.config.height
            )));
        }
        let luma = w * h;
        let chroma = luma / 4;
        if image.data.len() < luma + 2 * chroma {
            return Err(HalError::InvalidInput(format!(
                "I420 buffer of {} bytes is too short for {w}x{h}",
                image.data.len()
            )));
        }
        let planes = (
            &image.data[..luma],
            &image.data[luma..luma + chroma],
            &image.data[luma + chroma..luma + 2 * chroma],
        );
        let source = YUVSlices::new(planes, (w, h), (w, w / 2, w / 2));
        let bitstream = self
            .inner
            .encode(&source)
            .map_err(|e| HalError::VideoEncoder(e.to_string()))?;
        let keyframe = matches!(bitstream.frame_type(), FrameType::IDR | FrameType::I);
        let mut nals = Vec::new();
        for l in 0..bitstream.num_layers() {
            let Some(layer) = bitstream.layer(l) else {
                continue;
            };
            for n in 0..layer.nal_count() {
                if let Some(nal) = layer.nal_unit(n) {
                    let body = strip_start_code(nal);
                    if !body.is_empty() {
                        nals.push(body.to_vec());
                    }
                }
            }
        }
        Ok(EncodedPicture { nals, keyframe })
    }

    fn force_keyframe(&mut self) {
        self.inner.force_intra_frame();
    }
}

fn strip_start_code(nal: &[u8]) -> &[u8] {
    if let Some(rest) = nal.strip_prefix(&[0, 0, 0, 1]) {
        rest
    } else if let Some(rest) = nal.strip_prefix(&[0, 0, 1]) {
        rest
    } else {
        nal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_picture_is_an_idr_with_parameter_sets() {
        let config = H264EncoderConfig {
            width: 64,
            height: 48,
            fps: 10,
            bitrate_bps: 100_000,
            keyframe_interval: 10,
        };
        let mut enc = H264Encoder::new(config).unwrap();
        let data = vec![128u8; 64 * 48 * 3 / 2];
        let pic = enc
            .encode(&I420Image {
                width: 64,
                height: 48,
                data: &data,
            })
            .unwrap();
        assert!(pic.keyframe);
        let types: Vec<u8> = pic.nals.iter().map(|n| n[0] & 0x1f).collect();
        assert!(types.contains(&7), "SPS missing: {types:?}");
        assert!(types.contains(&8), "PPS missing: {types:?}");
        assert!(types.contains(&5), "IDR slice missing: {types:?}");
    }

    #[test]
    fn wrong_size_is_refused() {
        let config = H264EncoderConfig {
            width: 64,
            height: 48,
            fps: 10,
            bitrate_bps: 100_000,
            keyframe_interval: 10,
        };
        let mut enc = H264Encoder::new(config).unwrap();
        let data = vec![0u8; 10];
        assert!(enc
            .encode(&I420Image {
                width: 64,
                height: 48,
                data: &data
            })
            .is_err());
    }
}
