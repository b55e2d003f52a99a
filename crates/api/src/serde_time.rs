//! Serde for `Option<google.protobuf.Timestamp>` fields of the generated
//! messages: RFC 3339 text in UTC with nanoseconds (`null` when unset), as
//! Docker's JSON writes times. The build script points every Timestamp
//! field here.

use chrono::{DateTime, SecondsFormat, Utc};
use prost_types::Timestamp;
use serde::{Deserialize, Deserializer, Serializer};

/// Writes the time as RFC 3339 text, or `null`.
pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t
        .as_ref()
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, t.nanos.max(0) as u32))
    {
        Some(d) => s.serialize_str(&d.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        None => s.serialize_none(),
    }
}

/// Reads RFC 3339 text (or `null`).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let t = DateTime::parse_from_rfc3339(&text).map_err(serde::de::Error::custom)?;
    Ok(Some(Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_message_with_a_time_round_trips_through_json() {
        let e = crate::v1::Event {
            r#type: "container".into(),
            action: "start".into(),
            time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            ..Default::default()
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["time"], "2023-11-14T22:13:20.000000005Z");
        let back: crate::v1::Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        let none: crate::v1::Event = serde_json::from_str(r#"{"type":"x"}"#).unwrap();
        assert_eq!(none.time, None);
    }
}
