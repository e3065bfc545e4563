//! Bar validation and repair, with one issue per problem found, like the original validator.
//!
//! Rules (severity ERROR unless noted): finite prices (`MISSING_VALUE`), prices > 0, high ≥
//! max(open, close), low ≤ min(open, close), volume ≥ 0 (IB's −1 "no volume" marker is INFO),
//! timestamps sorted, unique and aligned to the timeframe, not more than a day in the future.
//! WARNING: a close-to-close move above 50 %. INFO: zero volume. Only ERRORs reject a write in
//! REJECT mode; REPAIR fixes what it can (see each rule) and drops the rest.

use ktrdr_common::error::{FieldViolation, ServiceError};
use ktrdr_common::market::iso_ms as iso;
use ktrdr_market::Timeframe;
use ktrdr_proto::data::v1::{IssueCount, IssueKind, IssueSeverity, ValidationIssue};

use ktrdr_market::Bars;

/// At most this many issues are returned in a response; the total is always reported.
pub const MAX_ISSUES_RETURNED: usize = 1_000;
/// At most this many field violations go into an `INVALID_ARGUMENT` (they travel in a trailer).
const MAX_VIOLATIONS: usize = 20;
const EXTREME_MOVE: f64 = 0.5;

/// What validation found, and the repaired bars when repairing.
#[derive(Debug, Default)]
pub struct Report {
    pub issues: Vec<ValidationIssue>,
    pub bars_repaired: i64,
    pub bars_dropped: i64,
}

impl Report {
    pub fn errors(&self) -> impl Iterator<Item = &ValidationIssue> {
        self.issues
            .iter()
            .filter(|i| i.severity() == IssueSeverity::Error)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    pub fn counts(&self) -> Vec<IssueCount> {
        let mut counts: Vec<IssueCount> = Vec::new();
        for issue in &self.issues {
            match counts.iter_mut().find(|c| c.kind == issue.kind) {
                Some(c) => c.count += 1,
                None => counts.push(IssueCount {
                    kind: issue.kind,
                    count: 1,
                }),
            }
        }
        counts
    }

    /// The issues a response carries (capped).
    pub fn returned_issues(&self, cap: usize) -> Vec<ValidationIssue> {
        self.issues.iter().take(cap).cloned().collect()
    }

    /// `INVALID_ARGUMENT` naming the offending rows (`bars[i]`) and rules (REJECT mode).
    pub fn rejection(&self, what: &str) -> ServiceError {
        self.rejection_of(what, "bars")
    }

    /// [`Report::rejection`] with rows named `{rows}[i]`, e.g. `lines[17]` for a CSV file.
    pub fn rejection_of(&self, what: &str, rows: &str) -> ServiceError {
        let errors: Vec<&ValidationIssue> = self.errors().collect();
        let mut violations: Vec<FieldViolation> = errors
            .iter()
            .take(MAX_VIOLATIONS)
            .map(|issue| {
                let field = match (issue.row, issue.field.as_str()) {
                    (Some(row), "") => format!("{rows}[{row}]"),
                    (Some(row), field) => format!("{rows}[{row}].{field}"),
                    (None, field) => field.to_owned(),
                };
                FieldViolation::new(field, issue.message.clone())
            })
            .collect();
        if errors.len() > MAX_VIOLATIONS {
            violations.push(FieldViolation::new(
                rows,
                format!(
                    "{} more invalid rows not listed; ValidateBars reports them all",
                    errors.len() - MAX_VIOLATIONS
                ),
            ));
        }
        let first = errors
            .first()
            .map(|i| i.message.clone())
            .unwrap_or_default();
        ServiceError::InvalidArgument {
            message: format!(
                "{what} rejected: {} invalid bar(s); first: {first}. Fix the rows or write with validation_mode=VALIDATION_MODE_REPAIR",
                errors.len()
            ),
            violations,
        }
    }
}

struct Issue {
    kind: IssueKind,
    severity: IssueSeverity,
    field: &'static str,
    message: String,
    value: Option<f64>,
}

fn issue(
    kind: IssueKind,
    severity: IssueSeverity,
    field: &'static str,
    value: Option<f64>,
    message: String,
) -> Issue {
    Issue {
        kind,
        severity,
        field,
        message,
        value,
    }
}

/// A timestamp that formats as ISO 8601: only the messages of issues found pay for the text.
#[derive(Clone, Copy)]
struct IsoAt(i64);

impl std::fmt::Display for IsoAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&iso(self.0))
    }
}

/// Checks (and with `repair`, fixes) `bars` for `timeframe`; `now_ms` bounds future timestamps.
/// Returns the bars to store — sorted, unique and valid when repairing — and the report.
pub fn validate(mut bars: Bars, timeframe: Timeframe, repair: bool, now_ms: i64) -> (Bars, Report) {
    let mut report = Report::default();
    let push =
        |report: &mut Report, row: usize, ts: i64, found: Issue, repair_note: Option<&str>| {
            report.issues.push(ValidationIssue {
                kind: found.kind as i32,
                severity: found.severity as i32,
                timestamp_ms: Some(ts),
                row: Some(row as i64),
                field: found.field.to_owned(),
                message: found.message,
                repaired: repair_note.is_some(),
                repair: repair_note.unwrap_or_default().to_owned(),
                value: found.value,
            });
        };

    // Per-row rules. `keep[i]` is false for rows a repair drops.
    let mut keep = vec![true; bars.len()];
    let mut repaired_rows = vec![false; bars.len()];
    for i in 0..bars.len() {
        let ts = bars.timestamp_ms[i];
        let at = IsoAt(ts);
        let (o, h, l, c, v) = (
            bars.open[i],
            bars.high[i],
            bars.low[i],
            bars.close[i],
            bars.volume[i],
        );
        let prices = [("open", o), ("high", h), ("low", l), ("close", c)];

        // Rules a repair cannot fix: the bar is reported, and dropped when repairing.
        let unfixable = if let Some((field, value)) = prices
            .iter()
            .chain([("volume", v)].iter())
            .find(|(_, x)| !x.is_finite())
        {
            Some(issue(
                IssueKind::MissingValue,
                IssueSeverity::Error,
                field,
                None,
                format!("{field} is {value} at {at} (rule: values must be finite numbers)"),
            ))
        } else if let Some((field, value)) = prices.iter().find(|(_, x)| *x <= 0.0) {
            Some(issue(
                IssueKind::NonPositivePrice,
                IssueSeverity::Error,
                field,
                Some(*value),
                format!("{field} {value} at {at} is not positive (rule: prices > 0)"),
            ))
        } else if !timeframe.is_aligned(ts) {
            Some(issue(
                IssueKind::MisalignedTimestamp,
                IssueSeverity::Error,
                "timestamp_ms",
                None,
                format!(
                    "timestamp {at} is not the start of a {timeframe} bar (rule: timestamps aligned to the timeframe)"
                ),
            ))
        } else if ts > now_ms + ktrdr_market::DAY_MS {
            Some(issue(
                IssueKind::FutureTimestamp,
                IssueSeverity::Error,
                "timestamp_ms",
                None,
                format!("timestamp {at} is in the future (rule: no bars after now)"),
            ))
        } else {
            None
        };
        if let Some(found) = unfixable {
            push(
                &mut report,
                i,
                ts,
                found,
                repair.then_some("dropped the bar"),
            );
            keep[i] = false;
            continue;
        }
        let top = o.max(c);
        if h < top {
            let found = issue(
                IssueKind::HighBelowOpenOrClose,
                IssueSeverity::Error,
                "high",
                Some(h),
                format!(
                    "high {h} at {at} is below max(open, close) = {top} (rule: high ≥ max(open, close))"
                ),
            );
            push(
                &mut report,
                i,
                ts,
                found,
                repair.then_some("raised high to max(open, close)"),
            );
            if repair {
                bars.high[i] = top;
                repaired_rows[i] = true;
            }
        }
        let bottom = o.min(c);
        if l > bottom {
            let found = issue(
                IssueKind::LowAboveOpenOrClose,
                IssueSeverity::Error,
                "low",
                Some(l),
                format!(
                    "low {l} at {at} is above min(open, close) = {bottom} (rule: low ≤ min(open, close))"
                ),
            );
            push(
                &mut report,
                i,
                ts,
                found,
                repair.then_some("lowered low to min(open, close)"),
            );
            if repair {
                bars.low[i] = bottom;
                repaired_rows[i] = true;
            }
        }
        if v == -1.0 {
            let found = issue(
                IssueKind::NoVolumeMarker,
                IssueSeverity::Info,
                "volume",
                Some(v),
                format!("volume -1 at {at}: IB's marker for no volume data, kept"),
            );
            push(&mut report, i, ts, found, None);
        } else if v < 0.0 {
            let found = issue(
                IssueKind::NegativeVolume,
                IssueSeverity::Error,
                "volume",
                Some(v),
                format!("volume {v} at {at} is negative (rule: volume ≥ 0)"),
            );
            push(
                &mut report,
                i,
                ts,
                found,
                repair.then_some("set volume to 0"),
            );
            if repair {
                bars.volume[i] = 0.0;
                repaired_rows[i] = true;
            }
        } else if v == 0.0 {
            let found = issue(
                IssueKind::ZeroVolume,
                IssueSeverity::Info,
                "volume",
                Some(v),
                format!("volume 0 at {at}"),
            );
            push(&mut report, i, ts, found, None);
        }
    }

    // Order rules over the rows that are kept.
    let mut previous: Option<(usize, i64)> = None;
    let mut unsorted = false;
    let mut duplicates = false;
    for i in (0..bars.len()).filter(|&i| keep[i]) {
        let ts = bars.timestamp_ms[i];
        if let Some((_, prev)) = previous {
            if ts < prev {
                unsorted = true;
                let found = issue(
                    IssueKind::Unsorted,
                    IssueSeverity::Error,
                    "timestamp_ms",
                    None,
                    format!(
                        "timestamp {} comes after {} (rule: timestamps ascending)",
                        iso(ts),
                        iso(prev)
                    ),
                );
                push(
                    &mut report,
                    i,
                    ts,
                    found,
                    repair.then_some("sorted by timestamp"),
                );
            } else if ts == prev {
                duplicates = true;
                let found = issue(
                    IssueKind::DuplicateTimestamp,
                    IssueSeverity::Error,
                    "timestamp_ms",
                    None,
                    format!(
                        "timestamp {} appears twice (rule: timestamps unique)",
                        iso(ts)
                    ),
                );
                push(
                    &mut report,
                    i,
                    ts,
                    found,
                    repair.then_some("kept the last bar with this timestamp"),
                );
            }
        }
        if previous.is_none_or(|(_, prev)| ts > prev) {
            previous = Some((i, ts));
        }
    }

    // Extreme moves (warnings) over consecutive kept bars in order.
    let mut last_close: Option<f64> = None;
    for i in (0..bars.len()).filter(|&i| keep[i]) {
        let close = bars.close[i];
        if let Some(prev) = last_close
            && prev > 0.0
            && ((close / prev) - 1.0).abs() > EXTREME_MOVE
        {
            let ts = bars.timestamp_ms[i];
            let found = issue(
                IssueKind::ExtremePriceMove,
                IssueSeverity::Warning,
                "close",
                Some(close),
                format!(
                    "close moved from {prev} to {close} at {} (more than 50 %)",
                    iso(ts)
                ),
            );
            push(&mut report, i, ts, found, None);
        }
        last_close = Some(close);
    }

    if !repair {
        return (bars, report);
    }
    report.bars_repaired = repaired_rows
        .iter()
        .zip(&keep)
        .filter(|(r, k)| **r && **k)
        .count() as i64;
    let kept: Vec<usize> = (0..bars.len()).filter(|&i| keep[i]).collect();
    let mut order = kept.clone();
    if unsorted || duplicates {
        // Stable sort, then keep the last bar of each timestamp: the newest value wins.
        order.sort_by_key(|&i| bars.timestamp_ms[i]);
        let mut deduped: Vec<usize> = Vec::with_capacity(order.len());
        for i in order {
            match deduped.last_mut() {
                Some(last) if bars.timestamp_ms[*last] == bars.timestamp_ms[i] => *last = i,
                _ => deduped.push(i),
            }
        }
        order = deduped;
    }
    report.bars_dropped = (bars.len() - order.len()) as i64;
    let mut clean = Bars::with_capacity(order.len());
    for i in order {
        clean.push_from(&bars, i);
    }
    (clean, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktrdr_market::fixtures::hourly;

    const NOW: i64 = 1_800_000_000_000;

    fn kinds(report: &Report) -> Vec<IssueKind> {
        report.issues.iter().map(|i| i.kind()).collect()
    }

    #[test]
    fn clean_bars_pass_untouched() {
        let bars = hourly(100, 1_704_067_200_000);
        let (out, report) = validate(bars.clone(), Timeframe::H1, false, NOW);
        assert!(report.issues.is_empty(), "{:?}", report.issues);
        assert_eq!(out, bars);
    }

    #[test]
    fn each_rule_is_reported_with_row_field_and_rule() {
        let mut bars = hourly(8, 1_704_067_200_000);
        bars.high[1] = bars.open[1] - 0.5; // high below open/close
        bars.low[2] = bars.close[2] + 3.0; // low above
        bars.open[3] = 0.0; // non-positive
        bars.volume[4] = -5.0; // negative volume
        bars.close[5] = f64::NAN; // missing
        bars.timestamp_ms[6] += 60_000; // misaligned for 1h
        bars.volume[7] = -1.0; // IB's no-volume marker (info)
        let (_, report) = validate(bars, Timeframe::H1, false, NOW);
        assert_eq!(
            kinds(&report),
            [
                IssueKind::HighBelowOpenOrClose,
                IssueKind::LowAboveOpenOrClose,
                IssueKind::NonPositivePrice,
                IssueKind::NegativeVolume,
                IssueKind::MissingValue,
                IssueKind::MisalignedTimestamp,
                IssueKind::NoVolumeMarker,
            ]
        );
        let high = &report.issues[0];
        assert_eq!((high.row, high.field.as_str()), (Some(1), "high"));
        assert!(
            high.message.contains("rule: high ≥ max(open, close)"),
            "{}",
            high.message
        );
        assert_eq!(report.errors().count(), 6);
        let status: tonic::Status = report.rejection("WriteBars").into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("6 invalid bar(s)"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn unsorted_and_duplicate_timestamps_are_errors_and_repair_keeps_the_last() {
        let mut bars = hourly(4, 1_704_067_200_000);
        bars.timestamp_ms.swap(0, 1); // unsorted
        bars.timestamp_ms[3] = bars.timestamp_ms[2]; // duplicate
        bars.close[3] = 123.0;
        bars.high[3] = 124.0;
        let (_, report) = validate(bars.clone(), Timeframe::H1, false, NOW);
        assert_eq!(
            kinds(&report),
            [IssueKind::Unsorted, IssueKind::DuplicateTimestamp]
        );

        let (clean, report) = validate(bars, Timeframe::H1, true, NOW);
        assert!(clean.is_sorted_unique());
        assert_eq!(clean.len(), 3);
        assert_eq!(clean.close[2], 123.0, "the later duplicate wins");
        assert_eq!(report.bars_dropped, 1);
        assert!(report.issues.iter().all(|i| i.repaired));
    }

    #[test]
    fn repair_fixes_high_low_volume_and_drops_the_unfixable() {
        let mut bars = hourly(5, 1_704_067_200_000);
        bars.high[0] = 1.0;
        bars.low[1] = 1_000.0;
        bars.volume[2] = -3.0;
        bars.close[3] = f64::INFINITY;
        let (clean, report) = validate(bars.clone(), Timeframe::H1, true, NOW);
        assert_eq!(clean.len(), 4);
        assert_eq!(clean.high[0], bars.open[0].max(bars.close[0]));
        assert_eq!(clean.low[1], bars.open[1].min(bars.close[1]));
        assert_eq!(clean.volume[2], 0.0);
        assert_eq!((report.bars_repaired, report.bars_dropped), (3, 1));
        let (_, again) = validate(clean, Timeframe::H1, false, NOW);
        assert!(
            !again.has_errors(),
            "repaired bars validate: {:?}",
            again.issues
        );
    }

    #[test]
    fn future_bars_and_extreme_moves() {
        let mut bars = hourly(3, NOW - 3 * 3_600_000 - NOW.rem_euclid(3_600_000));
        bars.close[1] = bars.close[0] * 3.0;
        bars.high[1] = bars.close[1];
        bars.timestamp_ms[2] = Timeframe::H1.bar_start(NOW + 2 * ktrdr_market::DAY_MS);
        let (_, report) = validate(bars, Timeframe::H1, false, NOW);
        assert_eq!(
            kinds(&report),
            [IssueKind::FutureTimestamp, IssueKind::ExtremePriceMove]
        );
        assert_eq!(report.errors().count(), 1, "a big move is only a warning");
    }
}
