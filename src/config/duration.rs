//! Durations in the configuration are strings with units: "500ms", "2s", "10m", "25h",
//! decimals ("1.5s") and sums ("1h30m"). Parsed with integer arithmetic, so "1.5s" is exactly
//! 1 500 000 000 ns (the GOP check needs exact values).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Units, longest suffix first so that "ms" is not read as "m" + "s".
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Unit names for messages.
pub const UNIT_NAMES: &str = "ns, us, ms, s, m, h";

/// Parses "500ms", "2s", "1.5s", "10m", "25h", "1h30m".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err(format!(
            "empty duration (expected a number with a unit: {UNIT_NAMES}, e.g. \"2s\")"
        ));
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(num_len);
        if number.is_empty() {
            return Err(format!(
                "invalid duration \"{s}\": expected a number before the unit"
            ));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let unit = unit.trim();
        if unit.is_empty() {
            return Err(format!(
                "invalid duration \"{s}\": missing unit (legal values: {UNIT_NAMES}), e.g. \"{number}s\""
            ));
        }
        let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!(
                "invalid duration \"{s}\": unknown unit \"{unit}\" (legal values: {UNIT_NAMES})"
            ));
        };
        total = total
            .checked_add(scaled(number, scale).ok_or_else(|| format!("invalid duration \"{s}\""))?)
            .ok_or_else(|| format!("duration \"{s}\" is too large"))?;
        rest = next;
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| format!("duration \"{s}\" is too large"))?;
    // The remainder is < 1e9 and fits in u32.
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// `number` (digits with at most one '.') times `scale` nanoseconds, exactly; a fraction
/// finer than 1 ns is an error.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') || frac.len() > 18 {
        return None;
    }
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut value = int.checked_mul(scale)?;
    if !frac.is_empty() {
        let digits: u128 = frac.parse().ok()?;
        let denom = 10u128.pow(frac.len() as u32);
        let num = digits.checked_mul(scale)?;
        if num % denom != 0 {
            return None;
        }
        value = value.checked_add(num / denom)?;
    }
    Some(value)
}

/// The shortest exact spelling: 600 s → "10m", 1.5 s → "1500ms", 0 → "0s".
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    for &(name, scale) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ]
    .iter()
    {
        if ns.is_multiple_of(scale) {
            return format!("{}{name}", ns / scale);
        }
    }
    format!("{ns}ns")
}

/// `#[serde(deserialize_with = "duration::deserialize")]` for a `Duration` field.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Other(toml::Value),
    }
    match Raw::deserialize(d)? {
        Raw::Text(s) => parse_duration(&s).map_err(serde::de::Error::custom),
        Raw::Other(v) => Err(serde::de::Error::custom(format!(
            "{v} is not a duration: write a string with a unit ({UNIT_NAMES}), e.g. \"{v}s\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_design_examples() {
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("2s"), Ok(ms(2000)));
        assert_eq!(parse_duration("10m"), Ok(ms(600_000)));
        assert_eq!(parse_duration("25h"), Ok(ms(90_000_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("1h30m"), Ok(ms(5_400_000)));
        assert_eq!(parse_duration("0.001s"), Ok(ms(1)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "2",
            "s",
            "2x",
            "1.2.3s",
            "-1s",
            "0.0000000001s",
            "2 seconds",
            "1e3s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_duration("2").unwrap_err().contains("missing unit"));
        assert!(parse_duration("99999999999999999999999h").is_err());
    }

    #[test]
    fn formats_shortest_exact() {
        assert_eq!(format_duration(ms(600_000)), "10m");
        assert_eq!(format_duration(ms(1500)), "1500ms");
        assert_eq!(format_duration(ms(90_000_000)), "25h");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_nanos(7)), "7ns");
    }

    #[test]
    fn round_trips() {
        for s in ["500ms", "2s", "10m", "25h", "1500ms", "7ns"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
