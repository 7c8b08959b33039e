//! The broker connection, over rumqttc's MQTT 5 or 3.1.1 client behind one
//! small interface: a cloneable [`Link`] to publish and subscribe, and an
//! event stream of what arrives. rumqttc's `poll()` retries at once after
//! an error; the poller here pauses with our backoff instead, and resets it
//! on every ConnAck.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{LastWill as LastWill5, Packet as Packet5, PublishProperties};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{MqttConfig, MqttProtocol};
use crate::source::Backoff;

/// What the connection reports.
#[derive(Debug)]
pub enum Event {
    /// Connected (again): subscribe and announce.
    Connected,
    Message(Incoming),
    /// The connection failed; the poller retries after a pause.
    Failed(String),
}

#[derive(Debug)]
pub struct Incoming {
    pub topic: String,
    pub payload: Bytes,
    /// MQTT 5 request/response: where to answer, and what to echo.
    pub response_topic: Option<String>,
    pub correlation: Option<Bytes>,
}

/// Publishes and subscribes; cheap to clone.
#[derive(Clone)]
pub enum Link {
    V5(rumqttc::v5::AsyncClient),
    V311(rumqttc::AsyncClient),
}

/// Everything needed to connect: the broker, who we are, the last will.
pub struct Options {
    pub config: MqttConfig,
    pub client_id: String,
    pub password: Option<String>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub will_topic: String,
    pub will_payload: &'static str,
}

/// Requests queued between the agent and the connection: replies to a
/// burst of commands wait here while the broker is slow.
const QUEUE: usize = 256;
/// Largest packet taken or sent: room for a command over the 64 KiB limit
/// (answered with an error, not a dropped connection) and for discovery.
const MAX_PACKET: usize = 1 << 20;

impl Link {
    /// Connects in the background; events come on the returned channel.
    pub fn connect(
        options: Options,
    ) -> Result<(Link, mpsc::Receiver<Event>, JoinHandle<()>), String> {
        let broker = options.config.broker()?;
        let keep_alive = Duration::from_secs(options.config.keep_alive_seconds);
        let transport = match (&options.tls, broker.tls) {
            (Some(tls), true) => Transport::Tls(TlsConfiguration::Rustls(tls.clone())),
            (None, true) => return Err("mqtts:// without a TLS configuration".into()),
            (_, false) => Transport::Tcp,
        };
        let (events, rx) = mpsc::channel(QUEUE);
        let username = options.config.username.clone();
        match options.config.protocol {
            MqttProtocol::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(
                    options.client_id.clone(),
                    broker.host.clone(),
                    broker.port,
                );
                o.set_keep_alive(keep_alive)
                    .set_clean_start(true)
                    .set_max_packet_size(Some(MAX_PACKET as u32))
                    .set_transport(transport)
                    .set_request_channel_capacity(QUEUE)
                    .set_last_will(LastWill5::new(
                        options.will_topic.clone(),
                        options.will_payload,
                        QoS5::AtLeastOnce,
                        true,
                        None,
                    ));
                if let Some(user) = username {
                    o.set_credentials(user, options.password.clone().unwrap_or_default());
                }
                o.set_network_options(nodelay());
                let (client, eventloop) = rumqttc::v5::AsyncClient::new(o, QUEUE);
                let task = tokio::spawn(poll_v5(eventloop, events));
                Ok((Link::V5(client), rx, task))
            }
            MqttProtocol::V311 => {
                let mut o = rumqttc::MqttOptions::new(
                    options.client_id.clone(),
                    broker.host.clone(),
                    broker.port,
                );
                o.set_keep_alive(keep_alive)
                    .set_clean_session(true)
                    .set_max_packet_size(MAX_PACKET, MAX_PACKET)
                    .set_transport(transport)
                    .set_request_channel_capacity(QUEUE)
                    .set_last_will(rumqttc::LastWill::new(
                        options.will_topic.clone(),
                        options.will_payload,
                        rumqttc::QoS::AtLeastOnce,
                        true,
                    ));
                if let Some(user) = username {
                    o.set_credentials(user, options.password.clone().unwrap_or_default());
                }
                let (client, mut eventloop) = rumqttc::AsyncClient::new(o, QUEUE);
                eventloop.set_network_options(nodelay());
                let task = tokio::spawn(poll_v311(eventloop, events));
                Ok((Link::V311(client), rx, task))
            }
        }
    }

    /// Publishes at QoS 1. `correlation` is echoed as MQTT 5 correlation
    /// data (ignored by 3.1.1).
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        retain: bool,
        correlation: Option<Bytes>,
    ) -> Result<(), String> {
        let payload: Bytes = payload.into();
        match self {
            Link::V5(c) => {
                let props = PublishProperties {
                    correlation_data: correlation,
                    ..Default::default()
                };
                c.publish_with_properties(topic, QoS5::AtLeastOnce, retain, payload, props)
                    .await
            }
            .map_err(|e| e.to_string()),
            Link::V311(c) => c
                .publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    pub async fn subscribe(&self, topic: &str) -> Result<(), String> {
        match self {
            Link::V5(c) => c
                .subscribe(topic, QoS5::AtLeastOnce)
                .await
                .map_err(|e| e.to_string()),
            Link::V311(c) => c
                .subscribe(topic, rumqttc::QoS::AtLeastOnce)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    pub async fn disconnect(&self) {
        let _ = match self {
            Link::V5(c) => c.disconnect().await.map_err(|e| e.to_string()),
            Link::V311(c) => c.disconnect().await.map_err(|e| e.to_string()),
        };
    }
}

/// Replies are small packets each waiting on the last acknowledgement:
/// Nagle's algorithm and delayed ACKs would hold each for 40 ms.
fn nodelay() -> rumqttc::NetworkOptions {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n
}

fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(500), Duration::from_secs(30))
}

async fn poll_v5(mut eventloop: rumqttc::v5::EventLoop, events: mpsc::Sender<Event>) {
    use rumqttc::v5::Event as E;
    let mut pause = backoff();
    loop {
        let event = match eventloop.poll().await {
            Ok(E::Incoming(Packet5::ConnAck(_))) => {
                pause.reset();
                Event::Connected
            }
            Ok(E::Incoming(Packet5::Publish(p))) => {
                let props = p.properties.unwrap_or_default();
                Event::Message(Incoming {
                    topic: String::from_utf8_lossy(&p.topic).into_owned(),
                    payload: p.payload,
                    response_topic: props.response_topic,
                    correlation: props.correlation_data,
                })
            }
            Ok(E::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => continue,
            Err(rumqttc::v5::ConnectionError::RequestsDone) => return,
            Err(e) => {
                if events.send(Event::Failed(e.to_string())).await.is_err() {
                    return;
                }
                tokio::time::sleep(pause.next_pause()).await;
                continue;
            }
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}

async fn poll_v311(mut eventloop: rumqttc::EventLoop, events: mpsc::Sender<Event>) {
    use rumqttc::{Event as E, Packet};
    let mut pause = backoff();
    loop {
        let event = match eventloop.poll().await {
            Ok(E::Incoming(Packet::ConnAck(_))) => {
                pause.reset();
                Event::Connected
            }
            Ok(E::Incoming(Packet::Publish(p))) => Event::Message(Incoming {
                topic: p.topic,
                payload: p.payload,
                response_topic: None,
                correlation: None,
            }),
            Ok(E::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => continue,
            Err(rumqttc::ConnectionError::RequestsDone) => return,
            Err(e) => {
                if events.send(Event::Failed(e.to_string())).await.is_err() {
                    return;
                }
                tokio::time::sleep(pause.next_pause()).await;
                continue;
            }
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}

/// The TLS settings for `mqtts://`: the CA file's certificates, or the
/// system's roots; the ring provider only.
pub fn tls_config(config: &MqttConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            let pem =
                std::fs::read(path).map_err(|e| format!("mqtt.ca_file {}: {e}", path.display()))?;
            let mut added = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("mqtt.ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("mqtt.ca_file {}: {e}", path.display()))?;
                added += 1;
            }
            if added == 0 {
                return Err(format!(
                    "mqtt.ca_file {}: no certificate in it",
                    path.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no system CA certificates found: set mqtt.ca_file".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(tls))
}
