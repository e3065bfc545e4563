//! Coverage of a dataset: covered intervals and the gaps between stored bars, each gap
//! classified against the symbol's trading calendar like the original's gap classifier:
//! a gap in which the calendar expects no bar is a WEEKEND, HOLIDAY or MARKET_CLOSURE (overnight,
//! early close, maintenance break); one in which it expects bars is UNEXPECTED. Covered intervals
//! break only at unexpected gaps.

use chrono::Datelike;
use ktrdr_market::Timeframe;
use ktrdr_proto::common::v1::TimeRange;
use ktrdr_proto::data::v1::{Gap, GapCount, GapKind};

use crate::calendar::{self, Calendar};

/// Slot counting stops here; a longer gap reports this many expected bars at most.
const MAX_SLOTS_COUNTED: i64 = 2_000_000;

/// The analysis of a sorted, unique list of bar timestamps.
#[derive(Debug, Default)]
pub struct Coverage {
    pub covered: Vec<TimeRange>,
    pub gaps: Vec<Gap>,
    pub counts: Vec<GapCount>,
}

/// Classifies the missing bars `[start_ms, end_ms)` (both bar-aligned).
pub fn classify_gap(calendar: Calendar, timeframe: Timeframe, start_ms: i64, end_ms: i64) -> Gap {
    let step = timeframe.duration_ms();
    let missing = (end_ms - start_ms) / step;
    let mut expected = 0i64;
    let mut slot = start_ms;
    let mut counted = 0;
    while slot < end_ms && counted < MAX_SLOTS_COUNTED {
        if calendar.expects_bar(timeframe, slot) {
            expected += 1;
        }
        slot += step;
        counted += 1;
    }
    let kind = if expected > 0 {
        GapKind::Unexpected
    } else {
        closed_kind(calendar, start_ms, end_ms)
    };
    Gap {
        range: Some(TimeRange { start_ms, end_ms }),
        kind: kind as i32,
        missing_bars: missing,
        expected_missing_bars: expected,
    }
}

/// Why a gap with no expected bar is expected: a holiday inside it wins over a weekend; neither
/// means the market was simply closed (overnight, early close, daily break).
fn closed_kind(calendar: Calendar, start_ms: i64, end_ms: i64) -> GapKind {
    let (Some(first), Some(last)) = (calendar::ny_date(start_ms), calendar::ny_date(end_ms - 1))
    else {
        return GapKind::MarketClosure;
    };
    let mut saw_weekend = false;
    let mut date = first;
    let mut days = 0;
    while date <= last && days < 400 {
        if calendar::is_weekend(date) {
            saw_weekend = true;
        } else if calendar.is_holiday(date) {
            return GapKind::Holiday;
        }
        match date.succ_opt() {
            Some(next) => date = next,
            None => break,
        }
        days += 1;
    }
    // Forex "weekends" are Friday 17:00 to Sunday 17:00: a gap over a Saturday is a weekend.
    if saw_weekend
        || (calendar == Calendar::Forex && first.weekday() == chrono::Weekday::Fri && last > first)
    {
        GapKind::Weekend
    } else {
        GapKind::MarketClosure
    }
}

/// Adds `gap` to the count of its kind.
fn count_gap(counts: &mut Vec<GapCount>, gap: &Gap) {
    match counts.iter_mut().find(|c| c.kind == gap.kind) {
        Some(count) => {
            count.count += 1;
            count.missing_bars += gap.missing_bars;
        }
        None => counts.push(GapCount {
            kind: gap.kind,
            count: 1,
            missing_bars: gap.missing_bars,
        }),
    }
}

/// Analyses `timestamps` (sorted, unique, aligned).
pub fn analyse(calendar: Calendar, timeframe: Timeframe, timestamps: &[i64]) -> Coverage {
    let mut coverage = Coverage::default();
    let Some(&first) = timestamps.first() else {
        return coverage;
    };
    let step = timeframe.duration_ms();
    let mut interval_start = first;
    for pair in timestamps.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        if next - prev <= step {
            continue;
        }
        let gap = classify_gap(calendar, timeframe, prev + step, next);
        if gap.kind() == GapKind::Unexpected {
            coverage.covered.push(TimeRange {
                start_ms: interval_start,
                end_ms: prev + step,
            });
            interval_start = next;
        }
        count_gap(&mut coverage.counts, &gap);
        coverage.gaps.push(gap);
    }
    if let Some(&last) = timestamps.last() {
        coverage.covered.push(TimeRange {
            start_ms: interval_start,
            end_ms: last + step,
        });
    }
    coverage.counts.sort_by_key(|c| c.kind);
    coverage
}

/// Adds to `coverage` the stretches between the sides of a requested range and the stored bars
/// (`timestamps`, those inside the range): before the first bar from `start_ms`, after the last
/// up to `end_ms` (the whole range when nothing is stored). Open sides (`i64::MIN` / `i64::MAX`)
/// add nothing. Each is classified like any gap, so a range ending after the data reports the
/// missing tail as UNEXPECTED when the market was open.
pub fn add_edge_gaps(
    coverage: &mut Coverage,
    calendar: Calendar,
    timeframe: Timeframe,
    timestamps: &[i64],
    start_ms: i64,
    end_ms: i64,
) {
    let step = timeframe.duration_ms();
    // The first bar slot at or after the start.
    let first_slot = |start: i64| {
        let slot = timeframe.bar_start(start);
        if slot < start { slot + step } else { slot }
    };
    let mut edges = Vec::new();
    match (timestamps.first(), timestamps.last()) {
        (Some(&first), Some(&last)) => {
            if start_ms != i64::MIN && first_slot(start_ms) < first {
                edges.push((
                    true,
                    classify_gap(calendar, timeframe, first_slot(start_ms), first),
                ));
            }
            if end_ms != i64::MAX && last + step < end_ms {
                edges.push((
                    false,
                    classify_gap(calendar, timeframe, last + step, end_ms),
                ));
            }
        }
        _ => {
            if start_ms != i64::MIN && end_ms != i64::MAX && first_slot(start_ms) < end_ms {
                edges.push((
                    false,
                    classify_gap(calendar, timeframe, first_slot(start_ms), end_ms),
                ));
            }
        }
    }
    for (leading, gap) in edges {
        count_gap(&mut coverage.counts, &gap);
        if leading {
            coverage.gaps.insert(0, gap);
        } else {
            coverage.gaps.push(gap);
        }
    }
    coverage.counts.sort_by_key(|c| c.kind);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktrdr_market::DAY_MS;

    const H: i64 = 3_600_000;
    /// Tuesday 2024-01-02 00:00 UTC
    const TUE: i64 = 1_704_153_600_000;

    #[test]
    fn a_range_beyond_the_stored_bars_reports_the_missing_edges() {
        let stored = expected_hours(Calendar::Forex, TUE, TUE + 2 * DAY_MS);
        let (start, end) = (TUE - DAY_MS, TUE + 4 * DAY_MS);
        let mut coverage = analyse(Calendar::Forex, Timeframe::H1, &stored);
        assert!(coverage.gaps.is_empty());
        add_edge_gaps(
            &mut coverage,
            Calendar::Forex,
            Timeframe::H1,
            &stored,
            start,
            end,
        );
        let ranges: Vec<(i64, i64)> = coverage
            .gaps
            .iter()
            .map(|g| (g.range.unwrap().start_ms, g.range.unwrap().end_ms))
            .collect();
        assert_eq!(ranges, [(start, TUE), (TUE + 2 * DAY_MS, end)]);
        assert!(
            coverage
                .gaps
                .iter()
                .all(|g| g.kind() == GapKind::Unexpected)
        );
        assert_eq!(
            coverage.gaps[1].expected_missing_bars as usize,
            expected_hours(Calendar::Forex, TUE + 2 * DAY_MS, end).len()
        );
        // Open sides add nothing; an empty range is one gap.
        let mut open = analyse(Calendar::Forex, Timeframe::H1, &stored);
        add_edge_gaps(
            &mut open,
            Calendar::Forex,
            Timeframe::H1,
            &stored,
            i64::MIN,
            i64::MAX,
        );
        assert!(open.gaps.is_empty());
        let mut empty = Coverage::default();
        add_edge_gaps(&mut empty, Calendar::Forex, Timeframe::H1, &[], start, end);
        assert_eq!(empty.gaps.len(), 1);
        assert_eq!(empty.counts[0].count, 1);
    }

    /// Hourly bars at every hour the calendar expects in `[start, end)`.
    fn expected_hours(calendar: Calendar, start: i64, end: i64) -> Vec<i64> {
        (start / H..end / H)
            .map(|h| h * H)
            .filter(|&t| calendar.expects_bar(Timeframe::H1, t))
            .collect()
    }

    fn kinds(c: &Coverage) -> Vec<GapKind> {
        c.gaps.iter().map(|g| g.kind()).collect()
    }

    #[test]
    fn a_complete_stock_week_has_only_expected_gaps_and_one_interval() {
        // Tuesday to the next Tuesday 00:00 UTC: trading Tue–Fri and Mon; three overnights, one weekend.
        let ts = expected_hours(Calendar::UsEquity, TUE, TUE + 7 * DAY_MS);
        let c = analyse(Calendar::UsEquity, Timeframe::H1, &ts);
        assert_eq!(c.covered.len(), 1);
        assert_eq!(
            kinds(&c),
            [
                GapKind::MarketClosure,
                GapKind::MarketClosure,
                GapKind::MarketClosure,
                GapKind::Weekend
            ]
        );
    }

    #[test]
    fn missing_trading_hours_are_unexpected_and_split_coverage() {
        let mut ts = expected_hours(Calendar::UsEquity, TUE, TUE + 2 * DAY_MS);
        let removed = ts.remove(3);
        let c = analyse(Calendar::UsEquity, Timeframe::H1, &ts);
        let unexpected: Vec<&Gap> = c
            .gaps
            .iter()
            .filter(|g| g.kind() == GapKind::Unexpected)
            .collect();
        assert_eq!(unexpected.len(), 1);
        assert_eq!(unexpected[0].range.unwrap().start_ms, removed);
        assert_eq!(
            (
                unexpected[0].missing_bars,
                unexpected[0].expected_missing_bars
            ),
            (1, 1)
        );
        assert_eq!(c.covered.len(), 2);
    }

    #[test]
    fn holidays_are_recognised() {
        // Around Good Friday 2024-03-29: Thursday to Monday.
        let thu = 1_711_584_000_000; // 2024-03-28 00:00 UTC
        let ts = expected_hours(Calendar::UsEquity, thu, thu + 5 * DAY_MS);
        let c = analyse(Calendar::UsEquity, Timeframe::H1, &ts);
        assert!(kinds(&c).contains(&GapKind::Holiday), "{:?}", kinds(&c));
        assert!(!kinds(&c).contains(&GapKind::Unexpected));
        // Daily bars over Thanksgiving 2024.
        let days: Vec<i64> = [25, 26, 27, 29]
            .iter()
            .map(|d| 1_732_492_800_000 + (d - 25) * DAY_MS)
            .collect();
        let c = analyse(Calendar::UsEquity, Timeframe::D1, &days);
        assert_eq!(kinds(&c), [GapKind::Holiday]);
    }

    #[test]
    fn forex_weekends_and_gaps() {
        let ts = expected_hours(Calendar::Forex, TUE, TUE + 7 * DAY_MS);
        let c = analyse(Calendar::Forex, Timeframe::H1, &ts);
        assert_eq!(kinds(&c), [GapKind::Weekend]);
        let mut broken = ts.clone();
        broken.drain(10..15);
        let c = analyse(Calendar::Forex, Timeframe::H1, &broken);
        assert_eq!(kinds(&c), [GapKind::Unexpected, GapKind::Weekend]);
        assert_eq!(c.gaps[0].missing_bars, 5);
        let unexpected = c
            .counts
            .iter()
            .find(|g| g.kind() == GapKind::Unexpected)
            .unwrap();
        assert_eq!((unexpected.count, unexpected.missing_bars), (1, 5));
    }

    #[test]
    fn forex_christmas_and_new_year_closures_are_holidays() {
        let utc = |m: u32, d: u32, h: u32| {
            let year = if m == 1 { 2025 } else { 2024 };
            chrono::NaiveDate::from_ymd_opt(year, m, d)
                .and_then(|d| d.and_hms_opt(h, 0, 0))
                .unwrap()
                .and_utc()
                .timestamp_millis()
        };
        // EURUSD's real closures over the 2024 year end (17:00 New York = 22:00 UTC): three
        // weekends, and the FX trading days 25 December and 1 January.
        let closed = [
            (utc(12, 20, 22), utc(12, 22, 22)),
            (utc(12, 24, 22), utc(12, 25, 22)),
            (utc(12, 27, 22), utc(12, 29, 22)),
            (utc(12, 31, 22), utc(1, 1, 22)),
            (utc(1, 3, 22), utc(1, 5, 22)),
        ];
        let ts: Vec<i64> = (utc(12, 20, 0) / H..utc(1, 7, 0) / H)
            .map(|h| h * H)
            .filter(|t| !closed.iter().any(|(a, b)| (*a..*b).contains(t)))
            .collect();
        let c = analyse(Calendar::Forex, Timeframe::H1, &ts);
        use GapKind::{Holiday, Weekend};
        assert_eq!(kinds(&c), [Weekend, Holiday, Weekend, Holiday, Weekend]);
        assert_eq!(c.gaps[1].missing_bars, 24);
        assert_eq!(c.gaps[3].expected_missing_bars, 0);
        assert_eq!(c.covered.len(), 1);
    }
}
