//! Just enough ISO-8601 for cursors: parse a timestamp into a moment that
//! compares correctly across UTC offsets, and format one in UTC. Also the
//! HTTP date of a `Retry-After` header.

/// A point in time: seconds and nanoseconds since the Unix epoch. Ordered
/// like time (seconds first), whatever offset it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Moment {
    pub secs: i64,
    pub nanos: u32,
}

impl Moment {
    /// Whole seconds since the epoch.
    pub fn from_secs(secs: i64) -> Moment {
        Moment { secs, nanos: 0 }
    }
}

/// A moment with the text it is written as in state and requests: the text
/// is sent back to the API as it came, the moment is what compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub at: Moment,
    pub text: String,
}

impl Stamp {
    /// `text` if it is an ISO-8601 time (see `parse`).
    pub fn parse(text: &str) -> Option<Stamp> {
        parse(text).map(|at| Stamp {
            at,
            text: text.to_string(),
        })
    }

    /// Whole seconds since the epoch, written in UTC.
    pub fn utc(secs: i64) -> Stamp {
        Stamp {
            at: Moment::from_secs(secs),
            text: format_utc(secs),
        }
    }
}

/// Parses `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM[:SS[.frac]]` with `Z`, `±HH:MM`,
/// `±HHMM` or no offset (taken as UTC); a space may stand for the `T`.
pub fn parse(text: &str) -> Option<Moment> {
    let s = text.trim().as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = s.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut secs = days_from_civil(year, month, day) * 86_400;
    if s.len() == 10 {
        return Some(Moment::from_secs(secs));
    }
    if !matches!(s[10], b'T' | b't' | b' ') || s.get(13) != Some(&b':') {
        return None;
    }
    let (hour, minute) = (num(11..13)?, num(14..16)?);
    let mut i = 16;
    let mut second = 0;
    let mut nanos = 0u32;
    if s.get(i) == Some(&b':') {
        second = num(i + 1..i + 3)?;
        i += 3;
        if matches!(s.get(i), Some(b'.') | Some(b',')) {
            let start = i + 1;
            let mut end = start;
            while s.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            if end == start {
                return None;
            }
            let frac = std::str::from_utf8(&s[start..end.min(start + 9)]).ok()?;
            nanos = frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32);
            i = end;
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let offset = match s.get(i) {
        None => 0,
        Some(b'Z') | Some(b'z') if i + 1 == s.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let (oh, om) = match s.len() - i {
                6 if s[i + 3] == b':' => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                5 => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                3 => (num(i + 1..i + 3)?, 0),
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    secs += hour * 3600 + minute * 60 + second - offset;
    Some(Moment { secs, nanos })
}

/// Parses an HTTP date in its preferred form (IMF-fixdate, RFC 9110 5.6.7),
/// `Sun, 06 Nov 1994 08:49:37 GMT`, into seconds since the epoch. The two
/// obsolete forms are not accepted: a server that sends them gets the
/// retry schedule instead.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_ascii_whitespace().collect();
    let [weekday, day, month, year, clock, "GMT"] = parts.as_slice() else {
        return None;
    };
    if !weekday.ends_with(',') || day.len() != 2 || year.len() != 4 || clock.len() != 8 {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    let iso = format!("{year}-{month:02}-{day}T{clock}Z");
    parse(&iso).map(|m| m.secs)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for whole seconds since the epoch.
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Milliseconds since the epoch, now: the protocol's timestamps.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil-calendar algorithms (public domain).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_the_api_and_users_write() {
        let t = parse("2017-10-17T07:37:00-07:00").unwrap();
        assert_eq!(t, parse("2017-10-17T14:37:00Z").unwrap());
        assert_eq!(t, parse("2017-10-17 14:37:00+0000").unwrap());
        assert_eq!(parse("1970-01-01").unwrap(), Moment::from_secs(0));
        assert_eq!(
            parse("1970-01-01T00:00:01.5Z").unwrap(),
            Moment {
                secs: 1,
                nanos: 500_000_000
            }
        );
        assert_eq!(parse("2021-08-16T13:20:05.000-07:00").unwrap().nanos, 0);
        assert!(parse("2024-02-29").is_some());
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "yesterday",
            "2024-01-01T25:00Z",
            "2024-01-01T10:00:00+5",
            "2024-1-1",
            "",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn formats_utc_and_round_trips() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        for secs in [-86_401, 0, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse(&format_utc(secs)).unwrap(), Moment::from_secs(secs));
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        for bad in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "2",
            "",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
