//! A strict reader of the media playlists the agent serves, for the tests
//! and the HLS bench: every line must be a known tag, a URI or empty.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Playlist {
    pub version: Option<u32>,
    pub target_duration: Option<u64>,
    pub media_sequence: Option<u64>,
    pub part_target: Option<f64>,
    pub part_hold_back: Option<f64>,
    pub can_block_reload: bool,
    pub independent_segments: bool,
    /// The first EXT-X-MAP: the init segment of the first segment.
    pub map_uri: Option<String>,
    pub discontinuity_sequence: Option<u64>,
    pub segments: Vec<Segment>,
    /// Parts after the last whole segment: the segment being written.
    pub open_parts: Vec<Part>,
    pub preload_hint: Option<String>,
    live_edge_pdt: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub msn: u64,
    pub duration: f64,
    pub uri: String,
    /// Unix time in milliseconds.
    pub program_date_time: Option<i64>,
    pub parts: Vec<Part>,
    /// Preceded by EXT-X-DISCONTINUITY.
    pub discontinuity: bool,
    /// The EXT-X-MAP in force for this segment.
    pub map_uri: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Part {
    pub duration: f64,
    pub uri: String,
    pub independent: bool,
}

impl Playlist {
    /// Every part listed, whole segments' and the open one's, in order.
    pub fn parts(&self) -> impl Iterator<Item = &Part> {
        self.segments
            .iter()
            .flat_map(|s| s.parts.iter())
            .chain(self.open_parts.iter())
    }

    /// MSN of the segment being written (the open parts' segment).
    pub fn open_msn(&self) -> u64 {
        self.media_sequence.unwrap_or(0) + self.segments.len() as u64
    }

    /// Program date time of the newest part's start plus its duration:
    /// the live edge, in Unix milliseconds. Parts of the open segment
    /// follow the PROGRAM-DATE-TIME written before them.
    pub fn live_edge_ms(&self) -> Option<i64> {
        self.live_edge_pdt
    }
}

pub fn parse(text: &str) -> Result<Playlist, String> {
    let mut p = Playlist::default();
    let mut lines = text.lines();
    if lines.next() != Some("#EXTM3U") {
        return Err("no #EXTM3U".into());
    }
    let mut pending_parts = Vec::new();
    let mut pending_pdt: Option<i64> = None;
    let mut pending_duration: Option<f64> = None;
    let mut pending_discontinuity = false;
    let mut map: Option<String> = None;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let Some(tag) = line.strip_prefix('#') else {
            let duration = pending_duration
                .take()
                .ok_or(format!("URI without EXTINF: {line}"))?;
            let msn = p.media_sequence.unwrap_or(0) + p.segments.len() as u64;
            p.segments.push(Segment {
                msn,
                duration,
                uri: line.to_owned(),
                program_date_time: pending_pdt.take(),
                parts: std::mem::take(&mut pending_parts),
                discontinuity: std::mem::take(&mut pending_discontinuity),
                map_uri: map.clone(),
            });
            continue;
        };
        let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
        match name {
            "EXT-X-VERSION" => p.version = Some(num(value)?),
            "EXT-X-TARGETDURATION" => p.target_duration = Some(num(value)?),
            "EXT-X-MEDIA-SEQUENCE" => p.media_sequence = Some(num(value)?),
            "EXT-X-INDEPENDENT-SEGMENTS" => p.independent_segments = true,
            "EXT-X-MAP" => {
                map = attrs(value).remove("URI");
                if p.map_uri.is_none() {
                    p.map_uri = map.clone();
                }
            }
            "EXT-X-DISCONTINUITY-SEQUENCE" => p.discontinuity_sequence = Some(num(value)?),
            "EXT-X-DISCONTINUITY" => pending_discontinuity = true,
            "EXT-X-PART-INF" => p.part_target = Some(num(attr(value, "PART-TARGET")?)?),
            "EXT-X-SERVER-CONTROL" => {
                let a = attrs(value);
                p.can_block_reload = a.get("CAN-BLOCK-RELOAD").map(String::as_str) == Some("YES");
                p.part_hold_back = a.get("PART-HOLD-BACK").map(|v| num(v)).transpose()?;
            }
            "EXT-X-PROGRAM-DATE-TIME" => {
                let ms = rfc3339_ms(value).ok_or(format!("bad date {value}"))?;
                pending_pdt = Some(ms);
            }
            "EXT-X-PART" => {
                let a = attrs(value);
                pending_parts.push(Part {
                    duration: num(a.get("DURATION").ok_or("part without DURATION")?)?,
                    uri: a.get("URI").ok_or("part without URI")?.clone(),
                    independent: a.get("INDEPENDENT").map(String::as_str) == Some("YES"),
                });
            }
            "EXTINF" => {
                let d = value.split(',').next().unwrap_or("");
                pending_duration = Some(num(d)?);
            }
            "EXT-X-PRELOAD-HINT" => {
                let a = attrs(value);
                if a.get("TYPE").map(String::as_str) != Some("PART") {
                    return Err(format!("hint not of a part: {line}"));
                }
                p.preload_hint = a.get("URI").cloned();
            }
            _ => return Err(format!("unknown tag: {line}")),
        }
    }
    let open_start = pending_pdt;
    p.open_parts = pending_parts;
    // The live edge: the start of the newest segment with a date, plus
    // the durations after it.
    p.live_edge_pdt = match open_start {
        Some(start) if !p.open_parts.is_empty() => {
            Some(start + (p.open_parts.iter().map(|x| x.duration).sum::<f64>() * 1000.0) as i64)
        }
        _ => p
            .segments
            .last()
            .and_then(|s| Some(s.program_date_time? + (s.duration * 1000.0) as i64)),
    };
    Ok(p)
}

fn num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim().parse().map_err(|_| format!("bad number {v:?}"))
}

fn attr<'a>(value: &'a str, key: &str) -> Result<&'a str, String> {
    value
        .split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .ok_or(format!("no {key} in {value}"))
}

/// `KEY=VALUE,KEY="VALUE"` lists (quoted values hold no commas here).
fn attrs(value: &str) -> HashMap<String, String> {
    value
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SS(.fff)Z` to Unix milliseconds.
pub fn rfc3339_ms(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let ms: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}
