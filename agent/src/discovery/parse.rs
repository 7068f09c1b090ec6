//! Parsing config files into a JSON value: JSON read leniently (comments, trailing
//! commas, as VS Code, Zed, Cursor and Gemini accept), TOML and YAML. A parse error
//! gives the line and column and the kind of problem, never the file's text.

use std::cell::Cell;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::catalog::Format;

mod depth;

/// How deep any file may nest (maps and lists inside each other). Real configs nest
/// under ten levels; the bound is checked on the text before a parser sees it, so that
/// no parser's own cost on deep input (quadratic in the YAML scanner, recursive in
/// others) is ever paid.
pub const MAX_DEPTH: usize = 64;
/// How many values (scalars, maps and lists) a parsed file may hold. YAML aliases can
/// repeat a node many times over (`*a` of `*b` of ...): a few hundred bytes could
/// otherwise expand to billions of values.
pub const MAX_VALUES: usize = 2_000_000;

/// A file that could not be parsed, or that breaks one of the bounds above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid {format} at line {line} column {column}")]
    Syntax {
        format: &'static str,
        line: usize,
        column: usize,
    },
    #[error("nested more than {MAX_DEPTH} levels deep at line {line}; not read")]
    TooDeep { line: usize },
    #[error("holds more than {MAX_VALUES} values (YAML aliases expanding?); not read")]
    TooManyValues,
}

impl ParseError {
    /// The line the error is on, when it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Syntax { line, .. } | Self::TooDeep { line } => Some(*line),
            Self::TooManyValues => None,
        }
    }
}

/// Parse `text` as `format`. A UTF-8 byte-order mark is ignored; an empty file is `null`.
pub fn parse(text: &str, format: Format) -> Result<Value, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    depth::check(text, format)?;
    let budget = Cell::new(MAX_VALUES);
    let over = || budget.get() == 0;
    let seed = || Bounded {
        budget: &budget,
        depth: MAX_DEPTH + 8,
    };
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
            jsonc_parser::parse_to_serde_value::<Wrapped>(text, &options)
                .map(|w| w.0)
                .map_err(|e| {
                    if JSON_BUDGET.with(Cell::get) == 0 {
                        return ParseError::TooManyValues;
                    }
                    ParseError::Syntax {
                        format: "JSON",
                        line: e.line_display(),
                        column: e.column_display(),
                    }
                })
        }
        Format::Toml => {
            let de = toml::Deserializer::parse(text).map_err(|e| toml_error(text, &e))?;
            seed().deserialize(de).map_err(|e| {
                if over() {
                    ParseError::TooManyValues
                } else {
                    toml_error(text, &e)
                }
            })
        }
        Format::Yaml => {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            seed().deserialize(de).map_err(|e| {
                // serde_yaml_ng's own alias bound says "repetition limit exceeded".
                if over() || e.to_string().starts_with("repetition limit") {
                    return ParseError::TooManyValues;
                }
                let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
                ParseError::Syntax {
                    format: "YAML",
                    line,
                    column,
                }
            })
        }
    }
}

fn toml_error(text: &str, e: &toml::de::Error) -> ParseError {
    let (line, column) = e.span().map_or((1, 1), |span| line_col(text, span.start));
    ParseError::Syntax {
        format: "TOML",
        line,
        column,
    }
}

thread_local! {
    /// The value budget of the JSON parse running on this thread (jsonc-parser takes a
    /// type, not a seed).
    static JSON_BUDGET: Cell<usize> = const { Cell::new(MAX_VALUES) };
}

/// A JSON value parsed under the value budget.
struct Wrapped(Value);

impl<'de> Deserialize<'de> for Wrapped {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        JSON_BUDGET.with(|cell| {
            cell.set(MAX_VALUES);
            Bounded {
                budget: cell,
                depth: MAX_DEPTH + 8,
            }
            .deserialize(de)
            .map(Wrapped)
        })
    }
}

/// Builds a JSON value from any format, counting values against a budget and depth,
/// and failing instead of going on when either runs out.
#[derive(Clone, Copy)]
struct Bounded<'b> {
    budget: &'b Cell<usize>,
    depth: usize,
}

impl Bounded<'_> {
    fn spend<E: de::Error>(&self) -> Result<(), E> {
        match self.budget.get().checked_sub(1) {
            Some(left) => {
                self.budget.set(left);
                Ok(())
            }
            None => Err(E::custom("too many values")),
        }
    }

    fn inner<E: de::Error>(&self) -> Result<Self, E> {
        let depth = self
            .depth
            .checked_sub(1)
            .ok_or_else(|| E::custom("nested too deep"))?;
        Ok(Self {
            budget: self.budget,
            depth,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a config value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::from(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v.to_string()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.spend()?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Null)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        self.deserialize(de)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        self.deserialize(de)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.spend()?;
        let inner = self.inner()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.spend()?;
        let inner = self.inner()?;
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(inner)? {
            let key = match key {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let value = map.next_value_seed(inner)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        // A YAML tag (`!Tag value`): keep the value, drop the tag.
        use de::VariantAccess as _;
        let (_tag, variant): (Value, _) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self.inner()?)
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
            assert_eq!(err.line(), Some(line), "{format:?}: {err}");
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

#[cfg(test)]
mod hostile {
    use std::time::Instant;

    use super::*;

    /// Files up to the size cap that try to make a parser slow, deep or huge.
    fn cases() -> Vec<(&'static str, Format, String)> {
        let cap = 200 * 1024;
        let mut out = vec![
            ("yaml [", Format::Yaml, "[".repeat(100_000)),
            ("yaml {", Format::Yaml, "{a: ".repeat(50_000)),
            ("yaml -", Format::Yaml, "- ".repeat(100_000)),
            ("json [", Format::Json, "[".repeat(cap)),
            ("json {", Format::Json, "{\"a\":".repeat(cap / 5)),
            ("toml [", Format::Toml, format!("a = {}", "[".repeat(cap))),
            (
                "toml {",
                Format::Toml,
                format!("a = {}", "{b=".repeat(cap / 3)),
            ),
            (
                "toml dotted",
                Format::Toml,
                format!("{} = 1", vec!["k"; cap / 2].join(".")),
            ),
            (
                "toml header",
                Format::Toml,
                format!("[{}]", vec!["k"; cap / 2].join(".")),
            ),
        ];
        // Billion laughs: each level repeats the one before ten times.
        let mut laughs =
            String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..12 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            laughs.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        out.push(("yaml aliases", Format::Yaml, laughs));
        let stairs: String = (0..3000)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect();
        out.push(("yaml stairs", Format::Yaml, stairs));
        out
    }

    #[test]
    fn hostile_files_are_refused_quickly_with_a_bound_named() {
        for (name, format, text) in cases() {
            let started = Instant::now();
            let result = parse(&text, format);
            let took = started.elapsed();
            assert!(
                matches!(
                    result,
                    Err(ParseError::TooDeep { .. } | ParseError::TooManyValues)
                ),
                "{name}: {result:?}"
            );
            // Generous for debug builds on a loaded machine; release is milliseconds.
            assert!(took.as_millis() < 1000, "{name} took {took:?}");
        }
    }
}
