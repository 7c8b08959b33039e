//! The initialisation segment: ftyp + moov. Every box whose size could
//! depend on a value is written in a fixed-size version (mp4-atom writes
//! mvhd, mehd and tkhd as version 1 always), so a header with a duration
//! has the same layout as one without, plus the mehd box.

use bytes::Bytes;
use mp4_atom::{
    Audio, Avc1, Avcc, AvccExt, Codec, Dinf, Dref, Encode, Esds, Free, Ftyp, Hdlr, Hvc1, HvcCArray,
    Hvcc, Jpeg, Mdhd, Mdia, Mehd, Minf, Moov, Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsd, Tkhd, Trak,
    Trex, Url, Visual, Vmhd,
};

use super::{Error, Result, MOVIE_TIMESCALE};
use crate::media::{StreamInfo, TrackInfo, TrackParams};

/// ftyp + moov for `info`. `duration` (known when a recording is closed)
/// goes into mvhd and mehd so that players show the length and can seek;
/// leave it `None` for a live stream.
pub fn init_segment(info: &StreamInfo, duration: Option<std::time::Duration>) -> Result<Bytes> {
    if info.tracks.is_empty() {
        return Err(Error::NoTracks);
    }
    let mut out = Vec::with_capacity(1024);
    Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()],
    }
    .encode(&mut out)?;
    moov(info, duration).encode(&mut out)?;
    Ok(Bytes::from(out))
}

/// [`init_segment`] followed by a `free` box so that the whole is exactly
/// `len` bytes: a recording reserves room at creation and later rewrites
/// its header in place with the duration, without moving any fragment.
pub fn padded_init_segment(
    info: &StreamInfo,
    duration: Option<std::time::Duration>,
    len: usize,
) -> Result<Bytes> {
    let init = init_segment(info, duration)?;
    // A free box is at least its 8-byte header.
    if init.len() + 8 > len {
        return Err(Error::NoRoom {
            needed: init.len() + 8,
            room: len,
        });
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&init);
    Free {
        zeroed: (len - init.len() - 8).into(),
    }
    .encode(&mut out)?;
    Ok(Bytes::from(out))
}

fn moov(info: &StreamInfo, duration: Option<std::time::Duration>) -> Moov {
    let duration_ms = duration.map(|d| d.as_millis() as u64);
    Moov {
        mvhd: Mvhd {
            timescale: MOVIE_TIMESCALE,
            duration: duration_ms.unwrap_or(0),
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: info.tracks.len() as u32 + 1,
            ..Default::default()
        },
        mvex: Some(Mvex {
            mehd: duration_ms.map(|d| Mehd {
                fragment_duration: d,
            }),
            trex: (0..info.tracks.len())
                .map(|i| Trex {
                    track_id: i as u32 + 1,
                    default_sample_description_index: 1,
                    ..Default::default()
                })
                .collect(),
        }),
        trak: info
            .tracks
            .iter()
            .enumerate()
            .map(|(i, t)| trak(i as u32 + 1, t))
            .collect(),
        ..Default::default()
    }
}

fn video_tkhd(track_id: u32, width: u32, height: u32) -> Tkhd {
    Tkhd {
        track_id,
        enabled: true,
        in_movie: true,
        width: (width.min(u16::MAX as u32) as u16).into(),
        height: (height.min(u16::MAX as u32) as u16).into(),
        ..Default::default()
    }
}

fn visual(width: u32, height: u32) -> Visual {
    Visual {
        data_reference_index: 1,
        width: width.min(u16::MAX as u32) as u16,
        height: height.min(u16::MAX as u32) as u16,
        horizresolution: 72.into(),
        vertresolution: 72.into(),
        frame_count: 1,
        compressor: "".into(),
        depth: 24,
    }
}

/// The HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3) of a track:
/// its profile, tier and level from the SPS, and the VPS, SPS and PPS.
fn hvcc(p: &crate::media::h265::H265Params) -> Hvcc {
    let ptl = p.profile();
    let array = |nal_unit_type: u8, nal: &bytes::Bytes| HvcCArray {
        completeness: true,
        nal_unit_type,
        nalus: vec![nal.to_vec()],
    };
    Hvcc {
        configuration_version: 1,
        general_profile_space: ptl.profile_space,
        general_tier_flag: ptl.tier,
        general_profile_idc: ptl.profile_idc,
        general_profile_compatibility_flags: ptl.compatibility,
        general_constraint_indicator_flags: ptl.constraints,
        general_level_idc: ptl.level_idc,
        chroma_format_idc: 1,
        length_size_minus_one: 3,
        num_temporal_layers: 1,
        temporal_id_nested: true,
        arrays: vec![
            array(crate::media::h265::NAL_VPS, &p.vps),
            array(crate::media::h265::NAL_SPS, &p.sps),
            array(crate::media::h265::NAL_PPS, &p.pps),
        ],
        ..Hvcc::new()
    }
}

fn trak(track_id: u32, track: &TrackInfo) -> Trak {
    type Header = (Option<Vmhd>, Option<Smhd>);
    let (tkhd, handler, name, minf_header, codec): (Tkhd, &[u8; 4], &str, Header, Codec) =
        match &track.params {
            TrackParams::H264(p) => (
                Tkhd {
                    track_id,
                    enabled: true,
                    in_movie: true,
                    width: (p.width.min(u16::MAX as u32) as u16).into(),
                    height: (p.height.min(u16::MAX as u32) as u16).into(),
                    ..Default::default()
                },
                b"vide",
                "VideoHandler",
                (Some(Vmhd::default()), None),
                Avc1 {
                    visual: Visual {
                        data_reference_index: 1,
                        width: p.width.min(u16::MAX as u32) as u16,
                        height: p.height.min(u16::MAX as u32) as u16,
                        horizresolution: 72.into(),
                        vertresolution: 72.into(),
                        frame_count: 1,
                        compressor: "".into(),
                        depth: 24,
                    },
                    avcc: Avcc {
                        configuration_version: 1,
                        avc_profile_indication: p.sps.get(1).copied().unwrap_or(66),
                        profile_compatibility: p.sps.get(2).copied().unwrap_or(0),
                        avc_level_indication: p.sps.get(3).copied().unwrap_or(31),
                        length_size: 4,
                        sequence_parameter_sets: vec![p.sps.to_vec()],
                        picture_parameter_sets: vec![p.pps.to_vec()],
                        // High profiles: chroma format and bit depths too.
                        ext: crate::media::h264::avcc_extension(&p.sps).map(
                            |(chroma_format, bit_depth_luma, bit_depth_chroma)| AvccExt {
                                chroma_format,
                                bit_depth_luma,
                                bit_depth_chroma,
                                sequence_parameter_sets_ext: Vec::new(),
                            },
                        ),
                    },
                    btrt: None,
                    colr: None,
                    pasp: None,
                    taic: None,
                    fiel: None,
                    spatial: None,
                }
                .into(),
            ),
            TrackParams::H265(p) => (
                video_tkhd(track_id, p.width, p.height),
                b"vide",
                "VideoHandler",
                (Some(Vmhd::default()), None),
                Hvc1 {
                    visual: visual(p.width, p.height),
                    hvcc: hvcc(p),
                    lhvc: None,
                    btrt: None,
                    colr: None,
                    pasp: None,
                    taic: None,
                    fiel: None,
                    ccst: None,
                    spatial: None,
                }
                .into(),
            ),
            // QuickTime's 'jpeg' sample entry, which ffmpeg and VLC read
            // as MJPEG: each sample is a whole JPEG picture.
            TrackParams::Jpeg(p) => (
                video_tkhd(track_id, p.width, p.height),
                b"vide",
                "VideoHandler",
                (Some(Vmhd::default()), None),
                Jpeg {
                    visual: visual(p.width, p.height),
                    ..Default::default()
                }
                .into(),
            ),
            TrackParams::Aac(p) => {
                let c = &p.config;
                let (c0, c1) = (
                    c.first().copied().unwrap_or(0),
                    c.get(1).copied().unwrap_or(0),
                );
                (
                    Tkhd {
                        track_id,
                        alternate_group: 1,
                        enabled: true,
                        in_movie: true,
                        volume: 1.into(),
                        ..Default::default()
                    },
                    b"soun",
                    "SoundHandler",
                    (None, Some(Smhd::default())),
                    Mp4a {
                        audio: Audio {
                            data_reference_index: 1,
                            channel_count: p.channels,
                            sample_size: 16,
                            // The field is 16.16: rates above 65535 Hz do not fit;
                            // decoders take the rate from the AudioSpecificConfig.
                            sample_rate: (p.sample_rate.min(u16::MAX as u32) as u16).into(),
                        },
                        esds: Esds {
                            es_desc: mp4_atom::esds::EsDescriptor {
                                es_id: track_id as u16,
                                depends_on_es_id: None,
                                url: None,
                                ocr_es_id: None,
                                stream_priority: 0,
                                dec_config: mp4_atom::esds::DecoderConfig {
                                    object_type_indication: 0x40,
                                    stream_type: 5,
                                    dec_specific: Some(mp4_atom::esds::DecoderSpecific {
                                        profile: c0 >> 3,
                                        freq_index: ((c0 & 7) << 1) | (c1 >> 7),
                                        chan_conf: (c1 >> 3) & 0xf,
                                        raw: c.to_vec(),
                                    }),
                                    ..Default::default()
                                },
                                sl_config: mp4_atom::esds::SLConfig {},
                            },
                        },
                        btrt: None,
                        taic: None,
                    }
                    .into(),
                )
            }
        };
    Trak {
        tkhd,
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: track.clock_rate,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: handler.into(),
                name: name.into(),
            },
            minf: Minf {
                vmhd: minf_header.0,
                smhd: minf_header.1,
                dinf: Dinf {
                    dref: Dref {
                        entries: vec![Url {
                            location: "".into(),
                        }
                        .into()],
                    },
                },
                stbl: Stbl {
                    stsd: Stsd {
                        codecs: vec![codec],
                    },
                    stco: Some(Stco::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..Default::default()
    }
}
