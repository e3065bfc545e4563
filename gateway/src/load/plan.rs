//! What a load fetches: the effective range of a mode (reference §3.3 of the original), the
//! stretches the store lacks in it, and those stretches cut into segments IB can serve in one
//! go. Pure functions of the store's coverage, so every rule is unit-tested here.

use ktrdr_market::{DAY_MS, Timeframe};
use ktrdr_proto::data::v1::GapKind;
use ktrdr_proto::gateway::v1::LoadMode;

/// TAIL on an empty store starts this far back (the original's default).
pub const TAIL_DEFAULT_SPAN_MS: i64 = 30 * DAY_MS;
/// Without a head timestamp, BACKFILL and FULL go back this far.
pub const NO_HEAD_SPAN_MS: i64 = 365 * DAY_MS;
/// Internal gaps longer than this are fetched whatever the calendar says (the original's rule).
pub const ALWAYS_FETCH_GAP_MS: i64 = 7 * DAY_MS;

/// The longest stretch one segment covers, per timeframe (the original's
/// `IbLimitsRegistry.SIMPLE_DURATION_LIMITS`).
pub fn max_segment_span(timeframe: Timeframe) -> i64 {
    DAY_MS
        * match timeframe {
            Timeframe::M1 => 1,
            Timeframe::M5 => 7,
            Timeframe::M15 => 14,
            Timeframe::M30 | Timeframe::H1 => 30,
            Timeframe::H4 => 120,
            Timeframe::D1 => 365,
            Timeframe::W1 => 730,
        }
}

/// A half-open `[start, end)` stretch, UTC epoch ms.
pub type Span = (i64, i64);

/// A gap inside the stored data, as the data service classified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredGap {
    pub span: Span,
    pub kind: GapKind,
}

/// What the plan is computed from.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// Effective mode (never UNSPECIFIED).
    pub mode: LoadMode,
    pub timeframe: Timeframe,
    /// The caller's bounds; `None` = the mode's default.
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub now_ms: i64,
    /// Earliest data IB has; `None` when unknown.
    pub head_ms: Option<i64>,
    /// Open times of the first and last stored bar; `None` for an empty dataset.
    pub stored: Option<Span>,
    /// Gaps between stored bars.
    pub gaps: Vec<StoredGap>,
    /// Fetch unexpected internal gaps too (FULL always does).
    pub fill_gaps: bool,
}

/// What to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Effective range after defaults and clamping.
    pub range: Span,
    /// Missing stretches found (before, inside and after the stored data).
    pub gaps_found: usize,
    /// Segments in the order they are fetched: ascending, except that BACKFILL fetches newest
    /// first, so that what it stores stays one contiguous block if it is interrupted and a
    /// re-run only has to continue further back.
    pub segments: Vec<Span>,
}

/// The effective range of a load.
pub fn effective_range(input: &PlanInput) -> Span {
    let tf = input.timeframe.duration_ms();
    let end = input.end.unwrap_or(match (input.mode, input.stored) {
        // BACKFILL fetches what precedes the stored data.
        (LoadMode::Backfill, Some((first, _))) => first,
        _ => input.now_ms,
    });
    let start = input.start.unwrap_or(match input.mode {
        LoadMode::Backfill | LoadMode::Full => input.head_ms.unwrap_or(end - NO_HEAD_SPAN_MS),
        _ => match input.stored {
            Some((_, last)) => last + tf,
            None => input.now_ms - TAIL_DEFAULT_SPAN_MS,
        },
    });
    let start = input.head_ms.map_or(start, |head| start.max(head));
    (input.timeframe.bar_start(start), end)
}

/// The stretches of `range` to fetch. Stretches before and after the stored data are fetched
/// only when the trading calendar expects bars in them (`expects_bars`), so a tail run on a
/// weekend, or a range starting on a holiday, costs no IB request.
fn missing(
    input: &PlanInput,
    (start, end): Span,
    expects_bars: &dyn Fn(Span) -> bool,
) -> Vec<Span> {
    if start >= end {
        return Vec::new();
    }
    let Some((first, last)) = input.stored else {
        return if expects_bars((start, end)) {
            vec![(start, end)]
        } else {
            Vec::new()
        };
    };
    let after_last = last + input.timeframe.duration_ms();
    let mut out = Vec::new();
    if start < first && expects_bars((start, end.min(first))) {
        out.push((start, end.min(first)));
    }
    if input.mode == LoadMode::Full || input.fill_gaps {
        for gap in &input.gaps {
            let wanted =
                gap.kind == GapKind::Unexpected || gap.span.1 - gap.span.0 > ALWAYS_FETCH_GAP_MS;
            let (a, b) = (gap.span.0.max(start), gap.span.1.min(end));
            if wanted && a < b {
                out.push((a, b));
            }
        }
    }
    if end > after_last && expects_bars((start.max(after_last), end)) {
        out.push((start.max(after_last), end));
    }
    out.sort_unstable();
    out
}

/// Joins neighbouring stretches that fit in one segment together (one IB request instead of
/// several for small holes close to each other), then cuts long ones at the segment span.
fn segment(spans: &[Span], max_span: i64) -> Vec<Span> {
    let mut joined: Vec<Span> = Vec::new();
    for &(a, b) in spans {
        match joined.last_mut() {
            Some(last) if b - last.0 <= max_span => last.1 = last.1.max(b),
            _ => joined.push((a, b)),
        }
    }
    let mut out = Vec::new();
    for (a, b) in joined {
        let mut s = a;
        while s < b {
            let e = (s + max_span).min(b);
            out.push((s, e));
            s = e;
        }
    }
    out
}

/// The plan of a load. LOCAL fetches nothing. `expects_bars` tells whether the market was open
/// at some time in a stretch.
pub fn plan(input: &PlanInput, expects_bars: &dyn Fn(Span) -> bool) -> Plan {
    let range = effective_range(input);
    if input.mode == LoadMode::Local {
        return Plan {
            range,
            gaps_found: 0,
            segments: Vec::new(),
        };
    }
    let missing = missing(input, range, expects_bars);
    let mut segments = segment(&missing, max_segment_span(input.timeframe));
    if input.mode == LoadMode::Backfill {
        segments.reverse();
    }
    Plan {
        range,
        gaps_found: missing.len(),
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    /// 2024-01-01 00:00 UTC.
    const T0: i64 = 1_704_067_200_000;

    fn always(_: Span) -> bool {
        true
    }

    fn input(mode: LoadMode) -> PlanInput {
        PlanInput {
            mode,
            timeframe: Timeframe::H1,
            start: None,
            end: None,
            now_ms: T0 + 100 * DAY_MS,
            head_ms: Some(T0 - 1000 * DAY_MS),
            stored: None,
            gaps: Vec::new(),
            fill_gaps: false,
        }
    }

    #[test]
    fn tail_on_an_empty_store_takes_the_last_30_days_in_30_day_segments() {
        let p = plan(&input(LoadMode::Tail), &always);
        let now = T0 + 100 * DAY_MS;
        assert_eq!(p.range, (now - 30 * DAY_MS, now));
        assert_eq!(p.segments, vec![(now - 30 * DAY_MS, now)]);
    }

    #[test]
    fn tail_continues_after_the_last_stored_bar() {
        let mut i = input(LoadMode::Tail);
        i.stored = Some((T0, T0 + 10 * DAY_MS));
        let p = plan(&i, &always);
        let from = T0 + 10 * DAY_MS + H;
        assert_eq!(p.range.0, from);
        assert_eq!(p.segments.first().unwrap().0, from);
        assert_eq!(p.segments.last().unwrap().1, T0 + 100 * DAY_MS);
        assert_eq!(p.segments.len(), 3, "90 days in 30-day segments");
    }

    #[test]
    fn backfill_goes_back_to_the_head_newest_first_and_stops_at_the_stored_data() {
        let mut i = input(LoadMode::Backfill);
        i.head_ms = Some(T0 - 45 * DAY_MS);
        i.stored = Some((T0, T0 + 10 * DAY_MS));
        let p = plan(&i, &always);
        assert_eq!(p.range, (T0 - 45 * DAY_MS, T0));
        assert_eq!(
            p.segments,
            vec![(T0 - 15 * DAY_MS, T0), (T0 - 45 * DAY_MS, T0 - 15 * DAY_MS)]
        );
    }

    #[test]
    fn the_start_is_clamped_to_the_head_timestamp_and_floored_to_a_bar() {
        let mut i = input(LoadMode::Full);
        i.head_ms = Some(T0 + 14 * H + 30 * 60_000);
        i.start = Some(T0);
        i.end = Some(T0 + 2 * DAY_MS);
        assert_eq!(plan(&i, &always).range, (T0 + 14 * H, T0 + 2 * DAY_MS));
    }

    #[test]
    fn only_unexpected_or_long_internal_gaps_are_fetched_and_only_when_asked() {
        let mut i = input(LoadMode::Tail);
        i.start = Some(T0);
        i.end = Some(T0 + 60 * DAY_MS);
        i.stored = Some((T0, T0 + 60 * DAY_MS - H));
        i.gaps = vec![
            StoredGap {
                span: (T0 + 5 * DAY_MS, T0 + 6 * DAY_MS),
                kind: GapKind::Weekend,
            },
            StoredGap {
                span: (T0 + 10 * DAY_MS, T0 + 11 * DAY_MS),
                kind: GapKind::Unexpected,
            },
            StoredGap {
                span: (T0 + 40 * DAY_MS, T0 + 50 * DAY_MS),
                kind: GapKind::MarketClosure,
            },
        ];
        assert!(
            plan(&i, &always).segments.is_empty(),
            "TAIL without fill_gaps"
        );
        i.fill_gaps = true;
        let p = plan(&i, &always);
        assert_eq!(p.gaps_found, 2);
        assert_eq!(
            p.segments,
            vec![
                (T0 + 10 * DAY_MS, T0 + 11 * DAY_MS),
                (T0 + 40 * DAY_MS, T0 + 50 * DAY_MS)
            ]
        );
        i.fill_gaps = false;
        i.mode = LoadMode::Full;
        assert_eq!(plan(&i, &always).segments.len(), 2, "FULL always fills");
    }

    #[test]
    fn edges_where_the_market_is_closed_are_not_fetched() {
        let mut i = input(LoadMode::Tail);
        i.start = Some(T0);
        i.end = Some(T0 + 20 * DAY_MS);
        i.stored = Some((T0 + 2 * DAY_MS, T0 + 10 * DAY_MS));
        let closed_before_day_2 = |(a, _): Span| a >= T0 + 2 * DAY_MS;
        let p = plan(&i, &closed_before_day_2);
        assert_eq!(p.segments, vec![(T0 + 10 * DAY_MS + H, T0 + 20 * DAY_MS)]);
        assert!(plan(&i, &|_| false).segments.is_empty());
    }

    #[test]
    fn close_gaps_share_a_segment_and_long_stretches_are_cut() {
        let spans = [(0, 10), (20, 30), (100, 350)];
        assert_eq!(
            segment(&spans, 100),
            vec![(0, 30), (100, 200), (200, 300), (300, 350)]
        );
    }

    #[test]
    fn local_fetches_nothing_and_an_empty_range_neither() {
        assert!(plan(&input(LoadMode::Local), &always).segments.is_empty());
        let mut i = input(LoadMode::Tail);
        i.stored = Some((T0, T0 + 100 * DAY_MS));
        assert!(plan(&i, &always).segments.is_empty(), "up to date");
    }

    #[test]
    fn full_on_an_empty_store_runs_from_the_head() {
        let mut i = input(LoadMode::Full);
        i.timeframe = Timeframe::D1;
        i.head_ms = Some(T0 - 400 * DAY_MS);
        let p = plan(&i, &always);
        assert_eq!(p.range, (T0 - 400 * DAY_MS, T0 + 100 * DAY_MS));
        assert_eq!(p.segments.len(), 2);
        assert!(p.segments.windows(2).all(|w| w[0].1 == w[1].0));
    }
}
