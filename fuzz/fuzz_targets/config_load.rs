//! The config loader on arbitrary text: never panic; an error names a
//! line inside the text; an accepted config survives its JSON view.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use streamswitch::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new("fuzz.toml")) {
        Ok(config) => {
            let json = serde_json::to_string(&config).expect("a config has a JSON view");
            let back: Config = serde_json::from_str(&json).expect("the JSON view reads back");
            assert_eq!(back, config);
        }
        Err(e) => {
            if let Some(line) = e.line {
                assert!(line >= 1 && line <= text.lines().count().max(1) + 1, "{e}");
            }
        }
    }
});
