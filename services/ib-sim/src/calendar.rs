//! New York time and exchange calendars, without a time-zone database: US daylight saving
//! rules (1987–2006 and 2007 onwards) and NYSE holidays are rule-based, which covers every
//! date the simulator serves.
//!
//! This is a second calendar on purpose: the simulator is an independent oracle for the data
//! service's calendars (`ktrdr-market`/`ktrdr-data`), so it shares no code with them.

use time::{Date, Duration, Month, OffsetDateTime, Weekday};

pub const DAY: i64 = 86_400;
pub const HOUR: i64 = 3_600;
pub const MINUTE: i64 = 60;

/// The `n`-th (1-based) `weekday` of a month; `None` when the month has fewer.
fn nth_weekday(year: i32, month: Month, weekday: Weekday, n: u8) -> Option<Date> {
    let first = Date::from_calendar_date(year, month, 1).ok()?;
    let offset = (7 + weekday.number_days_from_monday() as i64
        - first.weekday().number_days_from_monday() as i64)
        % 7;
    let day = first.checked_add(Duration::days(offset + 7 * (i64::from(n) - 1)))?;
    (day.month() == month).then_some(day)
}

/// The last `weekday` of a month.
fn last_weekday(year: i32, month: Month, weekday: Weekday) -> Option<Date> {
    nth_weekday(year, month, weekday, 5).or_else(|| nth_weekday(year, month, weekday, 4))
}

fn unix(date: Date, secs_of_day: i64) -> i64 {
    date.midnight().assume_utc().unix_timestamp() + secs_of_day
}

/// Daylight saving start and end in New York for `year`, as UTC unix seconds.
fn dst_bounds(year: i32) -> Option<(i64, i64)> {
    let (start, end) = if year >= 2007 {
        (
            nth_weekday(year, Month::March, Weekday::Sunday, 2)?,
            nth_weekday(year, Month::November, Weekday::Sunday, 1)?,
        )
    } else {
        (
            nth_weekday(year, Month::April, Weekday::Sunday, 1)?,
            last_weekday(year, Month::October, Weekday::Sunday)?,
        )
    };
    // 02:00 local standard time = 07:00 UTC; 02:00 local daylight time = 06:00 UTC.
    Some((unix(start, 7 * HOUR), unix(end, 6 * HOUR)))
}

/// New York's UTC offset in seconds at a UTC instant (-4 h in summer, -5 h in winter).
pub fn ny_offset(utc: i64) -> i64 {
    let year = OffsetDateTime::from_unix_timestamp(utc)
        .map(|t| t.year())
        .unwrap_or(2000);
    match dst_bounds(year) {
        Some((start, end)) if (start..end).contains(&utc) => -4 * HOUR,
        _ => -5 * HOUR,
    }
}

/// The UTC instant of a New York wall-clock time (`secs_of_day` after local midnight).
pub fn ny_to_utc(date: Date, secs_of_day: i64) -> i64 {
    let local = unix(date, secs_of_day);
    // Try standard time first; if that instant is in daylight time, the offset is -4 h.
    let guess = local + 5 * HOUR;
    local - ny_offset(guess)
}

/// The New York calendar date of a UTC instant.
pub fn ny_date(utc: i64) -> Date {
    let local = utc + ny_offset(utc);
    OffsetDateTime::from_unix_timestamp(local)
        .map(|t| t.date())
        .unwrap_or(Date::MIN)
}

/// Date of Easter Sunday (anonymous Gregorian algorithm).
fn easter(year: i32) -> Option<Date> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    Date::from_calendar_date(year, Month::try_from(month as u8).ok()?, day as u8).ok()
}

/// A fixed-date holiday moved to Friday when on Saturday and Monday when on Sunday.
fn observed(date: Date) -> Date {
    match date.weekday() {
        Weekday::Saturday => date.previous_day().unwrap_or(date),
        Weekday::Sunday => date.next_day().unwrap_or(date),
        _ => date,
    }
}

/// Whether the NYSE is closed all day on `date` (a weekday holiday).
pub fn is_nyse_holiday(date: Date) -> bool {
    let year = date.year();
    let fixed = |month, day| Date::from_calendar_date(year, month, day).ok();
    let mut holidays: Vec<Option<Date>> = vec![
        nth_weekday(year, Month::January, Weekday::Monday, 3),
        nth_weekday(year, Month::February, Weekday::Monday, 3),
        easter(year).and_then(|e| e.checked_sub(Duration::days(2))),
        last_weekday(year, Month::May, Weekday::Monday),
        fixed(Month::July, 4).map(observed),
        nth_weekday(year, Month::September, Weekday::Monday, 1),
        nth_weekday(year, Month::November, Weekday::Thursday, 4),
        fixed(Month::December, 25).map(observed),
    ];
    // New Year's Day on a Saturday is not observed on the Friday before (NYSE rule).
    if let Some(new_year) = fixed(Month::January, 1)
        && new_year.weekday() != Weekday::Saturday
    {
        holidays.push(Some(observed(new_year)));
    }
    if year >= 2022 {
        holidays.push(fixed(Month::June, 19).map(observed));
    }
    holidays.into_iter().flatten().any(|h| h == date)
}

pub fn is_weekend(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// `yyyymmdd`
/// New York wall-clock time of a UTC instant as IB writes bar times for `formatDate=1`:
/// `yyyymmdd hh:mm:ss US/Eastern`.
pub fn ny_bar_time(utc: i64) -> String {
    let secs = (utc + ny_offset(utc)).rem_euclid(DAY);
    format!(
        "{} {:02}:{:02}:{:02} US/Eastern",
        yyyymmdd(ny_date(utc)),
        secs / HOUR,
        (secs % HOUR) / MINUTE,
        secs % MINUTE
    )
}

pub fn yyyymmdd(date: Date) -> String {
    format!(
        "{:04}{:02}{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// `yyyymmdd-hh:mm:ss` in UTC, the form IB uses in HistoricalDataEnd.
pub fn utc_dashed(utc: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(utc) {
        Ok(t) => format!(
            "{}-{:02}:{:02}:{:02}",
            yyyymmdd(t.date()),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => String::new(),
    }
}

/// Parses IB's endDateTime forms: `yyyymmdd-hh:mm:ss` (UTC), `yyyymmdd hh:mm:ss UTC`,
/// `yyyymmdd hh:mm:ss US/Eastern` (or `America/New_York`), and `yyyymmdd hh:mm:ss` (taken as
/// UTC, the simulator's TWS time zone).
pub fn parse_end_date_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) =
        if text.len() > 8 && (text.as_bytes()[8] == b'-' || text.as_bytes()[8] == b' ') {
            (&text[..8], text[9..].trim())
        } else {
            return None;
        };
    let (clock, zone) = match rest.split_once(' ') {
        Some((clock, zone)) => (clock, zone.trim()),
        None => (rest, "UTC"),
    };
    let date = parse_yyyymmdd(date)?;
    let mut parts = clock.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || h > 23 || m > 59 || s > 59 {
        return None;
    }
    let secs = h * HOUR + m * MINUTE + s;
    match zone {
        "UTC" | "GMT" | "Etc/UTC" => Some(unix(date, secs)),
        "US/Eastern" | "America/New_York" | "EST" | "EST5EDT" => Some(ny_to_utc(date, secs)),
        _ => None,
    }
}

pub fn parse_yyyymmdd(text: &str) -> Option<Date> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = text[..4].parse().ok()?;
    let month = Month::try_from(text[4..6].parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(year, month, text[6..].parse().ok()?).ok()
}

/// Calendar subtraction of `n` months (day clamped to the month's length), keeping the time.
pub fn minus_months(utc: i64, n: i64) -> i64 {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(utc) else {
        return utc;
    };
    let months = i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1 - n;
    let (year, month0) = (months.div_euclid(12), months.rem_euclid(12));
    let Ok(month) = Month::try_from(month0 as u8 + 1) else {
        return utc;
    };
    let year = year as i32;
    let day = t.day().min(time::util::days_in_month(month, year));
    match Date::from_calendar_date(year, month, day) {
        Ok(date) => unix(date, utc - unix(t.date(), 0)),
        Err(_) => utc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn new_york_offsets_follow_us_daylight_saving() {
        // 2024: DST from 10 March 07:00 UTC to 3 November 06:00 UTC.
        assert_eq!(
            ny_offset(unix(date!(2024 - 03 - 10), 6 * HOUR + 3599)),
            -5 * HOUR
        );
        assert_eq!(ny_offset(unix(date!(2024 - 03 - 10), 7 * HOUR)), -4 * HOUR);
        assert_eq!(
            ny_offset(unix(date!(2024 - 11 - 03), 5 * HOUR + 3599)),
            -4 * HOUR
        );
        assert_eq!(ny_offset(unix(date!(2024 - 11 - 03), 6 * HOUR)), -5 * HOUR);
        assert_eq!(ny_offset(unix(date!(2005 - 03 - 20), 12 * HOUR)), -5 * HOUR);
        assert_eq!(ny_offset(unix(date!(2005 - 04 - 05), 12 * HOUR)), -4 * HOUR);
        // The open: 09:30 New York is 14:30 UTC in winter, 13:30 UTC in summer.
        assert_eq!(
            ny_to_utc(date!(2024 - 01 - 02), 9 * HOUR + 1800),
            unix(date!(2024 - 01 - 02), 14 * HOUR + 1800)
        );
        assert_eq!(
            ny_to_utc(date!(2024 - 07 - 02), 9 * HOUR + 1800),
            unix(date!(2024 - 07 - 02), 13 * HOUR + 1800)
        );
        assert_eq!(
            ny_date(unix(date!(2024 - 07 - 03), 2 * HOUR)),
            date!(2024 - 07 - 02)
        );
    }

    #[test]
    fn bar_times_for_format_1_are_new_york_wall_clock() {
        // 2024-02-06 14:30 UTC (winter) and 2024-07-01 13:30 UTC (summer) are both 09:30.
        assert_eq!(ny_bar_time(1_707_229_800), "20240206 09:30:00 US/Eastern");
        assert_eq!(ny_bar_time(1_719_840_600), "20240701 09:30:00 US/Eastern");
    }

    #[test]
    fn nyse_holidays() {
        for d in [
            date!(2024 - 01 - 01),
            date!(2024 - 01 - 15),
            date!(2024 - 03 - 29),
            date!(2024 - 06 - 19),
            date!(2024 - 07 - 04),
            date!(2024 - 11 - 28),
            date!(2024 - 12 - 25),
            date!(2021 - 12 - 24),
            date!(2023 - 01 - 02),
        ] {
            assert!(is_nyse_holiday(d), "{d}");
        }
        for d in [
            date!(2024 - 01 - 02),
            date!(2021 - 06 - 18),
            date!(2021 - 12 - 31),
        ] {
            assert!(!is_nyse_holiday(d), "{d}");
        }
    }

    #[test]
    fn parses_end_date_times() {
        let t = unix(date!(2024 - 01 - 05), 21 * HOUR);
        assert_eq!(parse_end_date_time("20240105-21:00:00"), Some(t));
        assert_eq!(parse_end_date_time("20240105 21:00:00 UTC"), Some(t));
        assert_eq!(parse_end_date_time("20240105 16:00:00 US/Eastern"), Some(t));
        assert_eq!(parse_end_date_time("2024-01-05"), None);
        // Any bytes a client sends are refused, never a panic.
        assert_eq!(parse_end_date_time("2024010é 21:00:00"), None);
        assert_eq!(parse_end_date_time("20240105 é"), None);
        assert_eq!(utc_dashed(t), "20240105-21:00:00");
    }

    #[test]
    fn month_arithmetic_clamps_the_day() {
        let t = unix(date!(2024 - 03 - 31), 5);
        assert_eq!(minus_months(t, 1), unix(date!(2024 - 02 - 29), 5));
        assert_eq!(minus_months(t, 12), unix(date!(2023 - 03 - 31), 5));
    }
}
