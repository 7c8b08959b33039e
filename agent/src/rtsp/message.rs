//! Framing of what a client sends on the RTSP connection: requests (parsed
//! by `rtsp-types`) and interleaved `$` frames, with the limits and status
//! codes of bad input decided here, without any I/O.

use rtsp_types::{Message, Request, StatusCode, Version};

/// Largest request accepted, head and body together.
pub const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug)]
pub enum Framed {
    /// More bytes are needed.
    Incomplete,
    /// A request, and how many bytes of the buffer it used.
    Request(Box<Request<Vec<u8>>>, usize),
    /// An interleaved frame (`$`, channel, 16-bit length, payload): the
    /// payload is `buf[4..consumed]`.
    Interleaved { channel: u8, consumed: usize },
    /// Bytes to drop: blank lines between messages, or a response (we send
    /// no requests, so a response is never awaited).
    Skip(usize),
    /// A bad request: answer with `status`, then drop `consumed` bytes, or
    /// close the connection when the framing cannot be recovered (`None`).
    Error {
        status: StatusCode,
        cseq: Option<String>,
        consumed: Option<usize>,
    },
}

/// Frames the first message of `buf`, scanning it from the start.
pub fn frame(buf: &[u8]) -> Framed {
    Framer::default().frame(buf)
}

/// Frames what one connection sends, remembering how far the search for
/// the end of the head got, so that a request dribbled in a byte at a time
/// costs linear, not quadratic, time on the thread that serves everyone.
#[derive(Debug, Default)]
pub struct Framer {
    /// Bytes at the front of the buffer known to hold no `\r\n\r\n` end.
    scanned: usize,
}

impl Framer {
    /// Frames the first message of `buf`: the same buffer as the last call,
    /// possibly grown, unless that call returned something to consume.
    pub fn frame(&mut self, buf: &[u8]) -> Framed {
        let framed = frame_from(buf, &mut self.scanned);
        if !matches!(framed, Framed::Incomplete) {
            self.scanned = 0;
        }
        framed
    }

    /// How far into the buffer the head search got (for tests).
    pub fn scanned(&self) -> usize {
        self.scanned
    }
}

fn frame_from(buf: &[u8], scanned: &mut usize) -> Framed {
    let blank = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if blank > 0 {
        return Framed::Skip(blank);
    }
    match buf.first() {
        None => return Framed::Incomplete,
        Some(b'$') => return interleaved(buf),
        Some(_) => {}
    }
    let Some(head_len) = find_head_end(buf, scanned) else {
        return if buf.len() > MAX_REQUEST {
            Framed::Error {
                status: StatusCode::RequestMessageBodyTooLarge,
                cseq: None,
                consumed: None,
            }
        } else {
            Framed::Incomplete
        };
    };
    let head = &buf[..head_len];
    // CSeq is echoed in the response: one number, never anything to inject.
    let cseqs = headers(head, "cseq").count();
    let cseq = header(head, "cseq")
        .filter(|v| cseqs == 1 && !v.is_empty() && v.len() <= 10)
        .filter(|v| v.iter().all(u8::is_ascii_digit))
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let error = |status, consumed| Framed::Error {
        status,
        cseq: cseq.clone(),
        consumed,
    };
    let body_len = match content_length(head) {
        Ok(n) => n,
        Err(()) => return error(StatusCode::BadRequest, Some(head_len)),
    };
    let total = head_len.saturating_add(body_len);
    if total > MAX_REQUEST {
        return error(StatusCode::RequestMessageBodyTooLarge, None);
    }
    if buf.len() < total {
        return Framed::Incomplete;
    }
    if head.starts_with(b"RTSP/") {
        return Framed::Skip(total);
    }
    if has_bare_cr_or_lf(head)
        || has_folded_line(head)
        || (cseq.is_none() && cseqs > 0)
        || !distinct_header_names(head)
    {
        return error(StatusCode::BadRequest, Some(total));
    }
    match Message::<Vec<u8>>::parse(&buf[..total]) {
        Ok((Message::Request(mut request), used)) if used == total => {
            if request.version() != Version::V1_0 {
                return error(StatusCode::RTSPVersionNotSupported, Some(total));
            }
            if !request.request_uri().is_none_or(is_rtsp_url) {
                return error(StatusCode::BadRequest, Some(total));
            }
            trim_joined_headers(&mut request);
            Framed::Request(Box::new(request), total)
        }
        _ => error(StatusCode::BadRequest, Some(total)),
    }
}

/// True for an `rtsp:`, `rtsps:` or `rtspu:` URL. Other schemes name
/// nothing here, and the `url` crate does not read all of them back the
/// same once written: `file://h//c:/cam` keeps its host, but written as
/// `file://h/c:/cam` the drive letter drops it (a fuzz finding).
fn is_rtsp_url(url: &rtsp_types::Url) -> bool {
    matches!(url.scheme(), "rtsp" | "rtsps" | "rtspu")
}

/// True when a CR or LF in `head` is not part of a CRLF. rtsp-types takes
/// them as part of a header value; we refuse them, so that no line break
/// can hide in a value (a fuzz finding).
fn has_bare_cr_or_lf(head: &[u8]) -> bool {
    head.iter().enumerate().any(|(i, b)| match b {
        b'\r' => head.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || head[i - 1] != b'\r',
        _ => false,
    })
}

/// True when a header line continues the one before it (obsolete line
/// folding): rtsp-types joins it to that header, which our own look at the
/// head (CSeq, Content-Length) would miss (a fuzz finding).
fn has_folded_line(head: &[u8]) -> bool {
    head.split(|b| *b == b'\n')
        .skip(1)
        .any(|line| line.starts_with(b" ") || line.starts_with(b"\t"))
}

/// False when a header name is empty or a prefix of another one. rtsp-types
/// 0.1 orders header names by their common prefix only, so it would merge
/// `C` into `CSeq`, or an empty name into any header (a fuzz finding).
fn distinct_header_names(head: &[u8]) -> bool {
    let mut names: Vec<Vec<u8>> = head
        .split(|b| *b == b'\n')
        .skip(1)
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            Some(line[..colon].to_ascii_lowercase())
        })
        .collect();
    names.sort();
    names.dedup();
    // In sorted order a name is a prefix of a later one only if it is a
    // prefix of the next one.
    names.first().is_none_or(|n| !n.is_empty())
        && names.windows(2).all(|w| !w[1].starts_with(&w[0]))
}

/// rtsp-types joins a repeated header with ", "; an empty repeat leaves a
/// trailing separator that it would trim when reading the request again.
/// Trimming it here keeps a framed request the same once written back.
fn trim_joined_headers(request: &mut Request<Vec<u8>>) {
    let untrimmed: Vec<_> = request
        .headers()
        .filter(|(_, v)| v.as_str().len() != v.as_str().trim_end().len())
        .map(|(n, v)| (n.clone(), v.as_str().trim_end().to_owned()))
        .collect();
    for (name, value) in untrimmed {
        request.insert_header(name, value);
    }
}

fn interleaved(buf: &[u8]) -> Framed {
    if buf.len() < 4 {
        return Framed::Incomplete;
    }
    let consumed = 4 + u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if buf.len() < consumed {
        return Framed::Incomplete;
    }
    Framed::Interleaved {
        channel: buf[1],
        consumed,
    }
}

/// The length of the head, up to and including the empty line. The search
/// starts at `*scanned` and leaves there where the next one should start.
fn find_head_end(buf: &[u8], scanned: &mut usize) -> Option<usize> {
    let window = &buf[..buf.len().min(MAX_REQUEST + 4)];
    let from = (*scanned).min(window.len());
    match window[from..].windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => {
            // Found: a later call (the body is not all there yet) finds it
            // again at once.
            *scanned = from + p;
            Some(from + p + 4)
        }
        None => {
            // The last 3 bytes may begin the end marker.
            *scanned = window.len().saturating_sub(3);
            None
        }
    }
}

/// The value of the first header called `name` (lowercase) in `head`.
fn header<'a>(head: &'a [u8], name: &'a str) -> Option<&'a [u8]> {
    headers(head, name).next()
}

fn headers<'a>(head: &'a [u8], name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    head.split(|b| *b == b'\n').skip(1).filter_map(move |line| {
        let colon = line.iter().position(|b| *b == b':')?;
        let (key, value) = line.split_at(colon);
        key.eq_ignore_ascii_case(name.as_bytes())
            .then(|| value[1..].trim_ascii())
    })
}

/// The body length: 0 without Content-Length; an error when it is not one
/// number or is given twice (the two could disagree).
fn content_length(head: &[u8]) -> Result<usize, ()> {
    let mut values = headers(head, "content-length");
    let Some(value) = values.next() else {
        return Ok(0);
    };
    if values.next().is_some() || value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or(())
}

#[cfg(test)]
mod tests {
    use rtsp_types::Method;

    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n";

    fn request(f: Framed) -> (Request<Vec<u8>>, usize) {
        match f {
            Framed::Request(r, n) => (*r, n),
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn partial_requests_are_incomplete_at_every_split() {
        for i in 0..OPTIONS.len() {
            assert!(matches!(frame(&OPTIONS[..i]), Framed::Incomplete), "{i}");
        }
        let (r, n) = request(frame(OPTIONS));
        assert_eq!(n, OPTIONS.len());
        assert_eq!(r.method(), Method::Options);
    }

    #[test]
    fn pipelined_requests_come_one_by_one_with_their_bodies() {
        let mut buf =
            b"SET_PARAMETER rtsp://h/cam RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 5\r\n\r\nhello"
                .to_vec();
        buf.extend_from_slice(OPTIONS);
        let (r, n) = request(frame(&buf));
        assert_eq!(r.method(), Method::SetParameter);
        assert_eq!(r.body(), b"hello");
        let (r, m) = request(frame(&buf[n..]));
        assert_eq!(r.method(), Method::Options);
        assert_eq!(n + m, buf.len());
        // A body not fully there yet.
        assert!(matches!(frame(&buf[..n - 1]), Framed::Incomplete));
    }

    #[test]
    fn interleaved_frames_and_blank_lines_are_skipped() {
        let mut buf = vec![b'$', 1, 0, 3, 9, 9, 9];
        assert!(matches!(frame(&buf[..5]), Framed::Incomplete));
        assert!(matches!(
            frame(&buf),
            Framed::Interleaved {
                channel: 1,
                consumed: 7
            }
        ));
        buf.clear();
        buf.extend_from_slice(b"\r\n\r\n");
        buf.extend_from_slice(OPTIONS);
        assert!(matches!(frame(&buf), Framed::Skip(4)));
        assert!(matches!(
            frame(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"),
            Framed::Skip(28)
        ));
    }

    #[test]
    fn oversized_requests_get_413_and_close() {
        let endless = vec![b'a'; MAX_REQUEST + 1];
        assert!(matches!(
            frame(&endless),
            Framed::Error {
                status: StatusCode::RequestMessageBodyTooLarge,
                consumed: None,
                ..
            }
        ));
        let big_body =
            b"SET_PARAMETER rtsp://h/cam RTSP/1.0\r\nCSeq: 7\r\nContent-Length: 100000\r\n\r\n";
        match frame(big_body) {
            Framed::Error {
                status: StatusCode::RequestMessageBodyTooLarge,
                cseq,
                consumed: None,
            } => assert_eq!(cseq.as_deref(), Some("7")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_requests_get_400_and_the_stream_goes_on() {
        for bad in [
            &b"GARBAGE\r\nCSeq: 3\r\n\r\n"[..],
            b"OPTIONS rtsp://h/cam HTTP/1.1\r\nCSeq: 3\r\n\r\n",
            b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 3\r\nno colon\r\n\r\n",
            b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 3\r\nContent-Length: x\r\n\r\n",
            b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 3\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 3\r\nX: a\nInjected: b\r\n\r\n",
            b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 3\r\nX: a\rb\r\n\r\n",
            b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 3\r\n Content-Length: 9\r\n\r\n",
        ] {
            let mut buf = bad.to_vec();
            buf.extend_from_slice(OPTIONS);
            match frame(&buf) {
                Framed::Error {
                    status: StatusCode::BadRequest,
                    cseq,
                    consumed: Some(n),
                } => {
                    assert_eq!(cseq.as_deref(), Some("3"));
                    let (r, _) = request(frame(&buf[n..]));
                    assert_eq!(r.method(), Method::Options);
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bad)),
            }
        }
    }

    #[test]
    fn a_request_written_back_frames_the_same() {
        // The fuzz target's first finding: an empty repeat of a header.
        let buf = b"DESCRIBE rtsp://h/cam RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\nAccept: \r\n\r\n";
        let (r, _) = request(frame(buf));
        let mut written = Vec::new();
        r.write(&mut written).unwrap();
        let (again, n) = request(frame(&written));
        assert_eq!(n, written.len());
        assert_eq!(again, r);
    }

    #[test]
    fn a_request_url_that_is_not_rtsp_is_refused() {
        // The fuzz finding: this `file:` URL has host "h"; written back as
        // `file://h/c:/cam` it reads with no host, another request.
        for bad in [
            &b"OPTIONS file://h//c:/cam RTSP/1.0\r\nCSeq: 4\r\n\r\n"[..],
            b"OPTIONS http://h/cam RTSP/1.0\r\nCSeq: 4\r\n\r\n",
        ] {
            match frame(bad) {
                Framed::Error {
                    status: StatusCode::BadRequest,
                    cseq,
                    consumed: Some(n),
                } => assert_eq!((cseq.as_deref(), n), (Some("4"), bad.len())),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(bad)),
            }
        }
        for good in [
            &b"OPTIONS rtsps://h/cam RTSP/1.0\r\nCSeq: 4\r\n\r\n"[..],
            b"OPTIONS RTSP://h/cam RTSP/1.0\r\nCSeq: 4\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nCSeq: 4\r\n\r\n",
        ] {
            request(frame(good));
        }
    }

    #[test]
    fn header_names_rtsp_types_would_merge_are_refused() {
        for bad in [
            &b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n: x\r\n\r\n"[..],
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nC: x\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent: x\r\nContent-Length: 0\r\n\r\n",
        ] {
            assert!(
                matches!(
                    frame(bad),
                    Framed::Error {
                        status: StatusCode::BadRequest,
                        ..
                    }
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Repeats of one name are fine.
        let (r, _) = request(frame(
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: a\r\nx: b\r\n\r\n",
        ));
        assert_eq!(
            r.header(&rtsp_types::HeaderName::from_static_str("X").unwrap())
                .unwrap()
                .as_str(),
            "a, b"
        );
    }

    #[test]
    fn a_cseq_that_is_not_a_number_is_refused_and_not_echoed() {
        for bad in [
            &b"OPTIONS * RTSP/1.0\r\nCSeq: 1 x\r\n\r\n"[..],
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nCSeq: 2\r\n\r\n",
        ] {
            match frame(bad) {
                Framed::Error {
                    status: StatusCode::BadRequest,
                    cseq: None,
                    consumed: Some(_),
                } => {}
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_request_dribbled_a_byte_at_a_time_is_scanned_once() {
        // 60 KiB of header dribbled one byte per read: rescanning from the
        // start each time would be ~1.8e9 comparisons (seconds of the RTSP
        // thread); remembering the offset makes it linear.
        let mut head = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: ".to_vec();
        head.resize(60 * 1024, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        let mut framer = Framer::default();
        let started = std::time::Instant::now();
        for i in 1..head.len() {
            assert!(matches!(framer.frame(&head[..i]), Framed::Incomplete));
            assert!(framer.scanned() + 3 >= i, "scan restarted at {i}");
        }
        assert!(matches!(framer.frame(&head), Framed::Request(..)));
        assert_eq!(framer.scanned(), 0);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_body_dribbled_after_its_head_finds_the_head_again_at_once() {
        let req = b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 4\r\n\r\nbody";
        let mut framer = Framer::default();
        for i in 1..req.len() {
            assert!(matches!(framer.frame(&req[..i]), Framed::Incomplete), "{i}");
        }
        let (r, n) = request(framer.frame(req));
        assert_eq!((r.body().as_slice(), n), (&b"body"[..], req.len()));
    }

    #[test]
    fn rtsp_2_gets_505() {
        assert!(matches!(
            frame(b"OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n"),
            Framed::Error {
                status: StatusCode::RTSPVersionNotSupported,
                ..
            }
        ));
    }
}
