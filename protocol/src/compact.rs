//! Serialising for two audiences: JSON, which leaves out a field that is empty, and the
//! collector's compact records (postcard), which have no field names and so must write
//! every field, in declaration order, for the derived `Deserialize` to read back.
//!
//! serde's `skip_serializing_if` cannot tell the two apart; [`omit_empty_in_json!`]
//! writes the `Serialize` impl that does, from the serializer's
//! `is_human_readable()`.

/// Implements `Serialize` for a struct: every field in declaration order, except that
/// a field with `if test` is left out of human-readable output (JSON) when `test(&field)`
/// holds. A field missing from the list, or in the wrong place, does not compile.
#[macro_export]
macro_rules! omit_empty_in_json {
    ($ty:ident { $($field:ident $(if $omit:path)?),* $(,)? }) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeStruct as _;
                // Every field, in order: the list must name them all.
                let $ty { $($field),* } = self;
                let human = serializer.is_human_readable();
                let fields = [$(stringify!($field)),*].len();
                let mut out = serializer.serialize_struct(stringify!($ty), fields)?;
                $(
                    let omit = false $(|| $omit($field))?;
                    if human && omit {
                        out.skip_field(stringify!($field))?;
                    } else {
                        out.serialize_field(stringify!($field), $field)?;
                    }
                )*
                out.end()
            }
        }
    };
}

/// For a field JSON never carries.
pub fn always<T>(_: &T) -> bool {
    true
}

/// `#[serde(with = "mcpwatch_protocol::compact::time")]`: a time as chrono writes it in
/// JSON (RFC 3339, to the nanosecond); in a compact record, seconds and nanoseconds
/// since 1970 as two integers (a third of the bytes, nothing lost).
pub mod time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            at.serialize(serializer)
        } else {
            (at.timestamp(), at.timestamp_subsec_nanos()).serialize(serializer)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        if deserializer.is_human_readable() {
            DateTime::deserialize(deserializer)
        } else {
            let (secs, nanos) = <(i64, u32)>::deserialize(deserializer)?;
            DateTime::from_timestamp(secs, nanos)
                .ok_or_else(|| serde::de::Error::custom("time out of range"))
        }
    }
}

/// [`time`] for an optional time.
pub mod optional_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Time(#[serde(with = "super::time")] DateTime<Utc>);

    pub fn serialize<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        at.map(Time).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Ok(Option::<Time>::deserialize(deserializer)?.map(|t| t.0))
    }
}

/// `#[serde(with = "mcpwatch_protocol::compact::digest")]`: a fingerprint, text in
/// JSON; in a compact record a SHA-256 in lowercase hex (what the collector computes)
/// is its 32 bytes, and any other text is kept as text.
pub mod digest {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    enum Compact<T> {
        Sha256([u8; 32]),
        Text(T),
    }

    fn bytes_of(text: &str) -> Option<[u8; 32]> {
        let mut out = [0; 32];
        let lowercase = text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        (lowercase && hex::decode_to_slice(text, &mut out).is_ok()).then_some(out)
    }

    pub fn serialize<S: Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return text.serialize(serializer);
        }
        match bytes_of(text) {
            Some(bytes) => Compact::<&str>::Sha256(bytes).serialize(serializer),
            None => Compact::Text(text).serialize(serializer),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        if deserializer.is_human_readable() {
            return String::deserialize(deserializer);
        }
        Ok(match Compact::<String>::deserialize(deserializer)? {
            Compact::Sha256(bytes) => hex::encode(bytes),
            Compact::Text(text) => text,
        })
    }
}

/// [`digest`] for an optional fingerprint.
pub mod optional_digest {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Digest(#[serde(with = "super::digest")] String);

    pub fn serialize<S: Serializer>(
        text: &Option<String>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        text.as_deref()
            .map(|t| Digest(t.to_owned()))
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        Ok(Option::<Digest>::deserialize(deserializer)?.map(|d| d.0))
    }
}

/// `#[serde(with = "mcpwatch_protocol::compact::json_text")]`: free-form JSON, itself in
/// JSON; in a compact record, its text (postcard cannot carry a value whose shape the
/// type does not say).
pub mod json_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            value.serialize(serializer)
        } else {
            serde_json::to_string(value)
                .map_err(serde::ser::Error::custom)?
                .serialize(serializer)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        if deserializer.is_human_readable() {
            Value::deserialize(deserializer)
        } else {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            serde_json::from_str(&text).map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::server::{ConfigScope, LaunchInfo, Package, SecretFinding, ServerRecord, Transport};
    use crate::wire::{ConfigError, MachineFacts};

    fn full() -> ServerRecord {
        let some = |s: &str| Some(s.to_owned());
        let many = |s: &str| vec![s.to_owned(), format!("{s}-2")];
        ServerRecord {
            server_name: "fs".into(),
            server_type: some("npm"),
            command: some("npx -y x"),
            scope: some("/home/u"),
            env_vars: many("TOKEN"),
            scope_paths: many("/home/u"),
            client: some("cursor"),
            config_path: some("/home/u/.cursor/mcp.json"),
            config_scope: Some(ConfigScope::Project),
            project_path: some("/home/u/p"),
            os_user: some("u"),
            transport: Some(Transport::Stdio),
            args: many("-y"),
            url: some("https://example.com/mcp"),
            header_names: many("Authorization"),
            package: Some(Package {
                ecosystem: "npm".into(),
                name: "x".into(),
                version: some("1.0.0"),
            }),
            disabled: true,
            auto_approve: many("*"),
            secrets_found: vec![SecretFinding {
                location: "args[2]".into(),
                kind: "github_token".into(),
            }],
            fingerprint: some("ab12"),
            launch: Some(LaunchInfo {
                program: "npx".into(),
                wrappers: many("sudo"),
                runs: "node".into(),
            }),
            source: None,
        }
    }

    #[test]
    fn every_field_survives_a_compact_record_whether_set_or_empty() {
        for record in [full(), ServerRecord::default()] {
            let bytes = postcard::to_allocvec(&record).unwrap();
            assert_eq!(
                postcard::from_bytes::<ServerRecord>(&bytes).unwrap(),
                record
            );
        }
        let facts = MachineFacts {
            kernel_version: Some("6.8".into()),
            users: Some(vec!["u".into()]),
            ..MachineFacts::default()
        };
        let bytes = postcard::to_allocvec(&facts).unwrap();
        assert_eq!(postcard::from_bytes::<MachineFacts>(&bytes).unwrap(), facts);
        let error = ConfigError {
            path: "/p".into(),
            client: None,
            error: "bad".into(),
        };
        let bytes = postcard::to_allocvec(&error).unwrap();
        assert_eq!(postcard::from_bytes::<ConfigError>(&bytes).unwrap(), error);
    }

    #[test]
    fn json_leaves_out_empty_fields_and_never_carries_the_source() {
        let empty = serde_json::to_value(ServerRecord {
            source: Some("Claude Desktop".into()),
            ..ServerRecord::default()
        })
        .unwrap();
        assert_eq!(
            empty,
            serde_json::json!({"server_name": "", "env_vars": [], "disabled": false})
        );
        let full = serde_json::to_value(full()).unwrap();
        assert_eq!(full.as_object().unwrap().len(), 21);
        assert_eq!(
            full["launch"]["wrappers"],
            serde_json::json!(["sudo", "sudo-2"])
        );
        let back: ServerRecord = serde_json::from_value(full).unwrap();
        assert_eq!(back, self::full());
        assert_eq!(
            serde_json::to_value(MachineFacts::default()).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn fingerprints_are_text_in_json_and_bytes_when_they_are_digests() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Print {
            #[serde(with = "super::digest")]
            print: String,
            #[serde(with = "super::optional_digest")]
            maybe: Option<String>,
        }
        let digest = "16fe75dd048ebea3ed084c9b311c7faf3b30d5916277d6bfc8382d094a6db496";
        for (print, maybe) in [
            (digest, Some(digest)),
            (digest, None),
            (
                "not a digest",
                Some("16FE75DD048EBEA3ED084C9B311C7FAF3B30D5916277D6BFC8382D094A6DB496"),
            ),
            ("", Some("abc")),
        ] {
            let value = Print {
                print: print.into(),
                maybe: maybe.map(str::to_owned),
            };
            let json = serde_json::to_value(&value).unwrap();
            assert_eq!(json["print"], print);
            let bytes = postcard::to_allocvec(&value).unwrap();
            assert_eq!(postcard::from_bytes::<Print>(&bytes).unwrap(), value);
            if print == digest && maybe.is_none() {
                assert_eq!(bytes.len(), 1 + 32 + 1);
            }
        }
    }

    #[test]
    fn free_form_json_is_itself_in_json_and_text_in_compact_records() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Details {
            #[serde(with = "super::json_text")]
            details: serde_json::Value,
        }
        let value = Details {
            details: serde_json::json!({"before": {"a": [1, 2.5, null]}, "after": "\u{0}x"}),
        };
        let json = serde_json::to_value(&value).unwrap();
        assert_eq!(json["details"]["before"]["a"][1], 2.5);
        let bytes = postcard::to_allocvec(&value).unwrap();
        assert_eq!(postcard::from_bytes::<Details>(&bytes).unwrap(), value);
    }

    #[test]
    fn times_are_rfc3339_in_json_and_exact_in_compact_records() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct At {
            #[serde(with = "super::time")]
            at: chrono::DateTime<chrono::Utc>,
            #[serde(with = "super::optional_time")]
            maybe: Option<chrono::DateTime<chrono::Utc>>,
        }
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let value = At {
            at,
            maybe: Some(at),
        };
        assert_eq!(
            serde_json::to_value(&value).unwrap(),
            serde_json::json!({"at": "2023-11-14T22:13:20.123456789Z", "maybe": "2023-11-14T22:13:20.123456789Z"})
        );
        let bytes = postcard::to_allocvec(&value).unwrap();
        assert!(bytes.len() < 24, "{} bytes", bytes.len());
        assert_eq!(postcard::from_bytes::<At>(&bytes).unwrap(), value);
        let none = At { at, maybe: None };
        assert_eq!(
            postcard::from_bytes::<At>(&postcard::to_allocvec(&none).unwrap()).unwrap(),
            none
        );
    }
}
