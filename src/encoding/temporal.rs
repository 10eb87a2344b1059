//! DATE, TIME, DATETIME and TIMESTAMP (old and fractional "2" formats) to MySQL's text forms.
//!
//! Formats (MySQL `mysys/my_time.cc`, `*_from_binary`; `sql-common/my_time.cc`):
//! * DATE (NEWDATE): 3 bytes little-endian, `day | month << 5 | year << 9`.
//! * DATETIME2: 5 bytes big-endian `0x80_0000_0000 + (((year*13+month) << 5 | day) << 17 |
//!   hour << 12 | minute << 6 | second)`, then the fraction: 1, 2 or 3 big-endian bytes for
//!   1-2, 3-4, 5-6 digits holding hundredths, ten-thousandths or microseconds.
//! * TIMESTAMP2: 4 bytes big-endian seconds since the epoch, then the same fraction.
//! * TIME2: 3 bytes big-endian `0x800000 + (hour << 12 | minute << 6 | second)` with the same
//!   fraction layouts; 5-6 digits are one 6-byte integer offset by `0x8000_0000_0000`. A
//!   negative time with a fraction stores the integer part rounded *down* and the fraction as
//!   `0x100 - f` (`0x10000 - f`), so `-00:00:00.1` is `7F FF FF F6`: the integer part must be
//!   bumped back up and the fraction negated (`my_time_packed_from_binary`).
//! * Old DATETIME: 8 bytes little-endian `YYYYMMDDhhmmss`; old TIME: 3 bytes little-endian
//!   signed `±hhmmss`; old TIMESTAMP: 4 bytes little-endian seconds.
//!
//! Invariant: the output is what `SELECT` prints with the column's own precision: exactly `fsp`
//! fraction digits, zero dates kept (`0000-00-00`, `2024-00-00`), TIMESTAMP in UTC, TIME hours
//! at least two digits and up to 838.

use super::cursor::{Cursor, Fault};
use super::decimal::push_digits;
use crate::time::civil_from_days;

/// A broken-down date and time (no time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct DateTime {
    pub(crate) year: u32,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
    pub(crate) micros: u32,
}

/// Checks the fractional-seconds precision from the column metadata.
fn fsp(meta: u16) -> Result<u8, Fault> {
    u8::try_from(meta).ok().filter(|f| *f <= 6).ok_or_else(|| {
        Fault::Invalid(format!(
            "fractional seconds precision {meta}: expected 0..=6"
        ))
    })
}

/// Reads the fraction that follows DATETIME2/TIMESTAMP2, as microseconds.
fn fraction(cur: &mut Cursor<'_>, fsp: u8) -> Result<u32, Fault> {
    Ok(match fsp {
        1 | 2 => cur.uint_be(1)? as u32 * 10_000,
        3 | 4 => cur.uint_be(2)? as u32 * 100,
        5 | 6 => cur.uint_be(3)? as u32,
        _ => 0,
    })
}

/// DATE: `YYYY-MM-DD`.
pub(crate) fn date(cur: &mut Cursor<'_>) -> Result<String, Fault> {
    let v = cur.uint_le(3)? as u32;
    let mut out = String::with_capacity(10);
    push_date(&mut out, v >> 9, (v >> 5) & 15, v & 31);
    Ok(out)
}

/// DATETIME2 with `meta` fraction digits.
pub(crate) fn datetime2(cur: &mut Cursor<'_>, meta: u16) -> Result<String, Fault> {
    let fsp = fsp(meta)?;
    let packed = cur.uint_be(5)?;
    let int = packed.checked_sub(0x80_0000_0000).ok_or_else(|| {
        Fault::Invalid(format!("datetime2 {packed:#x} is below the zero datetime"))
    })?;
    let mut dt = datetime_from_int_part(int);
    dt.micros = fraction(cur, fsp)?;
    Ok(format_datetime(&dt, fsp))
}

/// Splits the integer part shared by DATETIME2 and MySQL's packed datetime.
pub(crate) fn datetime_from_int_part(int: u64) -> DateTime {
    let ymd = int >> 17;
    let ym = ymd >> 5;
    let hms = int & 0x1_ffff;
    DateTime {
        year: (ym / 13) as u32,
        month: (ym % 13) as u32,
        day: (ymd & 31) as u32,
        hour: (hms >> 12) as u32,
        minute: ((hms >> 6) & 63) as u32,
        second: (hms & 63) as u32,
        micros: 0,
    }
}

/// TIMESTAMP2 with `meta` fraction digits, in UTC; 0 is the zero datetime.
pub(crate) fn timestamp2(cur: &mut Cursor<'_>, meta: u16) -> Result<String, Fault> {
    let fsp = fsp(meta)?;
    let secs = cur.uint_be(4)?;
    let mut dt = from_unix(secs);
    dt.micros = fraction(cur, fsp)?;
    Ok(format_datetime(&dt, fsp))
}

/// Old TIMESTAMP: 4 bytes little-endian seconds, in UTC.
pub(crate) fn timestamp(cur: &mut Cursor<'_>) -> Result<String, Fault> {
    let secs = cur.uint_le(4)?;
    Ok(format_datetime(&from_unix(secs), 0))
}

/// Old DATETIME: 8 bytes little-endian `YYYYMMDDhhmmss`.
pub(crate) fn datetime(cur: &mut Cursor<'_>) -> Result<String, Fault> {
    let v = cur.uint_le(8)?;
    let (d, t) = (v / 1_000_000, v % 1_000_000);
    let dt = DateTime {
        year: (d / 10_000) as u32,
        month: (d / 100 % 100) as u32,
        day: (d % 100) as u32,
        hour: (t / 10_000) as u32,
        minute: (t / 100 % 100) as u32,
        second: (t % 100) as u32,
        micros: 0,
    };
    Ok(format_datetime(&dt, 0))
}

/// Old TIME: 3 bytes little-endian signed `±hhmmss`.
pub(crate) fn time(cur: &mut Cursor<'_>) -> Result<String, Fault> {
    let raw = cur.uint_le(3)? as u32;
    let v = ((raw << 8) as i32) >> 8;
    let a = v.unsigned_abs();
    Ok(format_time(v < 0, a / 10_000, a / 100 % 100, a % 100, 0, 0))
}

/// TIME2 with `meta` fraction digits.
pub(crate) fn time2(cur: &mut Cursor<'_>, meta: u16) -> Result<String, Fault> {
    let fsp = fsp(meta)?;
    let packed = time2_packed(cur, fsp)?;
    Ok(format_packed_time(packed, fsp))
}

/// MySQL's in-memory packed time (`int_part << 24 + microseconds`, negative for negative
/// times) from the TIME2 bytes (`my_time_packed_from_binary`).
fn time2_packed(cur: &mut Cursor<'_>, fsp: u8) -> Result<i64, Fault> {
    const INT_OFS: i64 = 0x80_0000;
    Ok(match fsp {
        1..=4 => {
            let mut int = cur.uint_be(3)? as i64 - INT_OFS;
            let (width, scale) = if fsp <= 2 { (1, 10_000) } else { (2, 100) };
            let mut frac = cur.uint_be(width)? as i64;
            if int < 0 && frac != 0 {
                // Negative values store the fraction reversed (for sort order): undo it.
                int += 1;
                frac -= 1 << (8 * width);
            }
            (int << 24) + frac * scale
        }
        5 | 6 => cur.uint_be(6)? as i64 - 0x8000_0000_0000,
        _ => (cur.uint_be(3)? as i64 - INT_OFS) << 24,
    })
}

/// Formats a packed time (`TIME_from_longlong_time_packed`) with `fsp` fraction digits.
pub(crate) fn format_packed_time(packed: i64, fsp: u8) -> String {
    let a = packed.unsigned_abs();
    let hms = a >> 24;
    let micros = (a % (1 << 24)) as u32;
    format_time(
        packed < 0,
        ((hms >> 12) % (1 << 10)) as u32,
        ((hms >> 6) % (1 << 6)) as u32,
        (hms % (1 << 6)) as u32,
        micros,
        fsp,
    )
}

/// `[-]HH:MM:SS[.f]`, hours at least two digits.
fn format_time(neg: bool, h: u32, m: u32, s: u32, micros: u32, fsp: u8) -> String {
    let mut out = String::with_capacity(16);
    if neg {
        out.push('-');
    }
    push_digits(&mut out, h, 2);
    out.push(':');
    push_digits(&mut out, m, 2);
    out.push(':');
    push_digits(&mut out, s, 2);
    push_fraction(&mut out, micros, fsp);
    out
}

/// `YYYY-MM-DD HH:MM:SS[.f]`.
pub(crate) fn format_datetime(dt: &DateTime, fsp: u8) -> String {
    let mut out = String::with_capacity(26);
    push_date(&mut out, dt.year, dt.month, dt.day);
    out.push(' ');
    push_digits(&mut out, dt.hour, 2);
    out.push(':');
    push_digits(&mut out, dt.minute, 2);
    out.push(':');
    push_digits(&mut out, dt.second, 2);
    push_fraction(&mut out, dt.micros, fsp);
    out
}

/// `YYYY-MM-DD`.
pub(crate) fn push_date(out: &mut String, year: u32, month: u32, day: u32) {
    push_digits(out, year, 4);
    out.push('-');
    push_digits(out, month, 2);
    out.push('-');
    push_digits(out, day, 2);
}

/// `.` and the first `fsp` digits of the microseconds (nothing when `fsp` is 0).
fn push_fraction(out: &mut String, micros: u32, fsp: u8) {
    if fsp > 0 {
        out.push('.');
        push_digits(
            out,
            micros / 10u32.pow(6 - u32::from(fsp)),
            usize::from(fsp),
        );
    }
}

/// UTC date and time of `secs` since the epoch; 0 is MySQL's zero TIMESTAMP.
fn from_unix(secs: u64) -> DateTime {
    if secs == 0 {
        return DateTime::default();
    }
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    DateTime {
        year: year as u32,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem / 60 % 60) as u32,
        second: (rem % 60) as u32,
        micros: 0,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mysql_common::binlog::misc as mc;
    use mysql_common::value::Value as MyValue;

    /// MySQL's packed time of a broken-down TIME.
    pub(crate) fn packed_time(neg: bool, h: i64, m: i64, s: i64, us: i64) -> i64 {
        let p = ((h << 12 | m << 6 | s) << 24) + us;
        if neg {
            -p
        } else {
            p
        }
    }

    /// TIME2 bytes exactly as MySQL's `my_time_packed_to_binary` writes them.
    pub(crate) fn time2_bytes(nr: i64, fsp: u8) -> Vec<u8> {
        let int = ((nr >> 24) + 0x80_0000) as u64;
        let frac = nr % (1 << 24);
        let mut out = int.to_be_bytes()[5..].to_vec();
        match fsp {
            1 | 2 => out.push((frac / 10_000) as i8 as u8),
            3 | 4 => out.extend_from_slice(&((frac / 100) as i16).to_be_bytes()),
            5 | 6 => out = ((nr + 0x8000_0000_0000) as u64).to_be_bytes()[2..].to_vec(),
            _ => {}
        }
        out
    }

    /// DATETIME2 bytes as MySQL's `my_datetime_packed_to_binary` writes them.
    pub(crate) fn datetime2_bytes(d: [u64; 6], us: u64, fsp: u8) -> Vec<u8> {
        let ymd = ((d[0] * 13 + d[1]) << 5) | d[2];
        let int = (ymd << 17 | d[3] << 12 | d[4] << 6 | d[5]) + 0x80_0000_0000;
        let mut out = int.to_be_bytes()[3..].to_vec();
        match fsp {
            1 | 2 => out.push((us / 10_000) as u8),
            3 | 4 => out.extend_from_slice(&((us / 100) as u16).to_be_bytes()),
            5 | 6 => out.extend_from_slice(&(us as u32).to_be_bytes()[1..]),
            _ => {}
        }
        out
    }

    fn run(bytes: &[u8], f: impl Fn(&mut Cursor<'_>) -> Result<String, Fault>) -> String {
        let mut cur = Cursor::new(bytes);
        let out = f(&mut cur).unwrap();
        assert!(cur.is_empty(), "bytes left after {out}");
        out
    }

    #[test]
    fn negative_time_with_fraction_keeps_its_sign() {
        // Hand-computed: -0.1 s as TIME(1) is 0x7FFFFF (int part -1) and 0xF6 (-10 hundredths).
        assert_eq!(
            run(&[0x7f, 0xff, 0xff, 0xf6], |c| time2(c, 1)),
            "-00:00:00.1"
        );
        let cases = [
            (packed_time(true, 0, 0, 0, 100_000), 1, "-00:00:00.1"),
            (packed_time(true, 0, 0, 0, 10_000), 2, "-00:00:00.01"),
            (packed_time(true, 1, 0, 0, 500_000), 2, "-01:00:00.50"),
            (packed_time(true, 0, 0, 1, 1_000), 3, "-00:00:01.001"),
            (packed_time(true, 0, 0, 1, 999_900), 4, "-00:00:01.9999"),
            (
                packed_time(true, 12, 34, 56, 789_012),
                6,
                "-12:34:56.789012",
            ),
            (packed_time(true, 0, 0, 0, 1), 6, "-00:00:00.000001"),
            (packed_time(true, 838, 59, 59, 0), 0, "-838:59:59"),
            (packed_time(true, 0, 0, 1, 0), 2, "-00:00:01.00"),
        ];
        for (nr, fsp, expected) in cases {
            let bytes = time2_bytes(nr, fsp);
            assert_eq!(run(&bytes, |c| time2(c, u16::from(fsp))), expected);
        }
    }

    #[test]
    fn positive_time_has_at_least_two_hour_digits_and_exact_fraction_digits() {
        let cases = [
            (packed_time(false, 0, 0, 0, 0), 0, "00:00:00"),
            (packed_time(false, 0, 0, 0, 0), 4, "00:00:00.0000"),
            (packed_time(false, 10, 11, 12, 300_000), 1, "10:11:12.3"),
            (packed_time(false, 838, 59, 59, 0), 0, "838:59:59"),
            (packed_time(false, 100, 0, 0, 123_450), 5, "100:00:00.12345"),
        ];
        for (nr, fsp, expected) in cases {
            let bytes = time2_bytes(nr, fsp);
            assert_eq!(run(&bytes, |c| time2(c, u16::from(fsp))), expected);
        }
    }

    #[test]
    fn time_agrees_with_mysql_common_where_its_reader_is_sound() {
        // mysql_common's TIME2 reader is right for 0, 5 and 6 digits (its 1-4 digit negative
        // path underflows), so compare there.
        for (nr, fsp) in [
            (packed_time(true, 5, 6, 7, 123_456), 6),
            (packed_time(false, 5, 6, 7, 0), 0),
            (packed_time(true, 800, 1, 2, 10), 5),
        ] {
            let bytes = time2_bytes(nr, fsp);
            let theirs = mc::my_time_packed_from_binary(&bytes[..], u32::from(fsp)).unwrap();
            assert_eq!(theirs, nr);
            let MyValue::Time(neg, d, h, m, s, us) = mc::time_from_packed(theirs) else {
                panic!("not a time");
            };
            let ours = run(&bytes, |c| time2(c, u16::from(fsp)));
            let expected = format_time(
                neg,
                d * 24 + u32::from(h),
                u32::from(m),
                u32::from(s),
                us,
                fsp,
            );
            assert_eq!(ours, expected);
        }
    }

    #[test]
    fn datetime_prints_exactly_its_fraction_digits() {
        let cases = [
            ([2024, 1, 2, 3, 4, 5], 0, 0, "2024-01-02 03:04:05"),
            ([2024, 1, 2, 3, 4, 5], 120_000, 2, "2024-01-02 03:04:05.12"),
            ([2024, 1, 2, 3, 4, 5], 100_000, 1, "2024-01-02 03:04:05.1"),
            (
                [9999, 12, 31, 23, 59, 59],
                999_999,
                6,
                "9999-12-31 23:59:59.999999",
            ),
            (
                [1000, 1, 1, 0, 0, 0],
                123_400,
                4,
                "1000-01-01 00:00:00.1234",
            ),
            ([0, 0, 0, 0, 0, 0], 0, 0, "0000-00-00 00:00:00"),
            ([0, 0, 0, 0, 0, 0], 0, 3, "0000-00-00 00:00:00.000"),
            ([2024, 0, 0, 0, 0, 0], 0, 0, "2024-00-00 00:00:00"),
        ];
        for (d, us, fsp, expected) in cases {
            let bytes = datetime2_bytes(d, us, fsp);
            assert_eq!(run(&bytes, |c| datetime2(c, u16::from(fsp))), expected);
            let packed = mc::my_datetime_packed_from_binary(&bytes[..], u32::from(fsp)).unwrap();
            let MyValue::Date(y, mo, da, h, mi, s, mu) = mc::datetime_from_packed(packed) else {
                panic!("not a date");
            };
            let theirs = DateTime {
                year: u32::from(y),
                month: u32::from(mo),
                day: u32::from(da),
                hour: u32::from(h),
                minute: u32::from(mi),
                second: u32::from(s),
                micros: mu,
            };
            assert_eq!(
                format_datetime(&theirs, fsp),
                expected,
                "mysql_common agrees"
            );
        }
    }

    #[test]
    fn timestamp_is_utc_and_zero_is_the_zero_datetime() {
        let cases: [(u32, &[u8], u8, &str); 6] = [
            (1_704_164_645, &[], 0, "2024-01-02 03:04:05"),
            (
                1_704_164_645,
                &[0x01, 0xe2, 0x40],
                6,
                "2024-01-02 03:04:05.123456",
            ),
            (951_782_400, &[0x04, 0xd2], 4, "2000-02-29 00:00:00.1234"),
            (2_147_483_647, &[], 0, "2038-01-19 03:14:07"),
            (0, &[], 0, "0000-00-00 00:00:00"),
            (0, &[0], 2, "0000-00-00 00:00:00.00"),
        ];
        for (secs, frac, fsp, expected) in cases {
            let mut bytes = secs.to_be_bytes().to_vec();
            bytes.extend_from_slice(frac);
            assert_eq!(run(&bytes, |c| timestamp2(c, u16::from(fsp))), expected);
        }
        assert_eq!(run(&1u32.to_le_bytes(), timestamp), "1970-01-01 00:00:01");
    }

    #[test]
    fn dates_keep_zero_and_partial_zero_parts() {
        let enc = |y: u32, m: u32, d: u32| (y << 9 | m << 5 | d).to_le_bytes()[..3].to_vec();
        let cases = [
            (enc(2024, 1, 2), "2024-01-02"),
            (enc(0, 0, 0), "0000-00-00"),
            (enc(2024, 0, 0), "2024-00-00"),
            (enc(2024, 2, 0), "2024-02-00"),
            (enc(9999, 12, 31), "9999-12-31"),
            (enc(1, 1, 1), "0001-01-01"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(run(&bytes, date), expected);
        }
    }

    #[test]
    fn old_datetime_and_time_formats_decode() {
        assert_eq!(
            run(&20_240_102_030_405u64.to_le_bytes(), datetime),
            "2024-01-02 03:04:05"
        );
        assert_eq!(run(&0u64.to_le_bytes(), datetime), "0000-00-00 00:00:00");
        let neg = (-123_456i32).to_le_bytes();
        assert_eq!(run(&neg[..3], time), "-12:34:56");
        assert_eq!(run(&8_385_959i32.to_le_bytes()[..3], time), "838:59:59");
    }

    #[test]
    fn bad_fraction_precision_is_refused() {
        let mut cur = Cursor::new(&[0x80, 0, 0]);
        assert!(matches!(time2(&mut cur, 7), Err(Fault::Invalid(_))));
    }
}
