//! Finding where in the TOML text a problem is, for error messages.

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The bare key written just before `offset` (`key = value`), if any: the
/// key of the value an error points at, or the key itself.
pub fn key_before(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let at = offset - line_start;
    // The error may point at the key itself (unknown field) ...
    let word_at: String = line[at..].chars().take_while(|c| is_key_char(*c)).collect();
    if !word_at.is_empty() && line[at + word_at.len()..].trim_start().starts_with('=') {
        return Some(word_at);
    }
    // ... or at its value: take the nearest `key =` to its left.
    let left = &line[..at];
    let eq = left.rfind('=')?;
    let key: String = left[..eq]
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| is_key_char(*c))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (!key.is_empty()).then_some(key)
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The line of a dotted key path like `stream[1].source.width`, or of the
/// deepest part of it that exists.
pub fn line_of_path(text: &str, path: &str) -> Option<usize> {
    let doc = text.parse::<toml_edit::Document<String>>().ok()?;
    let mut item: &toml_edit::Item = doc.as_item();
    let mut best = None;
    for part in path.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some(next) = item.get(name) else { break };
        item = next;
        if let Some(i) = index {
            let Some(next) = item.get(i) else { break };
            item = next;
        }
        if let Some(span) = item.span() {
            best = Some(span.start);
        }
        if let Some(value) = item.as_value() {
            if let Some(span) = value.span() {
                best = Some(span.start);
            }
        }
    }
    best.map(|o| line_of(text, o))
}
