//! Text a user of the laptop wrote, made safe to show on a terminal or in a log line:
//! control characters (C0, DEL, C1: ESC and OSC sequences, CR and LF that would fake
//! rows), bidirectional overrides and isolates (text that reads differently from
//! what it is), and other invisible format characters are shown as `\u{..}` escapes,
//! and cells are cut to a width. JSON output keeps exact values; only what a person
//! reads goes through here.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as itself.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}'              // Arabic letter mark
            | '\u{200B}'..='\u{200F}' // zero-width spaces and joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{FEFF}'              // zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotations
        )
}

/// `text` with every unsafe character escaped as `\u{XX}`; borrowed when already safe.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`escape`]d and cut to at most `max` characters (ending in `…` when cut).
pub fn cell(text: &str, max: usize) -> String {
    let safe = escape(text);
    if safe.chars().count() <= max {
        return safe.into_owned();
    }
    let mut out: String = safe.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_of_unsafe_character_is_escaped() {
        for (raw, shown) in [
            ("a\x1b[2Jb", "a\\u{1b}[2Jb"),
            ("\x1b]8;;http://x\x07link", "\\u{1b}]8;;http://x\\u{7}link"),
            ("row\r\nfake", "row\\u{d}\\u{a}fake"),
            ("c1\u{9b}31m", "c1\\u{9b}31m"),
            ("del\u{7f}", "del\\u{7f}"),
            ("evil\u{202e}gnp.exe", "evil\\u{202e}gnp.exe"),
            ("iso\u{2066}x\u{2069}", "iso\\u{2066}x\\u{2069}"),
            ("zw\u{200b}sp", "zw\\u{200b}sp"),
            ("tab\there", "tab\\u{9}here"),
        ] {
            assert_eq!(escape(raw), shown);
        }
        assert!(matches!(escape("plain ünïcode ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn cells_are_cut_after_escaping() {
        let long = "x".repeat(100_000);
        assert_eq!(cell(&long, 10).chars().count(), 10);
        assert_eq!(cell("\x1b\x1b\x1b", 8), "\\u{1b}\\…");
        assert_eq!(cell("short", 10), "short");
    }
}
