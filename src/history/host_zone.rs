//! `--established-time-zone`: the time zone the established tool's indexing host wrote
//! TIMESTAMP values in, which its index does not record (`history::established`). Parsed here
//! once for `recover` and `reconstruct`, and applied here to one value.
//!
//! # Why only fixed offsets
//! The established tool stored a TIMESTAMP as the indexing host's local wall-clock text
//! (`YYYY-MM-DD HH:MM:SS[.ffffff]`); bintrail stores UTC ("Value encoding"). A fixed offset
//! (`+02:00`, `-05:30`, `UTC`) maps every local text to exactly one instant. A named zone
//! (`Europe/Berlin`) with daylight saving time does not: the hour the clocks go back repeats,
//! and a local text in it names two instants, so a named zone is refused rather than guessed
//! (a host that kept a fixed offset all year is given as that offset).

use std::fmt;
use std::str::FromStr;

use crate::time::{format_utc, parse_utc};

/// A fixed UTC offset, in seconds east of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostZone {
    offset: i32,
}

/// Why `--established-time-zone` was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    /// Neither `UTC` nor `±HH:MM`.
    #[error("--established-time-zone {0:?}: expected a fixed offset such as +02:00 or -05:30, or UTC; named zones are refused, because in a zone with daylight saving time the hour the clocks go back repeats and its local times name two instants (give the offset the indexing host kept, if it kept one all year)")]
    Syntax(String),
    /// An offset beyond what MySQL accepts (-13:59 … +14:00).
    #[error("--established-time-zone {0:?}: the offset is outside -13:59 … +14:00")]
    Range(String),
}

impl HostZone {
    /// UTC itself.
    pub const UTC: HostZone = HostZone { offset: 0 };

    /// Seconds east of UTC.
    pub fn offset_seconds(self) -> i32 {
        self.offset
    }

    /// A TIMESTAMP written in this zone as `YYYY-MM-DD HH:MM:SS[.f…]`, in bintrail's stored
    /// form: UTC, with exactly `fsp` fraction digits. The zero timestamp stays zero (MySQL
    /// stores it without a zone). `Err` says why the text is not such a value.
    pub fn to_utc(self, local: &str, fsp: usize) -> Result<String, String> {
        let (whole, frac) = local.split_once('.').unwrap_or((local, ""));
        let shaped = whole.len() == 19
            && whole.as_bytes()[10] == b' '
            && frac.len() <= 6
            && frac.bytes().all(|b| b.is_ascii_digit());
        if !shaped {
            return Err(format!(
                "{local:?} is not the established form YYYY-MM-DD HH:MM:SS[.ffffff]"
            ));
        }
        if frac
            .get(fsp..)
            .is_some_and(|extra| extra.bytes().any(|b| b != b'0'))
        {
            return Err(format!(
                "{local:?} has more than the column's {fsp} fraction digits"
            ));
        }
        let mut digits: String = frac.chars().take(fsp).collect();
        digits.extend(std::iter::repeat_n('0', fsp - digits.len()));
        let utc = if whole == "0000-00-00 00:00:00" {
            whole.to_string()
        } else {
            let t = parse_utc(whole)
                .ok_or_else(|| format!("{local:?} is not a valid date and time"))?;
            format_utc(t - i64::from(self.offset))
        };
        Ok(match fsp {
            0 => utc,
            _ => format!("{utc}.{digits}"),
        })
    }
}

impl FromStr for HostZone {
    type Err = ZoneError;

    fn from_str(text: &str) -> Result<HostZone, ZoneError> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("UTC") {
            return Ok(HostZone::UTC);
        }
        let syntax = || ZoneError::Syntax(text.to_string());
        let (sign, rest) = match t.as_bytes().first() {
            Some(b'+') => (1, &t[1..]),
            Some(b'-') => (-1, &t[1..]),
            _ => return Err(syntax()),
        };
        let (h, m) = rest.split_once(':').ok_or_else(syntax)?;
        let two = |s: &str| {
            (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<i32>().ok())
                .flatten()
        };
        let (h, m) = (two(h).ok_or_else(syntax)?, two(m).ok_or_else(syntax)?);
        let offset = sign * (h * 3_600 + m * 60);
        if m > 59 || !(-(13 * 3_600 + 59 * 60)..=14 * 3_600).contains(&offset) {
            return Err(ZoneError::Range(text.to_string()));
        }
        Ok(HostZone { offset })
    }
}

impl fmt::Display for HostZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.offset < 0 { '-' } else { '+' };
        let a = self.offset.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", a / 3_600, a % 3_600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_offsets_and_utc_parse_and_named_zones_are_refused() {
        assert_eq!("UTC".parse::<HostZone>().unwrap().offset_seconds(), 0);
        assert_eq!(
            "+02:00".parse::<HostZone>().unwrap().offset_seconds(),
            7_200
        );
        assert_eq!("-05:30".parse::<HostZone>().unwrap().to_string(), "-05:30");
        assert!(matches!(
            "Europe/Berlin".parse::<HostZone>(),
            Err(ZoneError::Syntax(_))
        ));
        assert!(matches!(
            "+2:00".parse::<HostZone>(),
            Err(ZoneError::Syntax(_))
        ));
        assert!(matches!(
            "+14:30".parse::<HostZone>(),
            Err(ZoneError::Range(_))
        ));
        assert!(matches!(
            "+01:75".parse::<HostZone>(),
            Err(ZoneError::Range(_))
        ));
    }

    #[test]
    fn a_local_timestamp_becomes_utc_with_the_columns_fraction_digits() {
        let z: HostZone = "+02:00".parse().unwrap();
        assert_eq!(
            z.to_utc("2026-01-01 01:30:00", 0),
            Ok("2025-12-31 23:30:00".into())
        );
        assert_eq!(
            z.to_utc("2026-01-01 10:00:00.5", 3),
            Ok("2026-01-01 08:00:00.500".into())
        );
        assert_eq!(
            z.to_utc("2026-01-01 10:00:00.120000", 2),
            Ok("2026-01-01 08:00:00.12".into())
        );
        assert!(z.to_utc("2026-01-01 10:00:00.123", 2).is_err());
        assert_eq!(
            z.to_utc("0000-00-00 00:00:00", 2),
            Ok("0000-00-00 00:00:00.00".into())
        );
        let west: HostZone = "-05:30".parse().unwrap();
        assert_eq!(
            west.to_utc("2026-03-01 20:00:00", 0),
            Ok("2026-03-02 01:30:00".into())
        );
        assert!(z.to_utc("2026-01-01T10:00:00", 0).is_err());
    }
}
