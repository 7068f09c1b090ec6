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

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
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
