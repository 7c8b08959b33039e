//! A small RTSP RECORD receiver for the uplink tests, written by hand so a
//! test can make it demand Digest credentials, read slowly, or hang up
//! after a while: it answers ANNOUNCE, SETUP and RECORD (and keepalives),
//! then counts the interleaved RTP it gets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

#[derive(Clone, Default)]
pub struct Behaviour {
    /// Demand Digest with these credentials.
    pub digest: Option<(String, String)>,
    /// Read at most this many bytes a second once recording.
    pub read_rate: Option<usize>,
    /// Close each connection this long after RECORD.
    pub hang_up_after: Option<Duration>,
    /// A 64 KiB receive buffer, so that a slow reader is felt at once.
    pub small_window: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Received {
    pub connections: u64,
    pub records: u64,
    pub auth_refused: u64,
    pub rtp_packets: u64,
    pub rtp_bytes: u64,
    pub sdp: String,
}

pub struct Receiver {
    pub port: u16,
    pub received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
}

const NONCE: &str = "0123456789abcdef";
const REALM: &str = "receiver";

impl Receiver {
    pub fn start(behaviour: Behaviour) -> Receiver {
        Self::start_on(0, behaviour)
    }

    /// On `port` (0: any free one).
    pub fn start_on(port: u16, behaviour: Behaviour) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let received: Arc<Mutex<Received>> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            received.lock().unwrap().connections += 1;
                            let (received, stop, b) =
                                (received.clone(), stop.clone(), behaviour.clone());
                            std::thread::spawn(move || serve(conn, &b, &received, &stop));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            });
        }
        Receiver {
            port,
            received,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{path}", self.port)
    }

    pub fn received(&self) -> Received {
        self.received.lock().unwrap().clone()
    }

    /// Stops accepting and ends every connection (within 100 ms).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn param<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let at = header.find(&format!("{name}="))? + name.len() + 1;
    let rest = &header[at..];
    Some(match rest.strip_prefix('"') {
        Some(q) => &q[..q.find('"')?],
        None => rest.split(',').next()?.trim(),
    })
}

/// Checks a Digest Authorization header for `method`.
fn digest_ok(header: Option<&str>, method: &str, user: &str, pass: &str) -> bool {
    let Some(h) = header.and_then(|h| h.strip_prefix("Digest ")) else {
        return false;
    };
    let (Some(u), Some(uri), Some(response)) =
        (param(h, "username"), param(h, "uri"), param(h, "response"))
    else {
        return false;
    };
    let ha1 = md5_hex(&format!("{user}:{REALM}:{pass}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let expected = match param(h, "qop") {
        Some(qop) => md5_hex(&format!(
            "{ha1}:{NONCE}:{}:{}:{qop}:{ha2}",
            param(h, "nc").unwrap_or(""),
            param(h, "cnonce").unwrap_or("")
        )),
        None => md5_hex(&format!("{ha1}:{NONCE}:{ha2}")),
    };
    u == user && response == expected
}

fn serve(conn: TcpStream, b: &Behaviour, received: &Mutex<Received>, stop: &AtomicBool) {
    conn.set_read_timeout(Some(Duration::from_millis(100))).ok();
    if b.small_window {
        let _ = socket2::SockRef::from(&conn).set_recv_buffer_size(64 << 10);
    }
    let mut writer = conn.try_clone().expect("clone");
    let mut reader = BufReader::new(conn);
    let mut recording_since: Option<Instant> = None;
    let mut budget_start = Instant::now();
    let mut budget_used = 0usize;
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if let (Some(since), Some(after)) = (recording_since, b.hang_up_after) {
            if since.elapsed() >= after {
                return;
            }
        }
        if let (Some(rate), Some(_)) = (b.read_rate, recording_since) {
            // Sleep off what was read beyond the allowed rate.
            let allowed = (budget_start.elapsed().as_secs_f64() * rate as f64) as usize;
            if budget_used > allowed {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            if budget_start.elapsed() > Duration::from_secs(5) {
                budget_start = Instant::now();
                budget_used = 0;
            }
        }
        let first = match reader.fill_buf() {
            Ok([]) => return,
            Ok(buf) => buf[0],
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        };
        if first == b'$' {
            let mut head = [0u8; 4];
            if read_full(&mut reader, &mut head, stop).is_err() {
                return;
            }
            let len = u16::from_be_bytes([head[2], head[3]]) as usize;
            let mut body = vec![0u8; len];
            if read_full(&mut reader, &mut body, stop).is_err() {
                return;
            }
            budget_used += len + 4;
            let mut r = received.lock().unwrap();
            if head[1] % 2 == 0 {
                r.rtp_packets += 1;
                r.rtp_bytes += len as u64;
            }
            continue;
        }
        // A request: the line, headers, maybe a body.
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => return,
            }
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            lines.push(line);
        }
        let Some(request_line) = lines.first().cloned() else {
            continue;
        };
        let header = |name: &str| {
            lines.iter().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let method = request_line.split(' ').next().unwrap_or("").to_owned();
        let cseq = header("CSeq").unwrap_or_default();
        let mut body = vec![
            0u8;
            header("Content-Length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0)
        ];
        if read_full(&mut reader, &mut body, stop).is_err() {
            return;
        }
        if let Some((user, pass)) = &b.digest {
            if !digest_ok(header("Authorization").as_deref(), &method, user, pass) {
                if header("Authorization").is_some() {
                    received.lock().unwrap().auth_refused += 1;
                }
                let reply = format!(
                    "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: Digest realm=\"{REALM}\", nonce=\"{NONCE}\"\r\n\r\n"
                );
                if writer.write_all(reply.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
        }
        let extra = match method.as_str() {
            "ANNOUNCE" => {
                received.lock().unwrap().sdp = String::from_utf8_lossy(&body).into_owned();
                String::new()
            }
            "SETUP" => format!(
                "Session: 42;timeout=60\r\nTransport: {}\r\n",
                header("Transport").unwrap_or_default()
            ),
            "RECORD" => {
                received.lock().unwrap().records += 1;
                recording_since = Some(Instant::now());
                budget_start = Instant::now();
                budget_used = 0;
                "Session: 42\r\n".to_owned()
            }
            _ => String::new(),
        };
        let reply = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}\r\n");
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8], stop: &AtomicBool) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        if stop.load(Ordering::Relaxed) {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        match r.read(&mut buf[done..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
