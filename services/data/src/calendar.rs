//! Trading calendars: when a bar is expected to exist.
//!
//! - **US equities** (NYSE/NASDAQ regular hours): 09:30–16:00 America/New_York, Monday to
//!   Friday, minus NYSE holidays (rules from 1998, plus the unscheduled closures since 2001), with
//!   13:00 early closes on July 3, the day after Thanksgiving and December 24.
//! - **Forex** (IDEALPRO, 24/5): Sunday 17:00 to Friday 17:00 America/New_York, each session
//!   running 17:00 to 17:00 and belonging to the next day (the FX trading day). Closed on
//!   25 December and 1 January: the session that would end at 17:00 on those days does not
//!   run (no observance when they fall on a weekend).
//! - **CME futures** (Globex): Sunday 18:00 to Friday 17:00 America/New_York with the daily
//!   17:00–18:00 maintenance break. Closed on the US holidays of the NYSE list (New Year's
//!   Day, Good Friday and Christmas, when CME is closed, and the other federal holidays, on
//!   which CME's equity products only trade an abbreviated session to 13:00 New York: the
//!   whole day counts as closed, so a missing abbreviated session is never reported as a
//!   gap). Early closes at 13:15 New York (12:15 Chicago) on 24 December and the day after
//!   Thanksgiving.
//!
//! Daily bars are expected on trading dates (the bar's UTC date), weekly bars on weeks with at
//! least one trading date.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Timelike, Weekday};
use chrono_tz::America::New_York;
use chrono_tz::Tz;
use ktrdr_market::{AssetClass, DAY_MS, Timeframe};

/// Which calendar a symbol trades on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    UsEquity,
    Forex,
    CmeFutures,
}

impl Calendar {
    pub fn for_symbol(symbol: &str) -> Self {
        match AssetClass::of(symbol) {
            AssetClass::Stock => Self::UsEquity,
            AssetClass::Forex => Self::Forex,
            AssetClass::Future => Self::CmeFutures,
        }
    }

    /// The name reported in `GetCoverageResponse.calendar`.
    pub fn name(self) -> &'static str {
        match self {
            Self::UsEquity => "us_equity_regular_hours",
            Self::Forex => "forex_24x5",
            Self::CmeFutures => "cme_globex",
        }
    }

    pub fn time_zone(self) -> &'static str {
        "America/New_York"
    }

    /// Whether `date` is a weekday on which the venue does not trade (a holiday). For forex
    /// the date is the FX trading day, whose session starts at 17:00 New York the day before.
    pub fn is_holiday(self, date: NaiveDate) -> bool {
        match self {
            Self::Forex => is_forex_holiday(date),
            Self::UsEquity | Self::CmeFutures => !is_weekend(date) && is_nyse_holiday(date),
        }
    }

    /// Whether a bar of `timeframe` opening at `ts_ms` is expected to exist.
    pub fn expects_bar(self, timeframe: Timeframe, ts_ms: i64) -> bool {
        match timeframe {
            Timeframe::D1 => self.is_trading_date(utc_date(ts_ms)),
            Timeframe::W1 => (0..7).any(|d| self.is_trading_date(utc_date(ts_ms + d * DAY_MS))),
            _ => self.is_open_during(ts_ms, ts_ms + timeframe.duration_ms()),
        }
    }

    /// Whether a daily bar is expected on `date`.
    fn is_trading_date(self, date: NaiveDate) -> bool {
        match self {
            Self::Forex => !is_weekend(date) && !is_forex_holiday(date),
            Self::UsEquity | Self::CmeFutures => !is_weekend(date) && !is_nyse_holiday(date),
        }
    }

    /// Whether the venue is open at any moment of `[start_ms, end_ms)`. Sessions are checked
    /// on the NY-local dates the interval touches.
    fn is_open_during(self, start_ms: i64, end_ms: i64) -> bool {
        let (Some(first), Some(last)) = (ny(start_ms), ny(end_ms - 1)) else {
            return false;
        };
        let mut date = first.date_naive().pred_opt().unwrap_or(first.date_naive());
        while date <= last.date_naive() {
            for (open, close) in self.sessions(date) {
                if open < end_ms && close > start_ms {
                    return true;
                }
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        false
    }

    /// The open intervals (UTC ms) that start on NY-local `date`.
    fn sessions(self, date: NaiveDate) -> Vec<(i64, i64)> {
        let at = |d: NaiveDate, h: u32, m: u32| ny_ms(d, h, m);
        match self {
            Self::UsEquity => {
                if is_weekend(date) || is_nyse_holiday(date) {
                    return Vec::new();
                }
                let close = if is_nyse_early_close(date) {
                    (13, 0)
                } else {
                    (16, 0)
                };
                pair(at(date, 9, 30), at(date, close.0, close.1))
            }
            Self::Forex => match date.weekday() {
                // Sunday 17:00 to Friday 17:00: each session runs 17:00 → 17:00 next day and
                // belongs to that next day, so it does not run when that day is a holiday.
                Weekday::Sun | Weekday::Mon | Weekday::Tue | Weekday::Wed | Weekday::Thu => {
                    let next = date.succ_opt();
                    if next.is_some_and(is_forex_holiday) {
                        Vec::new()
                    } else {
                        pair(at(date, 17, 0), next.and_then(|n| at(n, 17, 0)))
                    }
                }
                _ => Vec::new(),
            },
            Self::CmeFutures => match date.weekday() {
                // 18:00 → 17:00 next day, Sunday to Thursday evenings, unless the next day is a
                // holiday; 18:00 → 13:15 before an early close.
                Weekday::Sun | Weekday::Mon | Weekday::Tue | Weekday::Wed | Weekday::Thu => {
                    let next = date.succ_opt();
                    match next {
                        Some(n) if is_nyse_holiday(n) => Vec::new(),
                        Some(n) if is_cme_early_close(n) => pair(at(date, 18, 0), at(n, 13, 15)),
                        Some(n) => pair(at(date, 18, 0), at(n, 17, 0)),
                        None => Vec::new(),
                    }
                }
                _ => Vec::new(),
            },
        }
    }
}

fn pair(open: Option<i64>, close: Option<i64>) -> Vec<(i64, i64)> {
    match (open, close) {
        (Some(o), Some(c)) => vec![(o, c)],
        _ => Vec::new(),
    }
}

fn ny(ts_ms: i64) -> Option<DateTime<Tz>> {
    DateTime::from_timestamp_millis(ts_ms).map(|t| t.with_timezone(&New_York))
}

/// The NY-local date of `ts_ms`.
pub fn ny_date(ts_ms: i64) -> Option<NaiveDate> {
    ny(ts_ms).map(|t| t.date_naive())
}

fn utc_date(ts_ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(ts_ms)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// UTC ms of NY-local `date h:m` (the earlier instant when DST makes it ambiguous).
fn ny_ms(date: NaiveDate, h: u32, m: u32) -> Option<i64> {
    let local = date.and_time(NaiveTime::from_hms_opt(h, m, 0)?);
    New_York
        .from_local_datetime(&local)
        .earliest()
        .map(|t| t.timestamp_millis())
}

pub fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

fn last_weekday(year: i32, month: u32, weekday: Weekday) -> Option<NaiveDate> {
    (1..=5)
        .rev()
        .find_map(|n| NaiveDate::from_weekday_of_month_opt(year, month, weekday, n))
}

/// Easter Sunday (Gregorian; the anonymous computus).
fn easter(year: i32) -> Option<NaiveDate> {
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
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// A fixed-date holiday moved to Friday when on Saturday and Monday when on Sunday.
fn observed(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date.pred_opt().unwrap_or(date),
        Weekday::Sun => date.succ_opt().unwrap_or(date),
        _ => date,
    }
}

/// Days the NYSE closed outside its holiday rules.
const UNSCHEDULED_CLOSURES: &[(i32, u32, u32)] = &[
    (2001, 9, 11),
    (2001, 9, 12),
    (2001, 9, 13),
    (2001, 9, 14),
    (2004, 6, 11),
    (2007, 1, 2),
    (2012, 10, 29),
    (2012, 10, 30),
    (2018, 12, 5),
    (2025, 1, 9),
];

/// Whether the NYSE is closed all day on `date` (a weekday) for a holiday.
pub fn is_nyse_holiday(date: NaiveDate) -> bool {
    let year = date.year();
    let ymd = |m, d| NaiveDate::from_ymd_opt(year, m, d);
    // New Year's Day: observed on Monday when on Sunday; not observed when on Saturday.
    let new_year = ymd(1, 1)
        .filter(|d| d.weekday() != Weekday::Sat)
        .map(observed);
    let juneteenth = (year >= 2022).then(|| ymd(6, 19).map(observed)).flatten();
    let holidays = [
        new_year,
        nth_weekday(year, 1, Weekday::Mon, 3),
        nth_weekday(year, 2, Weekday::Mon, 3),
        easter(year).and_then(|e| e.checked_sub_days(chrono::Days::new(2))),
        last_weekday(year, 5, Weekday::Mon),
        juneteenth,
        ymd(7, 4).map(observed),
        nth_weekday(year, 9, Weekday::Mon, 1),
        nth_weekday(year, 11, Weekday::Thu, 4),
        ymd(12, 25).map(observed),
    ];
    holidays.contains(&Some(date))
        || UNSCHEDULED_CLOSURES.contains(&(year, date.month(), date.day()))
}

/// Whether the NYSE closes at 13:00 on `date`.
pub fn is_nyse_early_close(date: NaiveDate) -> bool {
    if is_weekend(date) || is_nyse_holiday(date) {
        return false;
    }
    let year = date.year();
    let black_friday = nth_weekday(year, 11, Weekday::Thu, 4).and_then(|t| t.succ_opt());
    let july_3 = NaiveDate::from_ymd_opt(year, 7, 3);
    let dec_24 = NaiveDate::from_ymd_opt(year, 12, 24);
    Some(date) == black_friday || Some(date) == july_3 || Some(date) == dec_24
}

/// Whether CME Globex closes early, at 13:15 New York (12:15 Chicago), on `date`: 24 December
/// and the day after Thanksgiving, when they are trading days.
pub fn is_cme_early_close(date: NaiveDate) -> bool {
    if is_weekend(date) || is_nyse_holiday(date) {
        return false;
    }
    let black_friday = nth_weekday(date.year(), 11, Weekday::Thu, 4).and_then(|t| t.succ_opt());
    Some(date) == black_friday || (date.month(), date.day()) == (12, 24)
}

/// Whether the FX market is closed for the trading day `date`: 25 December and 1 January.
pub fn is_forex_holiday(date: NaiveDate) -> bool {
    matches!((date.month(), date.day()), (12, 25) | (1, 1))
}

/// The NY-local hour of `ts_ms` (for messages and tests).
pub fn ny_hour(ts_ms: i64) -> Option<u32> {
    ny(ts_ms).map(|t| t.hour())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn nyse_holidays_follow_the_rules_and_observances() {
        for holiday in [
            d(2024, 1, 1),
            d(2024, 1, 15), // MLK
            d(2024, 2, 19), // Presidents
            d(2024, 3, 29), // Good Friday
            d(2024, 5, 27), // Memorial
            d(2024, 6, 19), // Juneteenth
            d(2024, 7, 4),
            d(2024, 9, 2),   // Labor
            d(2024, 11, 28), // Thanksgiving
            d(2024, 12, 25),
            d(2023, 1, 2),   // New Year on Sunday → Monday
            d(2021, 12, 24), // Christmas on Saturday → Friday
            d(2020, 7, 3),   // July 4 on Saturday → Friday
            d(2012, 10, 29), // Hurricane Sandy
            d(2025, 1, 9),   // President Carter
        ] {
            assert!(is_nyse_holiday(holiday), "{holiday}");
        }
        for open in [
            d(2024, 1, 2),
            d(2021, 12, 31),
            d(2021, 6, 18),
            d(2024, 10, 14),
        ] {
            assert!(
                !is_nyse_holiday(open),
                "{open}: New Year on Saturday, pre-2022 Juneteenth and Columbus Day are trading days"
            );
        }
        assert!(is_nyse_early_close(d(2024, 11, 29)));
        assert!(is_nyse_early_close(d(2024, 12, 24)));
        assert!(is_nyse_early_close(d(2024, 7, 3)));
        assert!(
            !is_nyse_early_close(d(2020, 7, 3)),
            "a holiday, not an early close"
        );
    }

    #[test]
    fn equity_bars_follow_regular_hours_across_dst() {
        let cal = Calendar::UsEquity;
        let h1 = Timeframe::H1;
        // 2024-01-03 (EST, UTC-5): 14:00 UTC = 09:00 NY overlaps the 09:30 open; 21:00 UTC = 16:00 is closed.
        assert!(cal.expects_bar(h1, 1_704_290_400_000));
        assert!(!cal.expects_bar(h1, 1_704_315_600_000));
        assert!(
            !cal.expects_bar(h1, 1_704_286_800_000),
            "13:00 UTC = 08:00 NY"
        );
        // 2024-07-02 (EDT, UTC-4): 13:00 UTC = 09:00 NY overlaps the open.
        assert!(cal.expects_bar(h1, 1_719_925_200_000));
        // Early close: 2024-11-29 18:00 UTC = 13:00 NY is after the close.
        assert!(!cal.expects_bar(h1, 1_732_903_200_000));
        // Saturday and a holiday.
        assert!(!cal.expects_bar(Timeframe::D1, 1_704_499_200_000)); // 2024-01-06
        assert!(!cal.expects_bar(Timeframe::D1, 1_704_067_200_000)); // 2024-01-01
        assert!(cal.expects_bar(Timeframe::D1, 1_704_153_600_000)); // 2024-01-02
    }

    #[test]
    fn forex_trades_sunday_evening_to_friday_evening() {
        let cal = Calendar::Forex;
        let h1 = Timeframe::H1;
        // 2024-01-07 is a Sunday: 21:00 UTC = 16:00 NY closed, 22:00 UTC = 17:00 NY open.
        assert!(!cal.expects_bar(h1, 1_704_661_200_000));
        assert!(cal.expects_bar(h1, 1_704_664_800_000));
        // Friday 2024-01-05 21:00 UTC = 16:00 NY open, 22:00 UTC = 17:00 closed.
        assert!(cal.expects_bar(h1, 1_704_488_400_000));
        assert!(!cal.expects_bar(h1, 1_704_492_000_000));
        // Saturday noon.
        assert!(!cal.expects_bar(h1, 1_704_542_400_000));
    }

    #[test]
    fn futures_pause_daily_from_17_to_18_new_york() {
        let cal = Calendar::CmeFutures;
        // 2024-01-03 22:00 UTC = 17:00 NY (break); 23:00 UTC = 18:00 NY (open).
        assert!(!cal.expects_bar(Timeframe::H1, 1_704_319_200_000));
        assert!(cal.expects_bar(Timeframe::H1, 1_704_322_800_000));
    }

    /// UTC ms of `y-m-d h:00` UTC.
    fn utc(y: i32, m: u32, day: u32, h: u32) -> i64 {
        d(y, m, day)
            .and_hms_opt(h, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    #[test]
    fn forex_closes_for_christmas_and_new_year() {
        let cal = Calendar::Forex;
        let h1 = Timeframe::H1;
        // Tuesday 2024-12-24: open until 17:00 NY (22:00 UTC); the session that would run to
        // 17:00 on the 25th does not; the one starting 17:00 on the 25th (for the 26th) does.
        assert!(cal.expects_bar(h1, utc(2024, 12, 24, 21)));
        assert!(!cal.expects_bar(h1, utc(2024, 12, 24, 22)));
        assert!(!cal.expects_bar(h1, utc(2024, 12, 25, 12)));
        assert!(!cal.expects_bar(h1, utc(2024, 12, 25, 21)));
        assert!(cal.expects_bar(h1, utc(2024, 12, 25, 22)));
        // Same around 1 January 2025 (a Wednesday).
        assert!(cal.expects_bar(h1, utc(2024, 12, 31, 21)));
        assert!(!cal.expects_bar(h1, utc(2024, 12, 31, 22)));
        assert!(!cal.expects_bar(h1, utc(2025, 1, 1, 12)));
        assert!(cal.expects_bar(h1, utc(2025, 1, 1, 22)));
        // Christmas 2023 was a Monday: no session from Sunday 17:00 to Monday 17:00.
        assert!(!cal.expects_bar(h1, utc(2023, 12, 24, 22)));
        assert!(cal.expects_bar(h1, utc(2023, 12, 25, 22)));
        // Daily bars and the holiday test.
        assert!(!cal.expects_bar(Timeframe::D1, utc(2024, 12, 25, 0)));
        assert!(cal.expects_bar(Timeframe::D1, utc(2024, 12, 26, 0)));
        assert!(cal.is_holiday(d(2024, 12, 25)) && cal.is_holiday(d(2025, 1, 1)));
        assert!(!cal.is_holiday(d(2024, 12, 24)) && !cal.is_holiday(d(2024, 7, 4)));
    }

    #[test]
    fn futures_close_on_us_holidays_and_early_on_christmas_eve_and_black_friday() {
        let cal = Calendar::CmeFutures;
        let h1 = Timeframe::H1;
        // Friday 2024-11-29 (after Thanksgiving): the 13:00 NY bar (18:00 UTC) overlaps the
        // session, which ends at 13:15; the 14:00 NY one does not.
        assert!(cal.expects_bar(h1, utc(2024, 11, 29, 18)));
        assert!(!cal.expects_bar(h1, utc(2024, 11, 29, 19)));
        // Tuesday 2024-12-24: same early close; no evening session before Christmas; the
        // evening session of the 25th (18:00 NY = 23:00 UTC) runs.
        assert!(cal.expects_bar(h1, utc(2024, 12, 24, 18)));
        assert!(!cal.expects_bar(h1, utc(2024, 12, 24, 19)));
        assert!(!cal.expects_bar(h1, utc(2024, 12, 24, 23)));
        assert!(!cal.expects_bar(h1, utc(2024, 12, 25, 15)));
        assert!(cal.expects_bar(h1, utc(2024, 12, 25, 23)));
        // Good Friday and Martin Luther King Day are closed; trading resumes that evening.
        assert!(!cal.expects_bar(h1, utc(2024, 3, 29, 15)));
        assert!(!cal.expects_bar(h1, utc(2024, 1, 15, 15)));
        assert!(cal.expects_bar(h1, utc(2024, 1, 15, 23)));
        // An ordinary Tuesday closes at 17:00.
        assert!(cal.expects_bar(h1, utc(2024, 12, 17, 21)));
        assert!(is_cme_early_close(d(2024, 12, 24)));
        assert!(!is_cme_early_close(d(2022, 12, 24)), "a Saturday");
        assert!(cal.is_holiday(d(2024, 1, 15)) && !cal.is_holiday(d(2024, 12, 24)));
    }

    #[test]
    fn calendars_by_symbol() {
        assert_eq!(Calendar::for_symbol("AAPL"), Calendar::UsEquity);
        assert_eq!(Calendar::for_symbol("EURUSD"), Calendar::Forex);
        assert_eq!(Calendar::for_symbol("ES"), Calendar::CmeFutures);
    }
}
