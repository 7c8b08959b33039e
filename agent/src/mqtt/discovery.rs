//! Home Assistant MQTT discovery, device-based (Home Assistant 2024.12 and
//! later): one retained message on `homeassistant/device/<id>/config`
//! announces the agent as one device with every entity in `cmps`, so the
//! device appears and disappears as a whole. Pure.
//!
//! Per stream: a recording switch, fps / bitrate / viewers sensors, a
//! "source OK" binary sensor and a keyframe button; per device: free disk,
//! recordings size and a restart button. Every entity reads the retained
//! `state` JSON and follows the `availability` topic.

use serde_json::{json, Map, Value};

use super::topics::Topics;

pub fn payload(topics: &Topics, device_id: &str, streams: &[String]) -> Value {
    let state = topics.state();
    let availability = topics.availability();
    let mut cmps = Map::new();
    let mut add = |key: String, mut entity: Value| {
        entity["unique_id"] = json!(format!("{device_id}_{key}"));
        entity["availability_topic"] = json!(availability);
        cmps.insert(key, entity);
    };
    for s in streams {
        let v = format!("value_json.streams[{}]", json!(s));
        add(
            format!("{s}_recording"),
            json!({
                "p": "switch",
                "name": format!("{s} recording"),
                "icon": "mdi:record-rec",
                "state_topic": state,
                "value_template": format!("{{{{ 'ON' if {v}.recording else 'OFF' }}}}"),
                "command_topic": topics.command("record"),
                "command_template": format!(
                    "{{\"stream\": {}, \"enabled\": {{{{ 'true' if value == 'ON' else 'false' }}}}}}",
                    json!(s)
                ),
                "payload_on": "ON",
                "payload_off": "OFF",
            }),
        );
        add(
            format!("{s}_fps"),
            json!({
                "p": "sensor",
                "name": format!("{s} frame rate"),
                "state_topic": state,
                "value_template": format!("{{{{ {v}.fps }}}}"),
                "unit_of_measurement": "fps",
                "state_class": "measurement",
            }),
        );
        add(
            format!("{s}_bitrate"),
            json!({
                "p": "sensor",
                "name": format!("{s} bit rate"),
                "state_topic": state,
                "value_template": format!("{{{{ {v}.bitrate_kbps }}}}"),
                "unit_of_measurement": "kbit/s",
                "device_class": "data_rate",
                "state_class": "measurement",
            }),
        );
        add(
            format!("{s}_viewers"),
            json!({
                "p": "sensor",
                "name": format!("{s} viewers"),
                "state_topic": state,
                "value_template": format!("{{{{ {v}.viewers.rtsp + {v}.viewers.hls }}}}"),
                "state_class": "measurement",
                "icon": "mdi:eye",
            }),
        );
        add(
            format!("{s}_source"),
            json!({
                "p": "binary_sensor",
                "name": format!("{s} source"),
                "device_class": "connectivity",
                "state_topic": state,
                "value_template": format!("{{{{ 'ON' if {v}.state == 'live' else 'OFF' }}}}"),
                "payload_on": "ON",
                "payload_off": "OFF",
            }),
        );
        add(
            format!("{s}_keyframe"),
            json!({
                "p": "button",
                "name": format!("{s} keyframe"),
                "command_topic": topics.command("keyframe"),
                "payload_press": json!({"stream": s}).to_string(),
            }),
        );
    }
    add(
        "disk_free".into(),
        json!({
            "p": "sensor",
            "name": "free disk",
            "state_topic": state,
            "value_template": "{{ value_json.disk.free_bytes }}",
            "unit_of_measurement": "B",
            "device_class": "data_size",
            "state_class": "measurement",
        }),
    );
    add(
        "recordings_size".into(),
        json!({
            "p": "sensor",
            "name": "recordings",
            "state_topic": state,
            "value_template": "{{ value_json.disk.recordings_bytes }}",
            "unit_of_measurement": "B",
            "device_class": "data_size",
            "state_class": "measurement",
        }),
    );
    add(
        "restart".into(),
        json!({
            "p": "button",
            "name": "restart",
            "device_class": "restart",
            "command_topic": topics.command("restart"),
            "payload_press": "{}",
        }),
    );
    json!({
        "dev": {
            "ids": [device_id],
            "name": format!("StreamSwitch {device_id}"),
            "mf": "StreamSwitch",
            "mdl": "Edge agent",
            "sw": env!("CARGO_PKG_VERSION"),
        },
        "o": {
            "name": "streamswitch",
            "sw": env!("CARGO_PKG_VERSION"),
        },
        "cmps": cmps,
        "qos": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entity_has_what_its_platform_requires() {
        let t = Topics::new("ss", "edge");
        let p = payload(&t, "edge", &["cam".into(), "door".into()]);
        let cmps = p["cmps"].as_object().unwrap();
        assert_eq!(cmps.len(), 2 * 6 + 3);
        for (key, e) in cmps {
            assert_eq!(e["unique_id"], format!("edge_{key}"));
            assert_eq!(e["availability_topic"], "ss/edge/availability");
            let needs: &[&str] = match e["p"].as_str().unwrap() {
                "switch" => &["command_topic", "state_topic"],
                "sensor" | "binary_sensor" => &["state_topic", "value_template"],
                "button" => &["command_topic", "payload_press"],
                other => panic!("platform {other}"),
            };
            for k in needs {
                assert!(e.get(*k).is_some(), "{key} lacks {k}");
            }
        }
        let press = cmps["cam_keyframe"]["payload_press"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(press).unwrap(),
            json!({"stream": "cam"})
        );
        assert_eq!(
            cmps["cam_fps"]["value_template"],
            "{{ value_json.streams[\"cam\"].fps }}"
        );
        assert_eq!(p["dev"]["ids"], json!(["edge"]));
    }
}
