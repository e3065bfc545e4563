//! Bars, streamed from the data service (`DATA_SERVICE_URL`) with `ReadBars`: every stored bar
//! of a range for training ([`BarSource::read_symbols`]), and for inference (predictions,
//! evaluations, backtests) a window checked for stale or missing history
//! ([`BarSource::read_window`]).
//!
//! # The inference window
//! Inference on the base bars of `[start, end)` needs, for every timeframe the model uses:
//! - **warm-up**: the `warmup` bars of that timeframe that open just before `start`
//!   ([`ktrdr_strategy::features::warmup_bars`]), read by count (the last N bars before the
//!   start, whatever the calendar), so the result does not depend on how much older history
//!   is stored;
//! - **coverage**: from the first warm-up bar to the end (the last base bar's close when the
//!   end is open, never later than now), no stretch where the trading calendar expects more
//!   than [`TOLERATED_MISSING_BARS`] bars and none is stored (the data service's `GetCoverage`,
//!   UNEXPECTED gaps). A higher timeframe that stops months before the base timeframe is such a
//!   stretch, so stale 4h/1d bars are never used silently.
//!
//! What is missing is reported as [`Shortfall`]s (dataset and range), all of them at once, as
//! `FAILED_PRECONDITION` with reason [`NOT_COVERED_REASON`]; [`shortfalls_from_metadata`] reads
//! them back from the `ErrorInfo` (the gateway does, to load them and retry).

use std::collections::BTreeMap;
use std::time::Duration;

use ktrdr_common::client::ChannelPool;
use ktrdr_common::market::iso_ms;
use ktrdr_common::status::now_ms;
use ktrdr_market::{Bars, Timeframe};
use ktrdr_proto::bars::BarsProto;
use ktrdr_proto::common::v1::{BarEncoding, TimeRange, bar_batch};
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::data::v1::{GapKind, GetCoverageRequest, GetStatusRequest, ReadBarsRequest};
use ktrdr_strategy::dataset::SymbolBars;
use tonic::Code;

use crate::error::{Result, TrainingError};
pub use crate::shortfall::{
    NOT_COVERED_REASON, Shortfall, shortfall_metadata, shortfalls_from_metadata,
};

/// How long the reachability check before a session is accepted may take.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// A client of the data service.
#[derive(Debug, Clone)]
pub struct BarSource {
    pool: ChannelPool,
    urls: String,
    /// `authorization` header value, when the data API sits behind an authenticating gateway.
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl BarSource {
    pub fn new(pool: ChannelPool, urls: &[String]) -> Self {
        Self {
            pool,
            urls: urls.join(","),
            authorization: None,
        }
    }

    /// Sends `authorization: Bearer <token>` with every call (a token that is not valid
    /// header text is ignored, and the server will say the token is missing).
    pub fn with_bearer_token(mut self, token: Option<&str>) -> Self {
        self.authorization = token.and_then(|t| format!("Bearer {t}").parse().ok());
        self
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        // With tracing on, the read is part of the trace of the session's StartTraining.
        ktrdr_common::telemetry::inject(request.metadata_mut());
        request
    }

    pub fn url(&self) -> &str {
        &self.urls
    }

    fn client(&self) -> Result<DataServiceClient<tonic::transport::Channel>> {
        let channel =
            self.pool
                .channel(&self.urls)
                .map_err(|e| TrainingError::DataUnavailable {
                    url: self.urls.clone(),
                    message: e.to_string(),
                })?;
        // Training reads many bars: allow large batches.
        Ok(DataServiceClient::new(channel).max_decoding_message_size(256 * 1024 * 1024))
    }

    fn status_error(&self, status: &tonic::Status) -> TrainingError {
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled => {
                TrainingError::DataUnavailable {
                    url: self.urls.clone(),
                    message: status.message().to_owned(),
                }
            }
            _ => TrainingError::Data {
                url: self.urls.clone(),
                message: format!("{:?}: {}", status.code(), status.message()),
            },
        }
    }

    /// Fails with `DataUnavailable` when the data service does not answer.
    pub async fn ping(&self) -> Result<()> {
        let mut client = self.client()?;
        match tokio::time::timeout(
            PING_TIMEOUT,
            client.get_status(self.request(GetStatusRequest {})),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            // Any failure of a status call means the service cannot serve bars now (a dropped
            // connection surfaces as UNAVAILABLE, UNKNOWN or CANCELLED depending on timing).
            Ok(Err(status)) => Err(TrainingError::DataUnavailable {
                url: self.urls.clone(),
                message: format!("{:?}: {}", status.code(), status.message()),
            }),
            Err(_) => Err(TrainingError::DataUnavailable {
                url: self.urls.clone(),
                message: format!("no answer within {} s", PING_TIMEOUT.as_secs()),
            }),
        }
    }

    /// Every stored bar of (symbol, timeframe) with open time in `[start_ms, end_ms)`;
    /// `MissingData` when the store has none.
    pub async fn read(
        &self,
        symbol: &str,
        timeframe: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Bars> {
        let bars = self
            .read_some(symbol, timeframe, start_ms, end_ms, None)
            .await?;
        if bars.is_empty() {
            return Err(self.missing(symbol, timeframe));
        }
        Ok(bars)
    }

    fn missing(&self, symbol: &str, timeframe: &str) -> TrainingError {
        TrainingError::MissingData {
            symbol: symbol.to_owned(),
            timeframe: timeframe.to_owned(),
            url: self.urls.clone(),
        }
    }

    /// The stored bars of (symbol, timeframe) with open time in `[start_ms, end_ms)`, possibly
    /// none; with `last`, only the last `last` of them. `MissingData` when the dataset does
    /// not exist.
    async fn read_some(
        &self,
        symbol: &str,
        timeframe: &str,
        start_ms: i64,
        end_ms: i64,
        last: Option<usize>,
    ) -> Result<Bars> {
        let mut client = self.client()?;
        let request = ReadBarsRequest {
            symbol: symbol.to_owned(),
            timeframe: timeframe.to_owned(),
            range: Some(TimeRange {
                start_ms: if start_ms == i64::MIN { 0 } else { start_ms },
                end_ms: if end_ms == i64::MAX { 0 } else { end_ms },
            }),
            limit: last.map(|n| n as i64),
            from_end: last.is_some(),
            // Columns: no Arrow decoder needed here, and the store converts cheaply.
            encoding: BarEncoding::Columns as i32,
            ..Default::default()
        };
        let missing = || self.missing(symbol, timeframe);
        let mut stream = match client.read_bars(self.request(request)).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == Code::NotFound => return Err(missing()),
            Err(status) => return Err(self.status_error(&status)),
        };
        let mut bars = Bars::default();
        loop {
            match stream.message().await {
                Ok(Some(item)) => {
                    let payload = item.batch.and_then(|b| b.payload);
                    match payload {
                        Some(bar_batch::Payload::Columns(c)) => {
                            bars.extend(&Bars::from_columns(c)?)
                        }
                        Some(bar_batch::Payload::ArrowIpc(_)) => {
                            return Err(TrainingError::Data {
                                url: self.urls.clone(),
                                message: "answered Arrow IPC although columns were asked for"
                                    .to_owned(),
                            });
                        }
                        None => {}
                    }
                }
                Ok(None) => break,
                Err(status) if status.code() == Code::NotFound => return Err(missing()),
                Err(status) => return Err(self.status_error(&status)),
            }
        }
        bars.validate()?;
        Ok(bars)
    }
}

/// What [`BarSource::read_symbols`] reports per dataset read.
pub struct Loaded<'a> {
    pub symbol: &'a str,
    pub timeframe: Timeframe,
    pub bars: &'a Bars,
    /// Not stored: resampled from the base timeframe.
    pub resampled: bool,
}

impl BarSource {
    /// Bars of every symbol and timeframe (base = the shortest), base bars in
    /// `[start_ms, end_ms)`. A higher timeframe that is not stored is resampled from the base.
    /// `keep_going` is asked before each read (cancellation).
    pub async fn read_symbols(
        &self,
        symbols: &[String],
        timeframes: &[Timeframe],
        start_ms: i64,
        end_ms: i64,
        keep_going: &(dyn Fn() -> bool + Sync),
        on_loaded: &mut (dyn FnMut(Loaded<'_>) + Send),
    ) -> Result<Vec<ktrdr_strategy::dataset::SymbolBars>> {
        let Some(&base_tf) = timeframes.iter().min() else {
            return Err(TrainingError::invalid("timeframes", "no timeframe"));
        };
        let mut out = Vec::with_capacity(symbols.len());
        for symbol in symbols {
            let mut by_tf = std::collections::BTreeMap::new();
            let base = self
                .read(symbol, &base_tf.to_string(), start_ms, end_ms)
                .await?;
            on_loaded(Loaded {
                symbol,
                timeframe: base_tf,
                bars: &base,
                resampled: false,
            });
            for &tf in timeframes.iter().filter(|&&tf| tf != base_tf) {
                if !keep_going() {
                    return Err(ktrdr_strategy::StrategyError::Cancelled.into());
                }
                let (bars, resampled) =
                    match self.read(symbol, &tf.to_string(), start_ms, end_ms).await {
                        Ok(bars) => (bars, false),
                        Err(TrainingError::MissingData { .. }) => (base.resample(tf)?, true),
                        Err(e) => return Err(e),
                    };
                on_loaded(Loaded {
                    symbol,
                    timeframe: tf,
                    bars: &bars,
                    resampled,
                });
                by_tf.insert(tf, bars);
            }
            by_tf.insert(base_tf, base);
            out.push(ktrdr_strategy::dataset::SymbolBars {
                symbol: symbol.clone(),
                bars: by_tf,
            });
            if !keep_going() {
                return Err(ktrdr_strategy::StrategyError::Cancelled.into());
            }
        }
        Ok(out)
    }
}

/// The largest stretch of missing bars (in bars the trading calendar expects) inference
/// tolerates inside its window: the newest bar of a timeframe may not be stored yet, and IB
/// leaves single-bar holes. Anything longer is a [`Shortfall`].
pub const TOLERATED_MISSING_BARS: i64 = 1;

/// How far back, in calendar time, `bars` bars of `tf` reach at most: trading calendars leave
/// out nights (an exchange's hourly bars cover about a fifth of the week), weekends and
/// holidays. Used only to name the range to load when warm-up bars are missing.
fn calendar_span_ms(tf: Timeframe, bars: usize) -> i64 {
    let factor = if tf.duration_ms() < 86_400_000 { 5 } else { 2 };
    bars as i64 * tf.duration_ms() * factor + 7 * 86_400_000
}

impl BarSource {
    /// The bars inference needs (module doc, "The inference window") of every symbol and
    /// timeframe (base = the shortest): base bars in `[start_ms, end_ms)` plus, per timeframe,
    /// `warmup[tf]` bars before `start_ms` (none when the start is open, `i64::MIN`). Fails
    /// with [`TrainingError::NotCovered`] listing every dataset and range the store lacks; a
    /// higher timeframe is never resampled here (it would hide what is missing).
    pub async fn read_window(
        &self,
        symbols: &[String],
        timeframes: &[Timeframe],
        warmup: &BTreeMap<Timeframe, usize>,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SymbolBars>> {
        let Some(&base_tf) = timeframes.iter().min() else {
            return Err(TrainingError::invalid("timeframes", "no timeframe"));
        };
        let mut out = Vec::with_capacity(symbols.len());
        let mut shortfalls = Vec::new();
        for symbol in symbols {
            let mut by_tf = BTreeMap::new();
            // The base bars decide an open end: the last stored base bar's close.
            let base = match self
                .read_some(symbol, &base_tf.to_string(), start_ms, end_ms, None)
                .await
            {
                Ok(bars) => bars,
                Err(TrainingError::MissingData { .. }) => Bars::default(),
                Err(e) => return Err(e),
            };
            let window_end = if end_ms == i64::MAX {
                match base.timestamp_ms.last() {
                    Some(last) => last + base_tf.duration_ms(),
                    None => {
                        return Err(self.missing(symbol, &base_tf.to_string()));
                    }
                }
            } else {
                end_ms
            };
            let window_start = if start_ms == i64::MIN {
                match base.timestamp_ms.first() {
                    Some(&first) => first,
                    None => return Err(self.missing(symbol, &base_tf.to_string())),
                }
            } else {
                start_ms
            };
            for &tf in timeframes {
                let wanted = if start_ms == i64::MIN {
                    0
                } else {
                    warmup.get(&tf).copied().unwrap_or(0)
                };
                let dataset = DatasetWindow {
                    symbol,
                    timeframe: tf,
                    warmup: wanted,
                    start_ms,
                    end_ms,
                    window_start,
                    window_end,
                };
                let base = (tf == base_tf).then_some(&base);
                let (bars, found) = self.read_timeframe(&dataset, base).await?;
                shortfalls.extend(self.check_window(&dataset, &bars, found).await?);
                by_tf.insert(tf, bars);
            }
            out.push(SymbolBars {
                symbol: symbol.clone(),
                bars: by_tf,
            });
        }
        if shortfalls.is_empty() {
            Ok(out)
        } else {
            Err(TrainingError::NotCovered {
                shortfalls,
                url: self.urls.clone(),
            })
        }
    }

    /// One timeframe of the window: its warm-up (the last `warmup` bars before the start)
    /// followed by its bars in the range (`base`, already read, for the base timeframe).
    /// Returns the bars and how many warm-up bars were found.
    async fn read_timeframe(
        &self,
        dataset: &DatasetWindow<'_>,
        base: Option<&Bars>,
    ) -> Result<(Bars, usize)> {
        let DatasetWindow {
            symbol,
            timeframe,
            warmup,
            start_ms,
            end_ms,
            ..
        } = *dataset;
        let name = timeframe.to_string();
        let or_empty = |read: Result<Bars>| match read {
            Ok(bars) => Ok(bars),
            Err(TrainingError::MissingData { .. }) => Ok(Bars::default()),
            Err(e) => Err(e),
        };
        let mut bars = if warmup > 0 {
            or_empty(
                self.read_some(symbol, &name, i64::MIN, start_ms, Some(warmup))
                    .await,
            )?
        } else {
            Bars::default()
        };
        let found = bars.len();
        let in_range = match base {
            Some(base) => base.clone(),
            None => or_empty(self.read_some(symbol, &name, start_ms, end_ms, None).await)?,
        };
        bars.extend(&in_range);
        Ok((bars, found))
    }

    /// The shortfalls of one timeframe's window: missing warm-up bars, and stretches of
    /// missing bars (per the trading calendar) from the first warm-up bar to the window end.
    async fn check_window(
        &self,
        dataset: &DatasetWindow<'_>,
        bars: &Bars,
        found: usize,
    ) -> Result<Vec<Shortfall>> {
        let DatasetWindow {
            symbol,
            timeframe: tf,
            warmup: wanted,
            window_start,
            window_end,
            ..
        } = *dataset;
        let mut out = Vec::new();
        let first_stored = bars.timestamp_ms.first().copied();
        if found < wanted {
            let upto = first_stored.map_or(window_start, |first| first.min(window_start));
            out.push(Shortfall {
                symbol: symbol.to_owned(),
                timeframe: tf,
                start_ms: window_start - calendar_span_ms(tf, wanted),
                end_ms: upto,
                why: format!(
                    "the model needs {wanted} {tf} bars of warm-up before {}; {found} are stored",
                    iso_ms(window_start)
                ),
            });
        }
        // Bars that cannot have closed yet are not expected.
        let check_end = window_end.min(now_ms() - tf.duration_ms());
        let check_start = first_stored.map_or(window_start, |first| first.min(window_start));
        if check_end <= check_start {
            return Ok(out);
        }
        if bars.is_empty() {
            out.push(Shortfall {
                symbol: symbol.to_owned(),
                timeframe: tf,
                start_ms: check_start,
                end_ms: check_end,
                why: format!("no {tf} bars are stored"),
            });
            return Ok(out);
        }
        let mut client = self.client()?;
        let request = GetCoverageRequest {
            symbol: symbol.to_owned(),
            timeframe: tf.to_string(),
            range: Some(TimeRange {
                start_ms: check_start,
                end_ms: check_end,
            }),
            unexpected_only: true,
            max_gaps: Some(1_000),
        };
        let coverage = match client.get_coverage(self.request(request)).await {
            Ok(response) => response.into_inner(),
            Err(status) => return Err(self.status_error(&status)),
        };
        for gap in coverage.gaps {
            if gap.kind() != GapKind::Unexpected
                || gap.expected_missing_bars <= TOLERATED_MISSING_BARS
            {
                continue;
            }
            let Some(range) = gap.range else { continue };
            out.push(Shortfall {
                symbol: symbol.to_owned(),
                timeframe: tf,
                start_ms: range.start_ms,
                end_ms: range.end_ms,
                why: format!(
                    "{} {tf} bars the market was open for are not stored",
                    gap.expected_missing_bars
                ),
            });
        }
        Ok(out)
    }
}

/// How much earlier than the base timeframe's last close a higher timeframe's last close may be
/// in bars sent with a request, beyond one bar of its own: a weekend and a holiday.
pub const GIVEN_BARS_SLACK_MS: i64 = 4 * 86_400_000;

/// Checks bars sent with an inference request (no calendar at hand): every higher timeframe
/// must reach the end of the base bars, up to one of its own bars and
/// [`GIVEN_BARS_SLACK_MS`]. A higher timeframe that stops earlier would feed stale values to
/// every later base bar; `INVALID_ARGUMENT` names it (`field(timeframe)` is its request path).
pub fn check_given_bars(
    bars: &BTreeMap<Timeframe, Bars>,
    field: impl Fn(Timeframe) -> String,
) -> Result<()> {
    let Some((&base_tf, base)) = bars.iter().next() else {
        return Ok(());
    };
    let Some(&base_last) = base.timestamp_ms.last() else {
        return Ok(());
    };
    let base_end = base_last + base_tf.duration_ms();
    for (&tf, higher) in bars.iter().skip(1) {
        let higher_end = higher
            .timestamp_ms
            .last()
            .map_or(i64::MIN, |last| last + tf.duration_ms());
        if higher_end < base_end - tf.duration_ms() - GIVEN_BARS_SLACK_MS {
            return Err(TrainingError::invalid(
                field(tf),
                format!(
                    "the {tf} bars end at {} but the {base_tf} bars at {}: every {base_tf} bar \
                     after it would use stale {tf} values; send {tf} bars up to the end, or \
                     leave {tf} out to have it resampled from the {base_tf} bars",
                    if higher_end == i64::MIN {
                        "nothing".to_owned()
                    } else {
                        iso_ms(higher_end)
                    },
                    iso_ms(base_end)
                ),
            ));
        }
    }
    Ok(())
}

/// One (symbol, timeframe) of an inference window.
#[derive(Clone, Copy)]
struct DatasetWindow<'a> {
    symbol: &'a str,
    timeframe: Timeframe,
    /// Bars wanted before `start_ms`.
    warmup: usize,
    /// The range asked for (open sides as `i64::MIN` / `i64::MAX`).
    start_ms: i64,
    end_ms: i64,
    /// The range resolved against the stored base bars.
    window_start: i64,
    window_end: i64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn given_higher_timeframes_that_stop_early_are_refused() {
        let hourly = |start: i64, n: i64, step: i64| Bars {
            timestamp_ms: (0..n).map(|i| start + i * step).collect(),
            open: vec![1.0; n as usize],
            high: vec![1.0; n as usize],
            low: vec![1.0; n as usize],
            close: vec![1.0; n as usize],
            volume: vec![1.0; n as usize],
        };
        const H: i64 = 3_600_000;
        let field = |tf: Timeframe| format!("bars.batches[{tf}]");
        let mut bars = BTreeMap::from([
            (Timeframe::H1, hourly(0, 24 * 60, H)),
            (Timeframe::D1, hourly(0, 60, 24 * H)),
        ]);
        check_given_bars(&bars, field).unwrap();
        // Daily bars ending a month before the hourly ones.
        bars.insert(Timeframe::D1, hourly(0, 30, 24 * H));
        let e = check_given_bars(&bars, field).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid bars.batches[1d]: the 1d bars end at 1970-01-31"),
            "{e}"
        );
    }

    #[test]
    fn the_warm_up_range_to_load_reaches_back_past_nights_and_weekends() {
        // 100 hourly bars of a six-and-a-half-hour session span about three weeks.
        assert!(calendar_span_ms(Timeframe::H1, 100) >= 100 * 3_600_000 * 7 * 24 / 35);
        // 100 daily bars of a five-day week span 140 days.
        assert!(calendar_span_ms(Timeframe::D1, 100) >= 140 * 86_400_000);
    }
}
