//! Times and durations, all UTC and in whole seconds, without a date crate: the read side's
//! `--since`/`--retain` arguments, the index's hourly partitions, the archive's layout and
//! manifest, the S3 signature's date. It sits below every module that uses it (beside
//! `position`), so none of them imports `history` for a clock.
//!
//! # Invariant
//! `event_timestamp` is stored as a UTC `DATETIME` with second resolution, so every instant here
//! is a count of seconds since the Unix epoch and is written back as `YYYY-MM-DD HH:MM:SS`.
//! Civil-date arithmetic uses the proleptic Gregorian calendar (H. Hinnant's `days_from_civil`),
//! which is what MySQL's `TO_DAYS`/`TO_SECONDS` use for the years bintrail can meet.

use std::time::{SystemTime, UNIX_EPOCH};

/// Why a time or duration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Neither a relative duration nor a UTC date/time.
    #[error("'{text}' is not a time: expected a UTC date 'YYYY-MM-DD', a UTC date and time 'YYYY-MM-DD HH:MM:SS', or a duration ago such as 30m, 2h or 7d")]
    Instant {
        /// The text given.
        text: String,
    },
    /// Not a duration.
    #[error("'{text}' is not a duration: expected a whole number followed by s, m, h, d or w, e.g. 30m, 2h, 7d")]
    Duration {
        /// The text given.
        text: String,
    },
}

/// Seconds between 0000-01-01 (MySQL's `TO_SECONDS` origin) and the Unix epoch.
pub const TO_SECONDS_EPOCH: i64 = 62_167_219_200;

/// The local clock, in Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Parses `30s`, `30m`, `2h`, `7d`, `1w` into seconds (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<u64, TimeError> {
    let err = || TimeError::Duration { text: text.into() };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| err())?;
    let unit_secs = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(err()),
    };
    n.checked_mul(unit_secs).ok_or_else(err)
}

/// Parses an instant: a duration ago (`2h` = two hours before `now`), or a UTC date
/// `YYYY-MM-DD` (midnight) or date and time `YYYY-MM-DD HH:MM:SS` (a `T` may separate them).
pub fn parse_instant(text: &str, now: i64) -> Result<i64, TimeError> {
    let t = text.trim();
    if t.starts_with(|c: char| c.is_ascii_digit()) && !t.contains('-') {
        return parse_duration(t)
            .map(|d| now - d as i64)
            .map_err(|_| TimeError::Instant { text: text.into() });
    }
    parse_utc(t).ok_or_else(|| TimeError::Instant { text: text.into() })
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS` (an optional fraction is
/// ignored) as UTC.
pub fn parse_utc(text: &str) -> Option<i64> {
    let (date, time) = match text.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut d = date.split('-');
    let (y, m, day) = (d.next()?, d.next()?, d.next()?);
    if d.next().is_some() || y.len() != 4 || m.len() != 2 || day.len() != 2 {
        return None;
    }
    let (y, m, day): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, day.parse().ok()?);
    if !(1..=12).contains(&m) || day == 0 || day > days_in_month(y, m) {
        return None;
    }
    let secs = match time {
        None => 0,
        Some(t) => {
            let t = t.split('.').next()?;
            let mut p = t.split(':');
            let (h, mi, s) = (p.next()?, p.next()?, p.next()?);
            if p.next().is_some() || h.len() != 2 || mi.len() != 2 || s.len() != 2 {
                return None;
            }
            let (h, mi, s): (i64, i64, i64) = (h.parse().ok()?, mi.parse().ok()?, s.parse().ok()?);
            if h > 23 || mi > 59 || s > 59 {
                return None;
            }
            h * 3_600 + mi * 60 + s
        }
    };
    Some(days_from_civil(y, m, day) * 86_400 + secs)
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time, UTC.
pub fn format_utc(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

/// `YYYYMMDDHH` of a Unix time, UTC (partition names).
pub fn format_hour(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}{:02}", secs / 3_600)
}

/// A duration in the largest whole unit that divides it: `7d`, `36h`, `90s`.
pub fn format_duration(secs: u64) -> String {
    for (unit, n) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= n && secs % n == 0 {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

/// An age for people: `45s`, `14m05s`, `2h03m`, `3d04h`.
pub fn format_age(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3_599 => format!("{}m{:02}s", secs / 60, secs % 60),
        3_600..=86_399 => format!("{}h{:02}m", secs / 3_600, secs % 3_600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (also the binlog's TIMESTAMP
/// decode, `encoding::temporal`).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_round_trips_through_unix_seconds() {
        for (text, secs) in [
            ("1970-01-01 00:00:00", 0),
            ("2026-11-25 14:00:00", 1_795_615_200),
            ("2000-02-29 23:59:59", 951_868_799),
            ("1969-12-31 23:59:59", -1),
        ] {
            assert_eq!(parse_utc(text), Some(secs), "{text}");
            assert_eq!(format_utc(secs), text);
        }
        assert_eq!(parse_utc("2026-11-25"), Some(1_795_564_800));
        assert_eq!(parse_utc("2026-11-25T14:00:00"), Some(1_795_615_200));
        assert_eq!(parse_utc("2026-11-25 14:00:00.123456"), Some(1_795_615_200));
    }

    #[test]
    fn impossible_dates_and_times_are_refused() {
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-1-01",
            "2026-11-25 24:00:00",
            "2026-11-25 14:00",
            "yesterday",
            "",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn relative_instants_count_back_from_now() {
        let now = 1_000_000;
        assert_eq!(parse_instant("2h", now), Ok(now - 7_200));
        assert_eq!(parse_instant("30m", now), Ok(now - 1_800));
        assert_eq!(parse_instant("7d", now), Ok(now - 604_800));
        assert_eq!(parse_instant("90", now), Ok(now - 90));
        assert_eq!(
            parse_instant("1970-01-02", now),
            Ok(86_400),
            "absolute dates ignore now"
        );
        assert!(parse_instant("2x", now)
            .unwrap_err()
            .to_string()
            .contains("'2x'"));
    }

    #[test]
    fn durations_parse_and_print_in_their_largest_unit() {
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("1w"), Ok(604_800));
        assert_eq!(parse_duration("15s"), Ok(15));
        assert!(parse_duration("-1h").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert_eq!(format_duration(604_800), "1w");
        assert_eq!(format_duration(129_600), "36h");
        assert_eq!(format_duration(90), "90s");
        assert_eq!(format_age(45), "45s");
        assert_eq!(format_age(845), "14m05s");
        assert_eq!(format_age(7_380), "2h03m");
        assert_eq!(format_age(273_600), "3d04h");
    }

    #[test]
    fn partition_hours_are_utc() {
        assert_eq!(format_hour(1_795_615_200), "2026112514");
        assert_eq!(
            parse_utc("0000-01-01 00:00:00"),
            Some(-TO_SECONDS_EPOCH),
            "TO_SECONDS origin"
        );
    }
}
