//! Times for the mock and the tests: ISO-8601 in and out, the clock now.
//!
//! Written apart from the connector's `src/time.rs`, and by another method
//! (counting whole years and months, not a civil-date formula), so that a
//! bug there cannot agree with itself here.

use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time; ordered like time, whatever offset it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Moment {
    pub secs: i64,
    pub nanos: u32,
}

const DAY: i64 = 86_400;

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn month_days(year: i64, month: i64) -> i64 {
    match month {
        2 if leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn year_days(year: i64) -> i64 {
    if leap(year) {
        366
    } else {
        365
    }
}

/// Days from 1970-01-01 to the first of `month` (1-based) of `year`.
fn days_to(year: i64, month: i64) -> i64 {
    let mut days = 0;
    for y in year.min(1970)..year.max(1970) {
        days += year_days(y);
    }
    if year < 1970 {
        days = -days;
    }
    days + (1..month).map(|m| month_days(year, m)).sum::<i64>()
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_utc(secs: i64) -> String {
    let mut days = secs.div_euclid(DAY);
    let rest = secs.rem_euclid(DAY);
    let mut year = 1970;
    while days < 0 {
        year -= 1;
        days += year_days(year);
    }
    while days >= year_days(year) {
        days -= year_days(year);
        year += 1;
    }
    let mut month = 1;
    while days >= month_days(year, month) {
        days -= month_days(year, month);
        month += 1;
    }
    format!(
        "{year:04}-{month:02}-{:02}T{:02}:{:02}:{:02}Z",
        days + 1,
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `YYYY-MM-DD`, optionally followed by `T` (or a space) and
/// `HH:MM[:SS[.frac]]`, then `Z`, `±HH:MM`, `±HHMM` or nothing (UTC).
pub fn parse(text: &str) -> Option<Moment> {
    let text = text.trim();
    let (date, time) = match text.find(['T', ' ']) {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, ""),
    };
    let mut ymd = date.split('-').map(|n| n.parse::<i64>().ok());
    let (year, month, day) = (ymd.next()??, ymd.next()??, ymd.next()??);
    if ymd.next().is_some() || !(1..=12).contains(&month) {
        return None;
    }
    if !(1..=month_days(year, month)).contains(&day) {
        return None;
    }
    let (clock, offset) = match time.find(['Z', '+', '-']) {
        Some(i) => (&time[..i], &time[i..]),
        None => (time, ""),
    };
    let (clock, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = clock.split(':').filter(|p| !p.is_empty());
    let mut part = || hms.next().map_or(Some(0), |p| p.parse::<i64>().ok());
    let (h, m, s) = (part()?, part()?, part()?);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain("000000000".chars()).take(9).collect();
        digits.parse::<u32>().ok()?
    };
    let offset_secs = match offset {
        "" | "Z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let digits: String = o[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 {
                return None;
            }
            let (oh, om) = (
                digits[..2].parse::<i64>().ok()?,
                digits[2..].parse::<i64>().ok()?,
            );
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = (days_to(year, month) + day - 1) * DAY + h * 3600 + m * 60 + s - offset_secs;
    Some(Moment { secs, nanos })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_the_forms_the_api_and_users_write() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(format_utc(-1), "1969-12-31T23:59:59Z");
        let utc = parse("2024-02-29T23:59:59Z").unwrap();
        assert_eq!(utc.secs, 1_709_251_199);
        assert_eq!(
            parse("2024-02-29T16:59:59.250-07:00").unwrap().secs,
            utc.secs
        );
        assert_eq!(
            parse("2024-02-29T16:59:59.250-07:00").unwrap().nanos,
            250_000_000
        );
        assert_eq!(parse("2024-03-01 00:59:59+0100").unwrap().secs, utc.secs);
        assert_eq!(parse("2024-03-01").unwrap().secs, utc.secs + 1);
        assert_eq!(parse("2023-02-29"), None);
        assert_eq!(parse("yesterday"), None);
    }
}
