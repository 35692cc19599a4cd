//! Wall-clock time for proposers and readers, in milliseconds since the Unix
//! epoch, plus RFC 3339 formatting and parsing for the API.
//!
//! Only proposers (the leader stamping a command) and read paths call
//! [`now_ms`]. `State::apply` never does: it takes time from the command, so
//! every replica applies the same log to the same state.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch, UTC. Deadlines and timestamps in the
/// replicated state use this unit.
pub type Millis = u64;

/// The current wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_millis() as Millis
}

/// Formats a timestamp as an RFC 3339 UTC string, always with three
/// millisecond digits (`2026-11-21T10:00:00.250Z`), so every time the API
/// returns has the same shape and sorts as text.
pub fn to_rfc3339(ms: Millis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            ms % 1000
        ),
        Err(_) => ms.to_string(),
    }
}

/// Parses an RFC 3339 timestamp into milliseconds since the epoch.
///
/// A time written with a year before 1970 is refused: nothing in keel
/// predates it. One in 1970 whose offset puts it before the epoch in UTC
/// is the epoch.
pub fn parse_rfc3339(s: &str) -> Result<Millis, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))?;
    if t.year() < 1970 {
        return Err(format!("`{s}` is before 1970"));
    }
    let ms = (t.unix_timestamp_nanos() / 1_000_000).max(0);
    u64::try_from(ms).map_err(|_| format!("`{s}` is out of range"))
}

/// Parses a duration given as integer seconds (`"30"`) or with a unit
/// (`"500ms"`, `"90s"`, `"5m"`, `"72h"`, `"7d"`) into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "`{s}` is not a duration (expected e.g. 30, \"90s\", \"5m\", \"72h\")"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is out of range for a duration"))?;
    let factor: u64 = match unit {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{s}` (use ms, s, m, h or d)"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{s}` is out of range for a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration_ms("30"), Ok(30_000));
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("72h"), Ok(259_200_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("-5").is_err());
        assert!(parse_duration_ms("5x").is_err());
        assert!(parse_duration_ms("abc").is_err());
        assert!(parse_duration_ms("99999999999999999999").is_err());
        assert!(parse_duration_ms("9999999999999999d").is_err());
    }

    #[test]
    fn rfc3339_round_trips() {
        let ms = parse_rfc3339("2026-11-21T10:00:00Z").unwrap();
        assert_eq!(to_rfc3339(ms), "2026-11-21T10:00:00.000Z");
        let ms = parse_rfc3339("2026-11-21T10:00:00.230+01:00").unwrap();
        assert_eq!(to_rfc3339(ms), "2026-11-21T09:00:00.230Z");
        assert!(parse_rfc3339("yesterday").is_err());
        assert!(parse_rfc3339("1960-01-01T00:00:00Z").is_err());
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00+05:00"), Ok(0));
    }
}
