//! `streamswitch devices`: what this board offers the agent: cameras with
//! their formats, sizes and rates (as `v4l2-ctl --list-formats-ext`),
//! mem2mem encoders, microphones (as `arecord -L`), and which device
//! back-ends this build has. Nothing found is not an error.

use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;

#[derive(Serialize)]
pub struct Inventory {
    pub backends: Vec<&'static str>,
    pub cameras: Vec<Value>,
    pub encoders: Vec<Value>,
    pub microphones: Vec<Value>,
}

pub fn scan() -> Inventory {
    let (cameras, encoders) = video_devices();
    Inventory {
        backends: streamswitch_hal::BACKENDS.to_vec(),
        cameras,
        encoders,
        microphones: audio_devices(),
    }
}

/// Cameras and mem2mem encoders.
#[cfg(feature = "v4l2")]
fn video_devices() -> (Vec<Value>, Vec<Value>) {
    use streamswitch_hal::v4l2::{list_video_devices, VideoDeviceRole};
    let (mut cameras, mut encoders) = (Vec::new(), Vec::new());
    for d in list_video_devices() {
        let list = match d.role {
            VideoDeviceRole::Capture => &mut cameras,
            VideoDeviceRole::Encoder => &mut encoders,
            _ => continue,
        };
        list.extend(serde_json::to_value(&d).ok());
    }
    (cameras, encoders)
}

#[cfg(not(feature = "v4l2"))]
fn video_devices() -> (Vec<Value>, Vec<Value>) {
    (Vec::new(), Vec::new())
}

#[cfg(feature = "alsa")]
fn audio_devices() -> Vec<Value> {
    streamswitch_hal::alsa::list_audio_devices()
        .iter()
        .filter_map(|m| serde_json::to_value(m).ok())
        .collect()
}

#[cfg(not(feature = "alsa"))]
fn audio_devices() -> Vec<Value> {
    Vec::new()
}

/// The inventory as text for a person.
pub fn render(inv: &Inventory) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Back-ends: {}", inv.backends.join(", "));
    let _ = writeln!(out, "\nCameras ({}):", inv.cameras.len());
    for c in &inv.cameras {
        render_video(&mut out, c);
    }
    let _ = writeln!(out, "\nEncoders ({}):", inv.encoders.len());
    for e in &inv.encoders {
        render_video(&mut out, e);
    }
    let _ = writeln!(out, "\nMicrophones ({}):", inv.microphones.len());
    for m in &inv.microphones {
        let _ = writeln!(out, "  {}", text(&m["name"]));
        let description = text(&m["description"]);
        if !description.is_empty() {
            let _ = writeln!(out, "      {description}");
        }
    }
    out
}

fn render_video(out: &mut String, d: &Value) {
    let _ = writeln!(
        out,
        "  {}: {} (driver {}, {})",
        text(&d["path"]),
        text(&d["card"]),
        text(&d["driver"]),
        text(&d["bus"])
    );
    for f in d["formats"].as_array().into_iter().flatten() {
        let mark = if f["supported"] == Value::Bool(true) {
            ""
        } else {
            " (not taken)"
        };
        let _ = writeln!(
            out,
            "      {} {}{mark}",
            text(&f["fourcc"]),
            text(&f["description"])
        );
        for s in f["sizes"].as_array().into_iter().flatten() {
            if s["type"] == "discrete" {
                let rates: Vec<String> = s["fps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_f64)
                    .map(|r| {
                        format!("{r:.3}")
                            .trim_end_matches('0')
                            .trim_end_matches('.')
                            .to_owned()
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "          {}x{} @ {} fps",
                    s["width"],
                    s["height"],
                    rates.join(", ")
                );
            } else {
                let _ = writeln!(
                    out,
                    "          {}x{} to {}x{}",
                    s["min_width"], s["min_height"], s["max_width"], s["max_height"]
                );
            }
        }
    }
    let inputs: Vec<&str> = d["input_formats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["fourcc"].as_str())
        .collect();
    if !inputs.is_empty() {
        let _ = writeln!(out, "      takes: {}", inputs.join(", "));
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}
