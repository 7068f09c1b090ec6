//! How deeply a config file's text nests, found in one linear pass before any parser
//! sees it, stopping at the first line past [`MAX_DEPTH`](super::MAX_DEPTH).
//!
//! The count is conservative (it may count a level the parser would not, never the
//! reverse): brackets `[` `{` outside strings and comments in every format; in YAML
//! also block nesting (each deeper indentation, each `- ` or `? ` that opens a node on
//! the same line); in TOML also the segments of dotted keys and table headers.

use super::{Format, MAX_DEPTH, ParseError};

/// Fail with [`ParseError::TooDeep`] if `text` nests deeper than the bound.
pub fn check(text: &str, format: Format) -> Result<(), ParseError> {
    let mut scan = Scan {
        format,
        bytes: text.as_bytes(),
        i: 0,
        line: 1,
        brackets: 0,
    };
    match format {
        Format::Json => scan.brackets_only(),
        Format::Toml => scan.toml(),
        Format::Yaml => scan.yaml(),
    }
}

struct Scan<'a> {
    format: Format,
    bytes: &'a [u8],
    i: usize,
    line: usize,
    brackets: usize,
}

impl Scan<'_> {
    fn too_deep(&self) -> ParseError {
        ParseError::TooDeep { line: self.line }
    }

    fn peek(&self, at: usize) -> Option<u8> {
        self.bytes.get(self.i + at).copied()
    }

    /// Count one byte that may open or close a bracket; `extra` levels come from the
    /// format's other nesting on this line.
    fn bracket(&mut self, b: u8, extra: usize) -> Result<(), ParseError> {
        match b {
            b'[' | b'{' => {
                self.brackets += 1;
                if self.brackets + extra > MAX_DEPTH {
                    return Err(self.too_deep());
                }
            }
            b']' | b'}' => self.brackets = self.brackets.saturating_sub(1),
            _ => {}
        }
        Ok(())
    }

    /// Skip a quoted string starting at `self.i` (the opening quote), honouring the
    /// format's escapes; multi-line strings advance the line count.
    fn skip_string(&mut self) {
        let quote = self.bytes[self.i];
        let triple = self.format == Format::Toml
            && self.peek(1) == Some(quote)
            && self.peek(2) == Some(quote);
        let backslash = quote == b'"';
        self.i += if triple { 3 } else { 1 };
        while let Some(b) = self.peek(0) {
            if b == b'\n' {
                self.line += 1;
                // JSON and TOML basic strings end at the line; an unclosed one is the
                // parser's error to report.
                if !triple && self.format != Format::Yaml {
                    return;
                }
            }
            if b == b'\\' && backslash {
                self.i += 2;
                continue;
            }
            if b == quote {
                if triple {
                    if self.peek(1) == Some(quote) && self.peek(2) == Some(quote) {
                        self.i += 3;
                        return;
                    }
                } else if self.format == Format::Yaml
                    && quote == b'\''
                    && self.peek(1) == Some(b'\'')
                {
                    self.i += 2;
                    continue;
                } else {
                    self.i += 1;
                    return;
                }
            }
            self.i += 1;
        }
    }

    fn skip_to_line_end(&mut self) {
        while let Some(b) = self.peek(0) {
            if b == b'\n' {
                return;
            }
            self.i += 1;
        }
    }

    /// JSON with comments: brackets outside strings and comments.
    fn brackets_only(&mut self) -> Result<(), ParseError> {
        while let Some(b) = self.peek(0) {
            match b {
                b'"' => {
                    self.skip_string();
                    continue;
                }
                b'/' if self.peek(1) == Some(b'/') => {
                    self.skip_to_line_end();
                    continue;
                }
                b'/' if self.peek(1) == Some(b'*') => {
                    self.i += 2;
                    while let Some(c) = self.peek(0) {
                        if c == b'*' && self.peek(1) == Some(b'/') {
                            self.i += 1;
                            break;
                        }
                        if c == b'\n' {
                            self.line += 1;
                        }
                        self.i += 1;
                    }
                }
                b'\n' => self.line += 1,
                _ => self.bracket(b, 0)?,
            }
            self.i += 1;
        }
        Ok(())
    }

    /// TOML: brackets, plus the segments of the dotted key or table header that starts
    /// each line (`a.b.c = 1`, `[a.b.c]` nest three tables).
    fn toml(&mut self) -> Result<(), ParseError> {
        let mut at_line_start = true;
        let mut dots = 0usize;
        while let Some(b) = self.peek(0) {
            match b {
                b'"' | b'\'' => {
                    self.skip_string();
                    at_line_start = false;
                    continue;
                }
                b'#' => {
                    self.skip_to_line_end();
                    continue;
                }
                b'\n' => {
                    self.line += 1;
                    // Inside a multi-line array, a line holds values, not a key.
                    at_line_start = self.brackets == 0;
                    dots = 0;
                }
                b'=' => at_line_start = false,
                // Dots of a key or a table header nest tables; dots in values do not.
                b'.' if at_line_start => {
                    dots += 1;
                    if dots + self.brackets > MAX_DEPTH {
                        return Err(self.too_deep());
                    }
                }
                _ => self.bracket(b, dots)?,
            }
            self.i += 1;
        }
        Ok(())
    }

    /// YAML: flow brackets, plus block nesting from indentation and from the
    /// `- ` / `? ` / `key: ` indicators that open nested nodes on one line.
    fn yaml(&mut self) -> Result<(), ParseError> {
        // The indentation of each open block node.
        let mut indents: Vec<usize> = Vec::new();
        loop {
            // At a line start: measure the indentation.
            let mut column = 0;
            while self.peek(0) == Some(b' ') {
                self.i += 1;
                column += 1;
            }
            let Some(first) = self.peek(0) else {
                return Ok(());
            };
            let blank = matches!(first, b'\n' | b'\r' | b'#');
            if !blank && self.brackets == 0 {
                while indents.last().is_some_and(|&top| top >= column) {
                    indents.pop();
                }
                indents.push(column);
                // `- - x` and `? - x` open a node per indicator on the same line.
                while let Some(b) = self.peek(0) {
                    if matches!(b, b'-' | b'?' | b':') && matches!(self.peek(1), Some(b' ' | b'\t'))
                    {
                        self.i += 2;
                        column += 2;
                        while self.peek(0) == Some(b' ') {
                            self.i += 1;
                            column += 1;
                        }
                        indents.push(column);
                    } else {
                        break;
                    }
                }
                if indents.len() > MAX_DEPTH {
                    return Err(self.too_deep());
                }
            }
            // The rest of the line.
            let mut previous = b' ';
            while let Some(b) = self.peek(0) {
                match b {
                    b'\n' => break,
                    b'"' | b'\''
                        if matches!(previous, b' ' | b'\t' | b'[' | b'{' | b',' | b':') =>
                    {
                        self.skip_string();
                        previous = b'"';
                        continue;
                    }
                    b'#' if matches!(previous, b' ' | b'\t') => {
                        self.skip_to_line_end();
                        break;
                    }
                    // `key: value` opens one more level when the value is a node.
                    _ => self.bracket(b, indents.len())?,
                }
                previous = b;
                self.i += 1;
            }
            if self.peek(0).is_none() {
                return Ok(());
            }
            self.i += 1;
            self.line += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(open: &str, n: usize) -> String {
        open.repeat(n)
    }

    #[test]
    fn real_nesting_passes_and_deep_nesting_is_refused_with_its_line() {
        assert!(check(r#"{"a": {"b": [1, {"c": "[[[[[[["}]}}"#, Format::Json).is_ok());
        assert!(check("// [[[[[[[[\n{}", Format::Json).is_ok());
        let err = check(&format!("{{\n{}", deep("[", 1000)), Format::Json).unwrap_err();
        assert_eq!(err, ParseError::TooDeep { line: 2 });
        assert!(check(&deep("[", 100_000), Format::Yaml).is_err());
        assert!(check(&deep("{a: ", 100), Format::Yaml).is_err());
        assert!(check(&deep("- ", 100), Format::Yaml).is_err());
        let stairs: String = (0..100)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert!(check(&stairs, Format::Yaml).is_err());
        assert!(check(&format!("a = {}", deep("[", 100)), Format::Toml).is_err());
        assert!(check(&format!("{} = 1", vec!["k"; 100].join(".")), Format::Toml).is_err());
        assert!(check(&format!("[{}]", vec!["k"; 100].join(".")), Format::Toml).is_err());
        assert!(
            check(
                "version = \"1.2.3\"\n[mcp_servers.a.env]\nX = \"[[[[\"",
                Format::Toml
            )
            .is_ok()
        );
    }

    #[test]
    fn ordinary_yaml_is_not_counted_too_deep() {
        let yaml = "extensions:\n  github:\n    cmd: npx\n    args: [-y, '@x/y']\n    envs: {A: b}\n  \
                    other:\n    type: builtin\nmcpServers:\n  - name: a\n    command: x\n    args:\n      - \"[[\"\n";
        check(yaml, Format::Yaml).unwrap();
    }
}
