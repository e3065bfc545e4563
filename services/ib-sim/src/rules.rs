//! IB's request rules: bar sizes, durations and which pairs are legal; historical-data pacing.
//!
//! ib-host plans its requests by the same published tables; the simulator keeps its own copy
//! on purpose, as the independent side that checks ib-host's planning and pacing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::calendar::{self, DAY};
use crate::market::BarSize;

/// A parsed durationStr, e.g. "3 D".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IbDuration {
    pub count: i64,
    pub unit: char,
}

impl IbDuration {
    pub fn parse(text: &str) -> Option<Self> {
        let (count, unit) = text.trim().split_once(' ')?;
        let count: i64 = count.parse().ok().filter(|n| *n > 0)?;
        let unit = match unit.trim() {
            "S" => 'S',
            "D" => 'D',
            "W" => 'W',
            "M" => 'M',
            "Y" => 'Y',
            _ => return None,
        };
        Some(Self { count, unit })
    }

    /// The window start for a request ending at `end` (calendar arithmetic).
    pub fn start_before(self, end: i64) -> i64 {
        match self.unit {
            'S' => end - self.count,
            'D' => end - self.count * DAY,
            'W' => end - self.count * 7 * DAY,
            'M' => calendar::minus_months(end, self.count),
            _ => calendar::minus_months(end, 12 * self.count),
        }
    }

    /// Nominal length used by IB's step-size table.
    fn nominal_secs(self) -> i64 {
        match self.unit {
            'S' => self.count,
            'D' => self.count * DAY,
            'W' => self.count * 7 * DAY,
            'M' => self.count * 30 * DAY,
            _ => self.count * 365 * DAY,
        }
    }
}

/// Parses barSizeSetting as IB spells it ("1 min", "5 mins", "1 hour", "1 day", …).
pub fn parse_bar_size(text: &str) -> Option<BarSize> {
    Some(match text.trim() {
        "1 secs" | "1 sec" => BarSize::Seconds(1),
        "5 secs" => BarSize::Seconds(5),
        "10 secs" => BarSize::Seconds(10),
        "15 secs" => BarSize::Seconds(15),
        "30 secs" => BarSize::Seconds(30),
        "1 min" => BarSize::Seconds(60),
        "2 mins" => BarSize::Seconds(120),
        "3 mins" => BarSize::Seconds(180),
        "4 mins" => BarSize::Seconds(240),
        "5 mins" => BarSize::Seconds(300),
        "10 mins" => BarSize::Seconds(600),
        "15 mins" => BarSize::Seconds(900),
        "20 mins" => BarSize::Seconds(1200),
        "30 mins" => BarSize::Seconds(1800),
        "1 hour" => BarSize::Seconds(3600),
        "2 hours" => BarSize::Seconds(7200),
        "3 hours" => BarSize::Seconds(10_800),
        "4 hours" => BarSize::Seconds(14_400),
        "8 hours" => BarSize::Seconds(28_800),
        "1 day" => BarSize::Day,
        "1 week" | "1W" => BarSize::Week,
        "1 month" | "1M" => BarSize::Month,
        _ => return None,
    })
}

/// Why a (duration, bar size) pair is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Illegal {
    /// The duration is too long for bars this small (IB: 162 "Time length exceed max").
    DurationTooLong,
    /// The bar is longer than the duration (IB: 321 bar size invalid for the duration).
    BarTooLarge,
    /// "N S" beyond a day.
    TooManySeconds,
}

/// IB's step-size table: for a duration, the smallest and largest bar size allowed.
pub fn check_pair(duration: IbDuration, bar: BarSize) -> Result<(), Illegal> {
    if duration.unit == 'S' && duration.count > DAY {
        return Err(Illegal::TooManySeconds);
    }
    let span = duration.nominal_secs();
    // (largest span, smallest bar, largest bar), from IB's "Historical Data Limitations".
    const TABLE: &[(i64, i64, i64)] = &[
        (60, 1, 60),
        (120, 1, 120),
        (1_800, 1, 1_800),
        (3_600, 5, 3_600),
        (14_400, 10, 10_800),
        (28_800, 30, 28_800),
        (DAY, 60, DAY),
        (2 * DAY, 120, DAY),
        (7 * DAY, 180, 7 * DAY),
        (31 * DAY, 1_800, 30 * DAY),
    ];
    let (min_bar, max_bar) = TABLE
        .iter()
        .find(|(max_span, _, _)| span <= *max_span)
        .map(|(_, lo, hi)| (*lo, *hi))
        .unwrap_or((DAY, 30 * DAY));
    let bar = bar.nominal_secs();
    if bar < min_bar {
        Err(Illegal::DurationTooLong)
    } else if bar > max_bar {
        Err(Illegal::BarTooLarge)
    } else {
        Ok(())
    }
}

/// The pacing rules, with IB's windows scaled by a factor (1.0 = IB's real numbers).
#[derive(Debug, Clone, Copy)]
pub struct PacingWindows {
    pub identical: Duration,
    pub same_contract: Duration,
    pub ten_minutes: Duration,
}

impl PacingWindows {
    pub fn scaled(scale: f64) -> Self {
        let s = |secs: f64| Duration::from_secs_f64(secs * scale);
        Self {
            identical: s(15.0),
            same_contract: s(2.0),
            ten_minutes: s(600.0),
        }
    }
}

/// Which pacing rules are switched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacingSwitches {
    pub identical_15s: bool,
    pub same_contract_2s: bool,
    pub per_10min_60: bool,
    pub max_open_50: bool,
}

/// A pacing rule broken by a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    Identical,
    SameContract,
    TooMany,
    TooManyOpen,
}

struct Sent {
    at: Instant,
    identity: String,
    contract_key: String,
    cost: u32,
}

/// Historical requests accepted recently, to judge the next one as IB would.
pub struct Pacer {
    windows: PacingWindows,
    sent: VecDeque<Sent>,
    pub open: u32,
}

impl Pacer {
    pub fn new(windows: PacingWindows) -> Self {
        Self {
            windows,
            sent: VecDeque::new(),
            open: 0,
        }
    }

    /// Judges a request; if it passes, records it (rejected requests are not counted).
    /// `identity` is the whole request; `contract_key` is contract + exchange + tick type.
    pub fn admit(
        &mut self,
        now: Instant,
        switches: PacingSwitches,
        identity: &str,
        contract_key: &str,
        cost: u32,
    ) -> Result<(), Violation> {
        let longest = self
            .windows
            .ten_minutes
            .max(self.windows.identical)
            .max(self.windows.same_contract);
        while self
            .sent
            .front()
            .is_some_and(|s| now.duration_since(s.at) > longest)
        {
            self.sent.pop_front();
        }
        let within = |s: &Sent, w: Duration| now.duration_since(s.at) < w;
        if switches.max_open_50 && self.open >= 50 {
            return Err(Violation::TooManyOpen);
        }
        if switches.identical_15s
            && self
                .sent
                .iter()
                .any(|s| s.identity == identity && within(s, self.windows.identical))
        {
            return Err(Violation::Identical);
        }
        if switches.same_contract_2s
            && self
                .sent
                .iter()
                .filter(|s| s.contract_key == contract_key && within(s, self.windows.same_contract))
                .count()
                >= 5
        {
            return Err(Violation::SameContract);
        }
        if switches.per_10min_60 {
            let used: u32 = self
                .sent
                .iter()
                .filter(|s| within(s, self.windows.ten_minutes))
                .map(|s| s.cost)
                .sum();
            if used + cost > 60 {
                return Err(Violation::TooMany);
            }
        }
        self.sent.push_back(Sent {
            at: now,
            identity: identity.to_owned(),
            contract_key: contract_key.to_owned(),
            cost,
        });
        Ok(())
    }

    pub fn clear(&mut self) {
        self.sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(d: &str, b: &str) -> Result<(), Illegal> {
        check_pair(IbDuration::parse(d).unwrap(), parse_bar_size(b).unwrap())
    }

    #[test]
    fn step_sizes_follow_ibs_table() {
        assert_eq!(pair("1 D", "1 min"), Ok(()));
        assert_eq!(pair("2 D", "1 min"), Err(Illegal::DurationTooLong));
        assert_eq!(pair("4 W", "1 min"), Err(Illegal::DurationTooLong));
        assert_eq!(pair("1 W", "5 mins"), Ok(()));
        assert_eq!(pair("1 M", "1 hour"), Ok(()));
        assert_eq!(pair("2 M", "1 hour"), Err(Illegal::DurationTooLong));
        assert_eq!(pair("1 Y", "1 day"), Ok(()));
        assert_eq!(pair("5 Y", "1 day"), Ok(()));
        assert_eq!(pair("60 S", "1 day"), Err(Illegal::BarTooLarge));
        assert_eq!(pair("86400 S", "1 min"), Ok(()));
        assert_eq!(pair("90000 S", "1 min"), Err(Illegal::TooManySeconds));
        assert!(parse_bar_size("7 mins").is_none());
        assert!(IbDuration::parse("0 D").is_none());
        assert!(IbDuration::parse("3 H").is_none());
    }

    #[test]
    fn pacing_rules() {
        let all = PacingSwitches {
            identical_15s: true,
            same_contract_2s: true,
            per_10min_60: true,
            max_open_50: true,
        };
        let t0 = Instant::now();
        let mut p = Pacer::new(PacingWindows::scaled(1.0));
        assert_eq!(p.admit(t0, all, "a", "k", 1), Ok(()));
        assert_eq!(p.admit(t0, all, "a", "k", 1), Err(Violation::Identical));
        for i in 0..4 {
            assert_eq!(p.admit(t0, all, &format!("b{i}"), "k", 1), Ok(()));
        }
        assert_eq!(p.admit(t0, all, "c", "k", 1), Err(Violation::SameContract));
        assert_eq!(
            p.admit(t0 + Duration::from_secs(3), all, "c", "k", 1),
            Ok(())
        );
        let mut p = Pacer::new(PacingWindows::scaled(1.0));
        for i in 0..30 {
            let at = t0 + Duration::from_secs(3 * i);
            assert_eq!(
                p.admit(at, all, &format!("x{i}"), &format!("k{i}"), 2),
                Ok(())
            );
        }
        assert_eq!(
            p.admit(t0 + Duration::from_secs(95), all, "y", "ky", 1),
            Err(Violation::TooMany)
        );
        assert_eq!(
            p.admit(t0 + Duration::from_secs(601), all, "y", "ky", 1),
            Ok(())
        );
    }
}
