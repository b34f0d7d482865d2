//! Lenient readers of Proxmox values.
//!
//! Proxmox answers the same field as a JSON number in one place and as a string in another
//! (`memory` in a QEMU config is `"2048"`; `cores` becomes `"4"` after a form update; `nextid`
//! is `"100"`), booleans as `1`/`0`, `"1"`, or `true`, and a name that looks like a number may come
//! as a number (Perl's JSON writer picks the type by the value's last use). Every typed response
//! of this crate reads its fields through these functions, so either spelling parses everywhere.
//!
//! The `to_*` functions read one [`serde_json::Value`]; the `de_*` functions are the same rules as
//! `#[serde(deserialize_with = …)]` helpers (`null` and a missing field are `None`).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A non-negative integer: `4`, `4.0`, `"4"`, `" 4 "`, `"4.0"`.
pub fn to_u64(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().and_then(integral))
            .ok_or_else(|| format!("expected a non-negative integer, got {n}")),
        Value::String(s) => {
            let t = s.trim();
            t.parse::<u64>()
                .ok()
                .or_else(|| t.parse::<f64>().ok().and_then(integral))
                .ok_or_else(|| format!("expected a non-negative integer, got {s:?}"))
        }
        other => Err(format!("expected a non-negative integer, got {other}")),
    }
}

fn integral(f: f64) -> Option<u64> {
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64).then_some(f as u64)
}

/// A number: `0.25`, `"0.25"`, `1`, `"1"`.
pub fn to_f64(value: &Value) -> Result<f64, String> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("expected a number, got {n}")),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("expected a number, got {s:?}")),
        other => Err(format!("expected a number, got {other}")),
    }
}

/// A boolean as Proxmox writes one: `true`/`false`, `1`/`0`, and the strings `"1"`, `"0"`,
/// `"true"`, `"false"`, `"yes"`, `"no"`, `"on"`, `"off"` (any case).
pub fn to_bool(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Ok(true),
            Some(0.0) => Ok(false),
            _ => Err(format!("expected a boolean (0 or 1), got {n}")),
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(format!("expected a boolean, got {s:?}")),
        },
        other => Err(format!("expected a boolean, got {other}")),
    }
}

/// A string, also from a number or a boolean (`1` → `"1"`, `true` → `"1"`, as PVE writes them).
pub fn to_string(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(if *b { "1" } else { "0" }.to_string()),
        other => Err(format!("expected a string, got {other}")),
    }
}

fn optional<'de, D, T>(d: D, read: fn(&Value) -> Result<T, String>) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
{
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        // An empty string is how PVE writes an unset number in some lists.
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => read(&v).map(Some).map_err(serde::de::Error::custom),
    }
}

fn required<'de, D, T>(d: D, read: fn(&Value) -> Result<T, String>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let v = Value::deserialize(d)?;
    read(&v).map_err(serde::de::Error::custom)
}

/// `#[serde(deserialize_with = "de_u64")]`
pub fn de_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    required(d, to_u64)
}
/// `#[serde(default, deserialize_with = "de_opt_u64")]`
pub fn de_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    optional(d, to_u64)
}
/// A vmid or another id that fits 32 bits.
pub fn de_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    required(d, |v| {
        to_u64(v).and_then(|n| u32::try_from(n).map_err(|_| format!("{n} is out of range")))
    })
}
pub fn de_opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    optional(d, |v| {
        to_u64(v).and_then(|n| u32::try_from(n).map_err(|_| format!("{n} is out of range")))
    })
}
pub fn de_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    optional(d, to_f64)
}
pub fn de_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(optional(d, to_bool)?.unwrap_or(false))
}
pub fn de_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    optional(d, to_bool)
}
pub fn de_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    required(d, to_string)
}
pub fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => to_string(&v).map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_from_numbers_and_strings() {
        let cases = [
            (json!(4), Some(4)),
            (json!(4.0), Some(4)),
            (json!("4"), Some(4)),
            (json!(" 2048 "), Some(2048)),
            (json!("2048.0"), Some(2048)),
            (json!(17179869184u64), Some(17_179_869_184)),
            (json!("17179869184"), Some(17_179_869_184)),
            (json!(-1), None),
            (json!(1.5), None),
            (json!("1.5"), None),
            (json!("4G"), None),
            (json!(""), None),
            (json!(true), None),
            (json!(null), None),
        ];
        for (value, want) in cases {
            assert_eq!(to_u64(&value).ok(), want, "{value}");
        }
    }

    #[test]
    fn numbers_from_numbers_and_strings() {
        let cases = [
            (json!(0.25), Some(0.25)),
            (json!("0.25"), Some(0.25)),
            (json!(1), Some(1.0)),
            (json!("1"), Some(1.0)),
            (json!("NaN"), None),
            (json!("fast"), None),
            (json!([]), None),
        ];
        for (value, want) in cases {
            assert_eq!(to_f64(&value).ok(), want, "{value}");
        }
    }

    #[test]
    fn booleans_in_every_spelling() {
        let cases = [
            (json!(true), Some(true)),
            (json!(false), Some(false)),
            (json!(1), Some(true)),
            (json!(0), Some(false)),
            (json!(1.0), Some(true)),
            (json!("1"), Some(true)),
            (json!("0"), Some(false)),
            (json!("true"), Some(true)),
            (json!("False"), Some(false)),
            (json!("yes"), Some(true)),
            (json!("off"), Some(false)),
            (json!(2), None),
            (json!("maybe"), None),
            (json!(null), None),
        ];
        for (value, want) in cases {
            assert_eq!(to_bool(&value).ok(), want, "{value}");
        }
    }

    #[test]
    fn strings_from_strings_numbers_and_booleans() {
        let cases = [
            (json!("web"), Some("web")),
            (json!(123), Some("123")),
            (json!(true), Some("1")),
            (json!(false), Some("0")),
            (json!({}), None),
        ];
        for (value, want) in cases {
            assert_eq!(to_string(&value).ok().as_deref(), want, "{value}");
        }
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Row {
        #[serde(default, deserialize_with = "de_opt_u64")]
        maxmem: Option<u64>,
        #[serde(default, deserialize_with = "de_bool")]
        template: bool,
        #[serde(default, deserialize_with = "de_opt_string")]
        name: Option<String>,
        #[serde(deserialize_with = "de_u32")]
        vmid: u32,
    }

    #[test]
    fn serde_helpers_read_both_spellings_and_missing_fields() {
        let cases = [
            (
                r#"{"maxmem": 2147483648, "template": 1, "name": "web", "vmid": 100}"#,
                Row {
                    maxmem: Some(2_147_483_648),
                    template: true,
                    name: Some("web".into()),
                    vmid: 100,
                },
            ),
            (
                r#"{"maxmem": "2147483648", "template": "0", "name": 42, "vmid": "101"}"#,
                Row {
                    maxmem: Some(2_147_483_648),
                    template: false,
                    name: Some("42".into()),
                    vmid: 101,
                },
            ),
            (
                r#"{"maxmem": null, "template": true, "vmid": 102}"#,
                Row {
                    maxmem: None,
                    template: true,
                    name: None,
                    vmid: 102,
                },
            ),
            (
                r#"{"maxmem": "", "vmid": 103}"#,
                Row {
                    maxmem: None,
                    template: false,
                    name: None,
                    vmid: 103,
                },
            ),
        ];
        for (text, want) in cases {
            let row: Row = serde_json::from_str(text).expect(text);
            assert_eq!(row, want, "{text}");
        }
    }

    #[test]
    fn a_wrong_type_is_an_error_that_names_it() {
        let err = serde_json::from_str::<Row>(r#"{"vmid": "abc"}"#).expect_err("not a vmid");
        assert!(err.to_string().contains("\"abc\""), "{err}");
    }
}
