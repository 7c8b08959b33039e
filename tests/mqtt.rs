//! MQTT for the tests: a real Mosquitto broker on a free port (plain or
//! TLS), and a small MQTT 5 client (rumqttc on a thread of its own) that
//! records every message it gets and sends commands with a response topic
//! and correlation data.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::Value;

/// A Mosquitto broker, killed on drop.
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    tls: Option<TlsFiles>,
    child: Option<Child>,
}

/// The broker's certificate chain, made with openssl at test time.
#[derive(Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Broker {
    pub fn start() -> Broker {
        Self::start_with(None)
    }

    /// A broker on mqtts only, with a server certificate for 127.0.0.1
    /// signed by a fresh test CA (`tls.ca`).
    pub fn start_tls() -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = make_certificates(dir.path());
        let mut broker = Self::start_with(Some(files));
        broker.dir = dir;
        broker
    }

    fn start_with(tls: Option<TlsFiles>) -> Broker {
        let mut broker = Broker {
            port: 0,
            dir: tempfile::tempdir().expect("tempdir"),
            tls,
            child: None,
        };
        broker.spawn();
        broker
    }

    pub fn ca(&self) -> &Path {
        &self.tls.as_ref().expect("a TLS broker").ca
    }

    fn spawn(&mut self) {
        for _ in 0..5 {
            if self.port == 0 || self.child.is_some() {
                self.port = free_port();
            }
            let mut conf = format!(
                // `user root`: started as root, mosquitto would otherwise
                // drop to its own user and could not read the test's
                // certificate files.
                "user root\nset_tcp_nodelay true\nlistener {} 127.0.0.1\nallow_anonymous true\npersistence false\n",
                self.port
            );
            if let Some(t) = &self.tls {
                conf.push_str(&format!(
                    "cafile {}\ncertfile {}\nkeyfile {}\n",
                    t.ca.display(),
                    t.cert.display(),
                    t.key.display()
                ));
            }
            let path = self.dir.path().join("mosquitto.conf");
            std::fs::write(&path, conf).expect("write mosquitto.conf");
            let mut child = Command::new("mosquitto")
                .arg("-c")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mosquitto (tests/setup.sh installs it)");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    self.child = Some(child);
                    return;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("mosquitto did not start");
    }

    /// Stops the broker (every connection drops) and starts it again on the
    /// same port.
    pub fn restart(&mut self) {
        self.stop();
        std::thread::sleep(Duration::from_millis(500));
        self.spawn_on_same_port();
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn spawn_on_same_port(&mut self) {
        let port = self.port;
        self.child = None;
        self.spawn();
        assert_eq!(self.port, port, "the broker came back on another port");
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn make_certificates(dir: &Path) -> TlsFiles {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=StreamSwitch test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext.cnf");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
    TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// The `[mqtt]` section for the agent.
pub fn agent_section(url: &str, extra: &str) -> String {
    format!("[mqtt]\nurl = \"{url}\"\nprefix = \"ss\"\ntelemetry_seconds = 2\nkeep_alive_seconds = 5\n{extra}\n")
}

#[derive(Clone, Debug)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    pub correlation: Option<Bytes>,
    pub at: Instant,
}

impl Message {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| {
            panic!(
                "{}: not JSON ({e}): {}",
                self.topic,
                String::from_utf8_lossy(&self.payload)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// An MQTT 5 test client: every message it gets is kept in order.
pub struct Client {
    client: AsyncClient,
    messages: Arc<Mutex<Vec<Message>>>,
    runtime: tokio::runtime::Runtime,
    pub response_topic: String,
}

impl Client {
    pub fn connect(port: u16, subscriptions: &[&str]) -> Client {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let id = format!("test-{}", rand_suffix());
        let mut options = MqttOptions::new(id.clone(), "127.0.0.1", port);
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(Some(1 << 20))
            .set_network_options(network);
        let (client, mut eventloop) = AsyncClient::new(options, 2048);
        let messages: Arc<Mutex<Vec<Message>>> = Arc::default();
        let (connected_tx, connected_rx) = std::sync::mpsc::channel();
        {
            let messages = messages.clone();
            runtime.spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            let _ = connected_tx.send(());
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            messages.lock().unwrap().push(Message {
                                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                                payload: p.payload,
                                retain: p.retain,
                                correlation: p.properties.and_then(|pr| pr.correlation_data),
                                at: Instant::now(),
                            });
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            });
        }
        connected_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the test client did not connect");
        let response_topic = format!("test/{id}/responses");
        let c = Client {
            client,
            messages,
            runtime,
            response_topic,
        };
        for s in subscriptions
            .iter()
            .copied()
            .chain([c.response_topic.as_str()])
        {
            let topic = s.to_owned();
            let client = c.client.clone();
            c.runtime
                .block_on(client.subscribe(topic, QoS::AtLeastOnce))
                .expect("subscribe");
        }
        // Subscriptions take effect once the broker acknowledges them.
        std::thread::sleep(Duration::from_millis(300));
        c
    }

    pub fn publish(&self, topic: &str, payload: &str, retain: bool) {
        let client = self.client.clone();
        let (topic, payload) = (topic.to_owned(), payload.to_owned());
        self.runtime
            .block_on(client.publish(topic, QoS::AtLeastOnce, retain, payload))
            .expect("publish");
    }

    /// Publishes a command with our response topic and `correlation`.
    pub fn send_command(&self, topic: &str, payload: &str, correlation: &str) {
        let props = PublishProperties {
            response_topic: Some(self.response_topic.clone()),
            correlation_data: Some(Bytes::copy_from_slice(correlation.as_bytes())),
            ..Default::default()
        };
        let client = self.client.clone();
        let (topic, payload) = (topic.to_owned(), payload.to_owned());
        self.runtime
            .block_on(client.publish_with_properties(
                topic,
                QoS::AtLeastOnce,
                false,
                payload,
                props,
            ))
            .expect("publish");
    }

    /// Sends a command and waits for the reply that carries its correlation.
    pub fn request(&self, topic: &str, payload: &str) -> Value {
        let correlation = format!("c-{}", rand_suffix());
        self.send_command(topic, payload, &correlation);
        self.wait_for(Duration::from_secs(20), |m| {
            m.topic == self.response_topic
                && m.correlation.as_deref() == Some(correlation.as_bytes())
        })
        .unwrap_or_else(|| panic!("no reply to {topic} {:.200}", payload))
        .json()
    }

    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.messages.lock().unwrap().clear();
    }

    /// The first message (kept so far or arriving) matching `pred`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Message) -> bool) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.messages().into_iter().find(|m| pred(m)) {
                return Some(m);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The last message on `topic` matching `pred`, waiting for one.
    pub fn latest(
        &self,
        topic: &str,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .messages()
                .into_iter()
                .rfind(|m| m.topic == topic)
                .filter(|m| pred(m));
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
