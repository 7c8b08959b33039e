//! MQTT: the stream manager's command set over a broker, the agent's state
//! published retained, availability with a last will, and Home Assistant
//! discovery. One adapter over [`Control`], like the HTTP API.
//!
//! - `<prefix>/<device_id>/availability`: `online` (retained) on every
//!   connect; the last will and a clean shutdown say `offline`.
//! - `<prefix>/<device_id>/state`: the [`crate::control::report`] as
//!   retained JSON, on change (at most twice a second) and every
//!   `telemetry_seconds`.
//! - `<prefix>/<device_id>/cmd/<name>`: commands ([`command`]); the reply
//!   goes to the MQTT 5 response topic with the correlation data, or to
//!   `<prefix>/<device_id>/reply/<name>`. Commands run one after the other
//!   on a task of their own, in arrival order, off the media path.
//!
//! The broker may be down at start or go away: media goes on, the
//! connection is retried with backoff, and every reconnect subscribes and
//! announces again. A change of `[mqtt]` or the device id reconnects.

mod client;
pub mod command;
pub mod discovery;
pub mod topics;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Config, MqttConfig};
use crate::control::Control;
use crate::record::listing;
use client::{Event, Incoming, Link, Options};
use command::{Command, Replies};
use topics::{Topics, HA_STATUS};

/// State changes are published at most this often.
const STATE_DEBOUNCE: Duration = Duration::from_millis(500);
/// How long a clean shutdown waits for `offline` to reach the broker.
const GOODBYE: Duration = Duration::from_secs(2);
/// Commands queued while one runs; more are refused with an error reply.
const COMMAND_QUEUE: usize = 1024;

/// Runs the MQTT adapter until `shutdown`, following `[mqtt]` as it changes.
pub async fn run(control: Arc<Control>, shutdown: CancellationToken) {
    let mut configs = control.watch_config();
    // Whether the device was announced to Home Assistant: turning discovery
    // off removes it.
    let mut announced = false;
    loop {
        let config = configs.borrow_and_update().clone();
        let ended = match &config.mqtt {
            Some(m) => {
                session(
                    &control,
                    &config,
                    m,
                    &mut configs,
                    &shutdown,
                    &mut announced,
                )
                .await
            }
            None => tokio::select! {
                r = configs.changed() => if r.is_err() { End::Shutdown } else { End::Reconfigure },
                _ = shutdown.cancelled() => End::Shutdown,
            },
        };
        if matches!(ended, End::Shutdown) {
            return;
        }
    }
}

enum End {
    Shutdown,
    Reconfigure,
}

/// What a session compares to decide that the state changed.
fn signature(states: &[crate::control::StreamState], revision: u64) -> String {
    let mut sig = revision.to_string();
    for s in states {
        let rec = s.recording.as_ref();
        sig.push_str(&format!(
            "|{}:{}:{:?}:{}:{:?}:{}",
            s.name,
            s.state,
            s.last_error,
            rec.is_some_and(|r| r.enabled),
            rec.and_then(|r| r.last_error.as_deref()),
            s.source_enabled
        ));
        for u in &s.uplinks {
            sig.push_str(&format!(":{}", u.state.as_str()));
        }
    }
    sig
}

async fn session(
    control: &Arc<Control>,
    config: &Arc<Config>,
    mqtt: &MqttConfig,
    configs: &mut tokio::sync::watch::Receiver<Arc<Config>>,
    shutdown: &CancellationToken,
    announced: &mut bool,
) -> End {
    let device_id = config.agent.device_id.clone();
    let topics = Topics::new(&mqtt.prefix, &device_id);
    let options = match options(mqtt, &device_id, &topics) {
        Ok(o) => o,
        Err(e) => {
            warn!("mqtt not started: {e}");
            return wait_for_change(configs, shutdown).await;
        }
    };
    let (link, mut events, poller) = match Link::connect(options) {
        Ok(c) => c,
        Err(e) => {
            warn!("mqtt not started: {e}");
            return wait_for_change(configs, shutdown).await;
        }
    };
    info!("mqtt: connecting to {} as {device_id}", mqtt.url);
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let worker = tokio::spawn(run_commands(
        control.clone(),
        link.clone(),
        topics.clone(),
        command_rx,
    ));
    let mut connected = false;
    let mut last_error = String::new();
    let mut last_sig = String::new();
    let mut last_state = Instant::now() - STATE_DEBOUNCE;
    let mut telemetry = tokio::time::interval(Duration::from_secs(mqtt.telemetry_seconds));
    let mut check = tokio::time::interval(STATE_DEBOUNCE);
    let mut streams: Vec<String> = config.streams.iter().map(|s| s.name.clone()).collect();
    let end = loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Connected) => {
                    connected = true;
                    last_error.clear();
                    info!("mqtt: connected to {}", mqtt.url);
                    for topic in [topics.commands(), HA_STATUS.to_owned()] {
                        if let Err(e) = link.subscribe(&topic).await {
                            warn!("mqtt: cannot subscribe to {topic}: {e}");
                        }
                    }
                    publish(&link, &topics.availability(), "online", true).await;
                    publish_state(control, &link, &topics).await;
                    last_state = Instant::now();
                    announce(&link, &topics, &device_id, &streams, mqtt.homeassistant, announced).await;
                }
                Some(Event::Message(m)) => {
                    if m.topic == HA_STATUS {
                        if m.payload.as_ref() == b"online" && mqtt.homeassistant {
                            announce(&link, &topics, &device_id, &streams, true, announced).await;
                        }
                    } else if topics.command_name(&m.topic).is_some() {
                        if let Err(mpsc::error::TrySendError::Full(m)) = commands.try_send(m) {
                            refuse(&link, &topics, m, "too many commands queued; try again").await;
                        }
                    }
                }
                Some(Event::Failed(e)) => {
                    connected = false;
                    if e != last_error {
                        warn!("mqtt: {}: {e}; retrying with backoff", mqtt.url);
                        last_error = e;
                    }
                }
                None => break End::Reconfigure,
            },
            _ = check.tick(), if connected => {
                let sig = signature(&control.stream_states().await, control.revision());
                if sig != last_sig && last_state.elapsed() >= STATE_DEBOUNCE {
                    last_sig = sig;
                    publish_state(control, &link, &topics).await;
                    last_state = Instant::now();
                }
            }
            _ = telemetry.tick(), if connected => {
                publish_state(control, &link, &topics).await;
                last_state = Instant::now();
            }
            changed = configs.changed() => {
                if changed.is_err() {
                    break End::Shutdown;
                }
                let new = configs.borrow().clone();
                if new.mqtt.as_ref() != Some(mqtt) || new.agent.device_id != device_id {
                    if connected && !new.mqtt.as_ref().is_some_and(|m| m.homeassistant) && *announced {
                        // Discovery turned off (or MQTT removed): the device goes.
                        publish(&link, &topics.discovery(), "", true).await;
                        *announced = false;
                    }
                    break End::Reconfigure;
                }
                let names: Vec<String> = new.streams.iter().map(|s| s.name.clone()).collect();
                if names != streams {
                    streams = names;
                    if connected {
                        announce(&link, &topics, &device_id, &streams, mqtt.homeassistant, announced).await;
                    }
                }
            }
            _ = shutdown.cancelled() => break End::Shutdown,
        }
    };
    worker.abort();
    if connected {
        publish(&link, &topics.availability(), "offline", true).await;
    }
    link.disconnect().await;
    if tokio::time::timeout(GOODBYE, poller).await.is_err() {
        warn!("mqtt: the broker did not take the goodbye in time");
    }
    end
}

async fn wait_for_change(
    configs: &mut tokio::sync::watch::Receiver<Arc<Config>>,
    shutdown: &CancellationToken,
) -> End {
    tokio::select! {
        r = configs.changed() => if r.is_err() { End::Shutdown } else { End::Reconfigure },
        _ = shutdown.cancelled() => End::Shutdown,
    }
}

fn options(mqtt: &MqttConfig, device_id: &str, topics: &Topics) -> Result<Options, String> {
    let password = match (&mqtt.password, &mqtt.password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("mqtt.password_file {}: {e}", path.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
        ),
        (None, None) => None,
    };
    let tls = if mqtt.broker()?.tls {
        Some(client::tls_config(mqtt)?)
    } else {
        None
    };
    Ok(Options {
        config: mqtt.clone(),
        client_id: mqtt
            .client_id
            .clone()
            .unwrap_or_else(|| format!("streamswitch-{device_id}")),
        password,
        tls,
        will_topic: topics.availability(),
        will_payload: "offline",
    })
}

async fn publish(link: &Link, topic: &str, payload: &str, retain: bool) {
    if let Err(e) = link
        .publish(
            topic,
            Bytes::copy_from_slice(payload.as_bytes()),
            retain,
            None,
        )
        .await
    {
        warn!("mqtt: cannot publish to {topic}: {e}");
    }
}

async fn publish_state(control: &Control, link: &Link, topics: &Topics) {
    let report = control.report().await;
    let text = serde_json::to_string(&report).unwrap_or_default();
    publish(link, &topics.state(), &text, true).await;
}

async fn announce(
    link: &Link,
    topics: &Topics,
    device_id: &str,
    streams: &[String],
    enabled: bool,
    announced: &mut bool,
) {
    if enabled {
        let payload = discovery::payload(topics, device_id, streams).to_string();
        publish(link, &topics.discovery(), &payload, true).await;
        *announced = true;
    } else if *announced {
        publish(link, &topics.discovery(), "", true).await;
        *announced = false;
    }
}

/// Answers a command that is not carried out with an error.
async fn refuse(link: &Link, topics: &Topics, m: Incoming, error: &str) {
    let name = topics.command_name(&m.topic).unwrap_or("unknown");
    let id = command::parse(name, &m.payload).id;
    let topic = m.response_topic.unwrap_or_else(|| topics.reply(name));
    let reply = command::error_reply(&id, error).to_string();
    let _ = link.publish(&topic, reply, false, m.correlation).await;
}

/// Carries commands out one after the other and answers each.
async fn run_commands(
    control: Arc<Control>,
    link: Link,
    topics: Topics,
    mut rx: mpsc::Receiver<Incoming>,
) {
    let mut replies = Replies::default();
    while let Some(m) = rx.recv().await {
        let Some(name) = topics.command_name(&m.topic).map(str::to_owned) else {
            continue;
        };
        let request = command::parse(&name, &m.payload);
        let mut restart = false;
        let reply = match replies.get(&name, &request.id) {
            Some(r) => r.clone(),
            None => {
                let reply = match request.command {
                    Ok(c) => {
                        restart = c == Command::Restart;
                        match execute(&control, c).await {
                            Ok(result) => command::ok_reply(&request.id, result),
                            Err(e) => command::error_reply(&request.id, &e),
                        }
                    }
                    Err(e) => command::error_reply(&request.id, &e),
                };
                replies.remember(&name, &request.id, &reply);
                reply
            }
        };
        let topic = m.response_topic.unwrap_or_else(|| topics.reply(&name));
        if let Err(e) = link
            .publish(&topic, reply.to_string(), false, m.correlation)
            .await
        {
            warn!("mqtt: cannot reply on {topic}: {e}");
        }
        if restart {
            // The reply goes out before the agent stops.
            tokio::time::sleep(Duration::from_millis(300)).await;
            control.request_restart();
        }
    }
}

async fn execute(control: &Control, command: Command) -> Result<Value, String> {
    match command {
        Command::Status => Ok(json!(control.report().await)),
        Command::Record { stream, enabled } => control
            .set_recording(&stream, enabled)
            .map(|s| json!(s))
            .map_err(|e| e.to_string()),
        Command::Stream { stream, enabled } => {
            control
                .set_stream_enabled(&stream, enabled)
                .await
                .map_err(|e| e.to_string())?;
            let states = control.stream_states().await;
            Ok(json!(states.into_iter().find(|s| s.name == stream)))
        }
        Command::Keyframe { stream } => control
            .request_keyframe(&stream)
            .map(|()| json!({"stream": stream}))
            .map_err(|e| e.to_string()),
        Command::Recordings { stream, from, to } => {
            if control.streams().get(&stream).is_none() {
                return Err(format!("no stream named `{stream}`"));
            }
            let from = listing::parse_time("from", from.as_deref())?;
            let to = listing::parse_time("to", to.as_deref())?;
            let root = control.recorders().root().clone();
            let found =
                tokio::task::spawn_blocking(move || listing::find(&root, Some(&stream), from, to))
                    .await
                    .map_err(|e| e.to_string())?;
            Ok(json!(found))
        }
        Command::ConfigGet => {
            let mut config = control.config().to_json();
            config["revision"] = json!(control.revision());
            Ok(config)
        }
        Command::ConfigSet { config } => control
            .patch_config(&config)
            .await
            .map(|applied| json!(applied))
            .map_err(|e| e.to_string()),
        Command::Restart => Ok(json!({"restarting": true})),
        Command::Uplink {
            stream,
            target,
            enabled,
        } => {
            control
                .set_uplink_enabled(&stream, &target, enabled)
                .await
                .map_err(|e| e.to_string())?;
            let states = control.stream_states().await;
            let s = states.into_iter().find(|s| s.name == stream);
            Ok(json!(s.map(|s| s.uplinks)))
        }
    }
}
