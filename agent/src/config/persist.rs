//! Writing a changed config back to its file: sections that did not change
//! keep their text, comments and layout (toml_edit); changed ones are
//! written anew. The file is replaced atomically: a temporary file in the
//! same folder, fsync, rename over the old one, fsync the folder. A power
//! cut leaves the old file or the new one, never a mix.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use toml_edit::{DocumentMut, Item};

use super::Config;

/// The text of `new`, starting from `old_text` (which parses as `old`).
pub fn render(old_text: &str, old: &Config, new: &Config) -> Result<String, String> {
    let fresh: DocumentMut = toml::to_string(new)
        .map_err(|e| format!("cannot write the config: {e}"))?
        .parse()
        .map_err(|e| format!("cannot write the config: {e}"))?;
    let Ok(mut doc) = old_text.parse::<DocumentMut>() else {
        return Ok(fresh.to_string());
    };
    let same = |key: &str| match key {
        "agent" => old.agent == new.agent,
        "rtsp" => old.rtsp == new.rtsp,
        "http" => old.http == new.http,
        "hls" => old.hls == new.hls,
        "recording" => old.recording == new.recording,
        "mqtt" => old.mqtt == new.mqtt,
        _ => false,
    };
    let stale: Vec<String> = doc
        .iter()
        .map(|(k, _)| k.to_owned())
        .filter(|k| !fresh.contains_key(k))
        .collect();
    for key in stale {
        doc.remove(&key);
    }
    for (key, item) in fresh.iter() {
        if key == "stream" {
            let streams = merge_streams(doc.get(key), item, old, new);
            doc.insert(key, streams);
        } else if !(doc.contains_key(key) && same(key)) {
            doc.insert(key, item.clone());
        }
    }
    Ok(doc.to_string())
}

/// `[[stream]]` tables: a stream whose config did not change keeps its
/// table as written; the others take the fresh one.
fn merge_streams(old_item: Option<&Item>, fresh: &Item, old: &Config, new: &Config) -> Item {
    let (Some(old_tables), Some(fresh_tables)) = (
        old_item.and_then(Item::as_array_of_tables),
        fresh.as_array_of_tables(),
    ) else {
        return fresh.clone();
    };
    let mut out = toml_edit::ArrayOfTables::new();
    for (i, stream) in new.streams.iter().enumerate() {
        let kept = old
            .streams
            .iter()
            .position(|s| s == stream)
            .and_then(|j| old_tables.get(j));
        match kept.or_else(|| fresh_tables.get(i)) {
            Some(t) => out.push(t.clone()),
            None => return fresh.clone(),
        }
    }
    Item::ArrayOfTables(out)
}

/// Replaces `path` with `text` atomically and durably.
pub fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const TEXT: &str = r#"# The camera on the gate.
[agent]
device_id = "edge"   # as in the fleet inventory

[rtsp]
# a custom port
listen = "0.0.0.0:8555"

[[stream]]
# the gate
name = "gate"
source = { kind = "test", width = 320, height = 240 }

[[stream]]
name = "yard"
source = { kind = "test" }
"#;

    #[test]
    fn untouched_sections_keep_their_comments_and_changes_parse_back() {
        let old = Config::parse(TEXT, Path::new("x.toml")).unwrap();
        let new = old
            .patched(&serde_json::json!({
                "http": {"listen": "127.0.0.1:9999"},
                "stream": {"yard": {"record": {"enabled": true}}}
            }))
            .unwrap();
        let text = render(TEXT, &old, &new).unwrap();
        for kept in [
            "# The camera on the gate.",
            "# as in the fleet inventory",
            "# a custom port",
            "# the gate",
            "source = { kind = \"test\", width = 320, height = 240 }",
        ] {
            assert!(text.contains(kept), "lost {kept:?}:\n{text}");
        }
        let back = Config::parse(&text, Path::new("x.toml")).unwrap();
        assert_eq!(back, new, "{text}");
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        fs::write(&path, "old").unwrap();
        write_atomic(&path, "new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }
}
