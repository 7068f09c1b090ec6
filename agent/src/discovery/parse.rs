//! Parsing config files into a JSON value: JSON read leniently (comments, trailing
//! commas, as VS Code, Zed, Cursor and Gemini accept), TOML and YAML. A parse error
//! gives the line and column and the kind of problem, never the file's text.

use serde_json::Value;

use super::catalog::Format;

/// A file that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {format} at line {line} column {column}")]
pub struct ParseError {
    pub format: &'static str,
    pub line: usize,
    pub column: usize,
}

/// Parse `text` as `format`. A UTF-8 byte-order mark is ignored; an empty file is `null`.
pub fn parse(text: &str, format: Format) -> Result<Value, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    match format {
        Format::Json => {
            // What VS Code, Zed and Gemini accept on top of JSON: comments and trailing
            // commas. Nothing looser, so a file its client would refuse is an error here too.
            let options = jsonc_parser::ParseOptions {
                allow_comments: true,
                allow_trailing_commas: true,
                allow_loose_object_property_names: false,
                allow_missing_commas: false,
                allow_single_quoted_strings: false,
                allow_hexadecimal_numbers: false,
                allow_unary_plus_numbers: false,
                allow_bare_decimal_point_numbers: false,
                allow_non_finite_numbers: false,
                allow_extended_string_escapes: false,
            };
            jsonc_parser::parse_to_serde_value::<Value>(text, &options).map_err(|e| ParseError {
                format: "JSON",
                line: e.line_display(),
                column: e.column_display(),
            })
        }
        Format::Toml => toml::from_str::<Value>(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |span| line_col(text, span.start));
            ParseError {
                format: "TOML",
                line,
                column,
            }
        }),
        Format::Yaml => serde_yaml_ng::from_str::<Value>(text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            ParseError {
                format: "YAML",
                line,
                column,
            }
        }),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonc_comments_and_trailing_commas_parse() {
        let text = "\u{feff}{\n // comment\n \"servers\": { /* block */ \"a\": {\"command\": \"x\",}, },\n}";
        let v = parse(text, Format::Json).unwrap();
        assert_eq!(v["servers"]["a"]["command"], "x");
    }

    #[test]
    fn errors_name_the_position_and_never_the_text() {
        let secret = "ghp_ThisIsNotARealTokenButLooksLikeOne1234";
        for (text, format, line) in [
            (
                format!("{{\n  \"a\": \"{secret}\"\n  \"b\" {secret}\n}}"),
                Format::Json,
                2,
            ),
            (
                format!("[x]\nkey = \"{secret}\"\nbad line {secret}\n"),
                Format::Toml,
                3,
            ),
            (
                format!("a: {secret}\nb: [unclosed {secret}\n"),
                Format::Yaml,
                3,
            ),
        ] {
            let err = parse(&text, format).unwrap_err();
            assert_eq!(err.line, line, "{format:?}: {err}");
            assert!(!err.to_string().contains("ghp_"), "{err}");
        }
    }

    #[test]
    fn toml_and_yaml_parse_into_json_values() {
        let toml = "[mcp_servers.docs]\ncommand = \"npx\"\nargs = [\"-y\", \"docs\"]\n[mcp_servers.docs.env]\nKEY = \"v\"\n";
        assert_eq!(
            parse(toml, Format::Toml).unwrap()["mcp_servers"]["docs"]["args"][1],
            "docs"
        );
        let yaml = "extensions:\n  github:\n    cmd: npx\n    args: [-y, gh]\n";
        assert_eq!(
            parse(yaml, Format::Yaml).unwrap()["extensions"]["github"]["cmd"],
            "npx"
        );
        assert_eq!(parse("  \n", Format::Json).unwrap(), Value::Null);
    }
}
