//! The IB host's logic, independent of gRPC transport: contract resolution (cached), head
//! timestamps (cached), FetchBars planning, pacing, retries, de-duplication and streaming, and
//! the status report. `ktrdr-ib-host` serves it over gRPC; the gateway can run it in process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ktrdr_common::ServiceError;
use ktrdr_common::error::{FieldViolation, enum_field};
use ktrdr_common::market::{symbol_field, timeframe_field};
use ktrdr_common::server::ResponseStream;
use ktrdr_common::status::{ProcessIdentity, now_ms};
use ktrdr_market::{AssetClass, Bars, Timeframe};
use ktrdr_proto::bars::BarsProto;
use ktrdr_proto::common::v1::{self as common, BarEncoding, Instrument, InstrumentType};
use ktrdr_proto::ib::v1::{self as pb, WhatToShow, fetch_bars_response::Event};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::config::HostSettings;
use crate::connection::Phase;
use crate::contract::{self, ContractSpec};
use crate::error::IbError;
use crate::pacing::PacingGate;
use crate::plan::{self, Segment};
use crate::source::{HistoricalRequest, MarketDataSource};

#[derive(Clone)]
struct CachedHead {
    ts_ms: i64,
    fetched_at_ms: i64,
}

/// An IB answer and when it arrived.
type RecentAnswer = (Instant, Arc<Bars>);

/// The IB host over any [`MarketDataSource`].
pub struct IbHost {
    source: Arc<dyn MarketDataSource>,
    gate: Arc<PacingGate>,
    settings: HostSettings,
    identity: ProcessIdentity,
    contracts: Mutex<HashMap<String, (ContractSpec, Vec<Instrument>)>>,
    heads: Mutex<HashMap<(i64, i32, bool), CachedHead>>,
    /// Answers of the last identical-request window, by request identity: IB refuses an
    /// identical request within 15 s, so a repeat within that window is answered from here
    /// instead of waiting for the window to pass.
    recent: Mutex<HashMap<String, RecentAnswer>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The data kind used when the request leaves it open: IB serves no TRADES for forex.
pub fn default_what(class: AssetClass, what: WhatToShow) -> WhatToShow {
    match (what, class) {
        (WhatToShow::Unspecified, AssetClass::Forex) => WhatToShow::Midpoint,
        (WhatToShow::Unspecified, _) => WhatToShow::Trades,
        (w, _) => w,
    }
}

fn what_str(w: WhatToShow) -> &'static str {
    match w {
        WhatToShow::Trades | WhatToShow::Unspecified => "TRADES",
        WhatToShow::Midpoint => "MIDPOINT",
        WhatToShow::Bid => "BID",
        WhatToShow::Ask => "ASK",
        WhatToShow::BidAsk => "BID_ASK",
    }
}

/// A validated FetchBars request.
#[derive(Debug, Clone)]
struct FetchArgs {
    symbol: String,
    class: Option<AssetClass>,
    exchange: String,
    currency: String,
    con_id: i64,
    timeframe: Timeframe,
    start_ms: i64,
    end_ms: i64,
    what: WhatToShow,
    use_rth: bool,
    arrow: bool,
}

fn validate_fetch(req: &pb::FetchBarsRequest) -> Result<FetchArgs, ServiceError> {
    // Collect the violations of every field, not just the first, in the message's field order.
    let mut violations = vec![];
    let take = |violations: &mut Vec<FieldViolation>, e: Option<&ServiceError>| {
        if let Some(ServiceError::InvalidArgument { violations: v, .. }) = e {
            violations.extend(v.iter().cloned());
        }
    };
    let symbol = symbol_field("symbol", &req.symbol);
    take(&mut violations, symbol.as_ref().err());
    let timeframe = timeframe_field("timeframe", &req.timeframe);
    take(&mut violations, timeframe.as_ref().err());
    let (start_ms, end_ms) = req.range.map_or((0, 0), |r| (r.start_ms, r.end_ms));
    if start_ms < 0 {
        violations.push(FieldViolation::new(
            "range.start_ms",
            "must not be negative (UTC epoch milliseconds; 0 = from the head timestamp)",
        ));
    }
    if end_ms < 0 {
        violations.push(FieldViolation::new(
            "range.end_ms",
            "must not be negative (UTC epoch milliseconds; 0 = now)",
        ));
    }
    if end_ms > 0 && start_ms >= end_ms {
        violations.push(FieldViolation::new(
            "range.end_ms",
            format!("end {end_ms} must be after start {start_ms}"),
        ));
    }
    let what = enum_field::<WhatToShow>("what_to_show", req.what_to_show);
    take(&mut violations, what.as_ref().err());
    let class = enum_field::<InstrumentType>("instrument_type", req.instrument_type);
    take(&mut violations, class.as_ref().err());
    if matches!(class, Ok(InstrumentType::Index)) {
        violations.push(FieldViolation::new(
            "instrument_type",
            "indices are not supported yet; use STOCK, FOREX or FUTURE",
        ));
    }
    let encoding = enum_field::<BarEncoding>("encoding", req.encoding);
    take(&mut violations, encoding.as_ref().err());
    if req.con_id < 0 {
        violations.push(FieldViolation::new("con_id", "must not be negative"));
    }
    if let Some(err) = ServiceError::from_violations(violations) {
        return Err(err);
    }
    let (Ok(symbol), Ok(timeframe), Ok(what), Ok(class)) = (symbol, timeframe, what, class) else {
        return Err(ServiceError::internal(
            "validation accepted an invalid request",
        ));
    };
    Ok(FetchArgs {
        symbol,
        class: contract::class_of(class),
        exchange: req.exchange.clone(),
        currency: req.currency.clone(),
        con_id: req.con_id,
        timeframe,
        start_ms,
        end_ms,
        what,
        use_rth: req.use_rth,
        arrow: req.encoding == BarEncoding::ArrowIpc as i32,
    })
}

fn ib_request(index: usize, seg: &Segment, tf: Timeframe) -> pb::IbHistoricalRequest {
    pb::IbHistoricalRequest {
        index: i32::try_from(index + 1).unwrap_or(i32::MAX),
        range: Some(common::TimeRange {
            start_ms: seg.start * 1000,
            end_ms: seg.end * 1000,
        }),
        end_date_time: seg.end_date_time.clone(),
        duration: seg.duration.text(),
        bar_size: plan::bar_size(tf).to_owned(),
    }
}

impl IbHost {
    pub fn new(
        source: Arc<dyn MarketDataSource>,
        settings: HostSettings,
        identity: ProcessIdentity,
    ) -> Arc<Self> {
        Arc::new(Self {
            source,
            gate: PacingGate::new(settings.pacing),
            settings,
            identity,
            contracts: Mutex::new(HashMap::new()),
            heads: Mutex::new(HashMap::new()),
            recent: Mutex::new(HashMap::new()),
        })
    }

    pub fn source(&self) -> &Arc<dyn MarketDataSource> {
        &self.source
    }

    /// Resolves a symbol to IB contracts, trying asset classes in order of likelihood.
    async fn lookup_spec(
        &self,
        symbol: &str,
        class: Option<AssetClass>,
        exchange: &str,
        currency: &str,
        refresh: bool,
    ) -> Result<(ContractSpec, Vec<Instrument>, bool), IbError> {
        let key = format!("{symbol}|{class:?}|{exchange}|{currency}").to_ascii_uppercase();
        if !refresh && let Some((spec, found)) = lock(&self.contracts).get(&key).cloned() {
            return Ok((spec, found, true));
        }
        let mut last = None;
        for class in contract::candidate_classes(symbol, class) {
            let spec = ContractSpec::new(symbol, class, exchange, currency);
            match self.source.contract_details(&spec).await {
                Ok(found) if !found.is_empty() => {
                    lock(&self.contracts).insert(key, (spec.clone(), found.clone()));
                    return Ok((spec, found, false));
                }
                Ok(_) => {}
                Err(e @ IbError::UnknownContract { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| IbError::UnknownContract {
            symbol: symbol.to_owned(),
            message: "No security definition has been found for the request".to_owned(),
        }))
    }

    /// The contract to request data for: the first lookup match, pinned by its con_id.
    async fn resolve(
        &self,
        symbol: &str,
        class: Option<AssetClass>,
        exchange: &str,
        currency: &str,
        con_id: i64,
    ) -> Result<(ContractSpec, Instrument), IbError> {
        let (mut spec, found, _) = self
            .lookup_spec(symbol, class, exchange, currency, false)
            .await?;
        let chosen = if con_id > 0 {
            found.into_iter().find(|i| i.con_id == con_id)
        } else {
            found.into_iter().next()
        };
        let Some(instrument) = chosen else {
            return Err(IbError::UnknownContract {
                symbol: symbol.to_owned(),
                message: format!("no contract with con_id {con_id}"),
            });
        };
        spec.con_id = instrument.con_id;
        if !instrument.exchange.is_empty() {
            spec.exchange = instrument.exchange.clone();
        }
        Ok((spec, instrument))
    }

    async fn head(
        &self,
        spec: &ContractSpec,
        what: WhatToShow,
        use_rth: bool,
        refresh: bool,
    ) -> Result<(CachedHead, bool), IbError> {
        let key = (spec.con_id, what as i32, use_rth);
        if !refresh && let Some(hit) = lock(&self.heads).get(&key).cloned() {
            return Ok((hit, true));
        }
        let ts_ms = self.source.head_timestamp(spec, what, use_rth).await?;
        let value = CachedHead {
            ts_ms,
            fetched_at_ms: now_ms(),
        };
        lock(&self.heads).insert(key, value.clone());
        Ok((value, false))
    }

    pub async fn lookup_contract(
        &self,
        req: pb::LookupContractRequest,
    ) -> Result<pb::LookupContractResponse, ServiceError> {
        let symbol = symbol_field("symbol", &req.symbol)?;
        let class = enum_field::<InstrumentType>("instrument_type", req.instrument_type)?;
        let (_, instruments, cached) = self
            .lookup_spec(
                &symbol,
                contract::class_of(class),
                &req.exchange,
                &req.currency,
                req.refresh,
            )
            .await?;
        Ok(pb::LookupContractResponse {
            normalized_symbol: symbol,
            instruments,
            cached,
        })
    }

    pub async fn head_timestamp(
        &self,
        req: pb::GetHeadTimestampRequest,
    ) -> Result<pb::GetHeadTimestampResponse, ServiceError> {
        let symbol = symbol_field("symbol", &req.symbol)?;
        let class = enum_field::<InstrumentType>("instrument_type", req.instrument_type)?;
        let what = enum_field::<WhatToShow>("what_to_show", req.what_to_show)?;
        let (spec, instrument) = self
            .resolve(
                &symbol,
                contract::class_of(class),
                &req.exchange,
                &req.currency,
                req.con_id,
            )
            .await?;
        // Forex has no TRADES; IB's earliest quotes may differ per side, so try each.
        let tries = match (what, spec.class) {
            (WhatToShow::Unspecified, AssetClass::Forex) => {
                vec![WhatToShow::Bid, WhatToShow::Ask, WhatToShow::Midpoint]
            }
            (w, class) => vec![default_what(class, w)],
        };
        let mut last = None;
        for w in tries {
            match self.head(&spec, w, req.use_rth, req.refresh).await {
                Ok((head, cached)) => {
                    return Ok(pb::GetHeadTimestampResponse {
                        head_timestamp_ms: head.ts_ms,
                        instrument: Some(instrument),
                        what_to_show: w as i32,
                        cached,
                        fetched_at_ms: head.fetched_at_ms,
                    });
                }
                Err(e @ (IbError::NoData { .. } | IbError::Ib { .. })) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .unwrap_or_else(|| IbError::NoData {
                message: format!("no head timestamp for {symbol}"),
            })
            .into())
    }

    /// Validates, resolves and plans; then streams the bars segment by segment. Errors found
    /// before the first IB data request come back as the call's status.
    pub async fn fetch_bars(
        self: &Arc<Self>,
        req: pb::FetchBarsRequest,
    ) -> Result<ResponseStream<pb::FetchBarsResponse>, ServiceError> {
        let args = validate_fetch(&req)?;
        let (spec, instrument) = self
            .resolve(
                &args.symbol,
                args.class,
                &args.exchange,
                &args.currency,
                args.con_id,
            )
            .await?;
        let what = default_what(spec.class, args.what);
        let head_ms = match self.head(&spec, what, args.use_rth, false).await {
            Ok((h, _)) => h.ts_ms,
            // No head timestamp is no reason to refuse: IB answers per request.
            Err(IbError::NoData { .. } | IbError::Ib { .. }) => 0,
            Err(e) => return Err(e.into()),
        };
        let now = now_ms();
        let end_ms = if args.end_ms == 0 {
            now
        } else {
            args.end_ms.min(now)
        };
        let start_ms = args.start_ms.max(head_ms);
        // IB's end times are whole seconds: widen to seconds, filter to the exact range later.
        let (start_s, end_s) = (start_ms.div_euclid(1000), (end_ms + 999).div_euclid(1000));
        let mut segments = if start_ms < end_ms {
            plan::plan(args.timeframe, start_s, end_s)
        } else {
            vec![]
        };
        // A request inside a weekend closure can only answer "no data": skip it.
        segments.retain(|s| !plan::in_weekend_closure(spec.class, args.use_rth, s.start, s.end));
        let plan_msg = pb::FetchPlan {
            instrument: Some(instrument),
            range: Some(common::TimeRange { start_ms, end_ms }),
            bar_size: plan::bar_size(args.timeframe).to_owned(),
            what_to_show: what as i32,
            head_timestamp_ms: head_ms,
            requests: segments
                .iter()
                .enumerate()
                .map(|(i, s)| ib_request(i, s, args.timeframe))
                .collect(),
        };
        let (tx, rx) = mpsc::channel(16);
        let _ = tx
            .send(Ok(pb::FetchBarsResponse {
                event: Some(Event::Plan(plan_msg)),
            }))
            .await;
        let host = Arc::clone(self);
        ktrdr_common::server::spawn_stream_task(tx.clone(), "FetchBars", async move {
            let job = FetchJob {
                host,
                spec,
                args,
                what,
                start_ms,
                end_ms,
                segments,
                tx: tx.clone(),
            };
            // A client that goes away cancels the work, and so the in-flight IB request.
            tokio::select! {
                () = job.run() => {}
                () = tx.closed() => tracing::info!("FetchBars cancelled by the client"),
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    pub fn status(&self) -> pb::GetStatusResponse {
        let (phase, info) = self.source.connection();
        let config = self.source.config();
        let pacing = self.gate.snapshot();
        let state = match phase {
            Phase::Connecting => pb::ConnectionState::Connecting,
            Phase::Connected => pb::ConnectionState::Connected,
            Phase::Disconnected => pb::ConnectionState::Disconnected,
            Phase::Reconnecting => pb::ConnectionState::Reconnecting,
        };
        pb::GetStatusResponse {
            service: Some(self.identity.service_info()),
            connection_state: state as i32,
            ib_host: config.host.clone(),
            ib_port: i32::from(config.port),
            client_id: if info.client_id > 0 {
                info.client_id
            } else {
                config.client_id
            },
            server_version: info.server_version,
            connected_since_ms: info.connected_since_ms,
            reconnect_count: info.reconnects,
            farms: info
                .farms
                .iter()
                .map(|(name, f)| pb::FarmStatus {
                    name: name.clone(),
                    ok: f.ok,
                    last_code: f.code,
                    last_message: f.message.clone(),
                    updated_at_ms: f.at_ms,
                })
                .collect(),
            pacing: Some(pb::PacingStatus {
                requests_last_10_min: i32::try_from(pacing.last_10_min).unwrap_or(i32::MAX),
                open_requests: i32::try_from(pacing.open).unwrap_or(i32::MAX),
                queued_requests: i32::try_from(pacing.queued).unwrap_or(i32::MAX),
                total_pacing_wait_ms: pacing.total_wait_ms,
                pacing_violations: pacing.violations,
                requests_total: pacing.total_sent,
            }),
            last_error: info.last_error,
            last_error_at_ms: info.last_error_at_ms,
        }
    }
}

struct FetchJob {
    host: Arc<IbHost>,
    spec: ContractSpec,
    args: FetchArgs,
    what: WhatToShow,
    start_ms: i64,
    end_ms: i64,
    segments: Vec<Segment>,
    tx: mpsc::Sender<Result<pb::FetchBarsResponse, Status>>,
}

impl FetchJob {
    async fn send(&self, event: Event) -> bool {
        self.tx
            .send(Ok(pb::FetchBarsResponse { event: Some(event) }))
            .await
            .is_ok()
    }

    fn progress(
        &self,
        index: usize,
        bars: i64,
        waited: Duration,
        current_wait: Duration,
        rule: &str,
        started: Instant,
    ) -> Event {
        let total = self.segments.len();
        let done = index.min(total);
        Event::Progress(pb::FetchProgress {
            request_index: i32::try_from(index + 1)
                .unwrap_or(i32::MAX)
                .min(i32::try_from(total).unwrap_or(i32::MAX)),
            requests_total: i32::try_from(total).unwrap_or(i32::MAX),
            bars_so_far: bars,
            pacing_wait_ms: i64::try_from(waited.as_millis()).unwrap_or(i64::MAX),
            current_wait_ms: i64::try_from(current_wait.as_millis()).unwrap_or(i64::MAX),
            pacing_rule: rule.to_owned(),
            progress: Some(common::Progress {
                percent: if total == 0 {
                    100.0
                } else {
                    done as f64 * 100.0 / total as f64
                },
                step: if rule.is_empty() {
                    "fetching".to_owned()
                } else {
                    format!("waiting for IB pacing ({rule})")
                },
                items_done: done as i64,
                items_total: total as i64,
                unit: "requests".to_owned(),
                elapsed_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
                ..Default::default()
            }),
            current_request: self
                .segments
                .get(index)
                .map(|s| ib_request(index, s, self.args.timeframe)),
        })
    }

    async fn fail(&self, err: IbError) {
        let _ = self.tx.send(Err(err.into())).await;
    }

    async fn run(self) {
        let started = Instant::now();
        let mut last_ts = i64::MIN;
        let mut bars_so_far = 0i64;
        let mut waited = Duration::ZERO;
        let gate = Arc::clone(&self.host.gate);
        let cost = if self.what == WhatToShow::BidAsk {
            2
        } else {
            1
        };
        let contract_key = format!("{}|{}", self.spec.pacing_key(), what_str(self.what));
        for (index, seg) in self.segments.iter().enumerate() {
            let request = HistoricalRequest {
                timeframe: self.args.timeframe,
                end: seg.end,
                duration: seg.duration,
                what: self.what,
                use_rth: self.args.use_rth,
            };
            let identity = format!(
                "{contract_key}|{}|{}|{}|{}",
                seg.end_date_time,
                seg.duration.text(),
                plan::bar_size(self.args.timeframe),
                self.args.use_rth
            );
            let mut attempt = 0;
            let fresh = {
                let mut recent = lock(&self.host.recent);
                let window = gate.config().identical();
                recent.retain(|_, (at, _)| at.elapsed() < window);
                recent.get(&identity).map(|(_, bars)| Arc::clone(bars))
            };
            let bars = loop {
                if let Some(bars) = &fresh {
                    break bars.as_ref().clone();
                }
                let permit = gate
                    .acquire(&identity, &contract_key, cost, |d, rule| {
                        waited += d;
                        let event =
                            self.progress(index, bars_so_far, waited, d, rule.name(), started);
                        // Progress is best effort: a slow reader must not stall the pacing.
                        let _ = self
                            .tx
                            .try_send(Ok(pb::FetchBarsResponse { event: Some(event) }));
                    })
                    .await;
                let result = self.host.source.historical(&self.spec, &request).await;
                drop(permit);
                match result {
                    Ok(bars) => {
                        lock(&self.host.recent)
                            .insert(identity.clone(), (Instant::now(), Arc::new(bars.clone())));
                        break bars;
                    }
                    Err(IbError::NoData { message }) => {
                        let warning = Event::Warning(common::Warning {
                            code: "IB_NO_DATA".to_owned(),
                            message,
                            time_ms: now_ms(),
                            metadata: HashMap::from([(
                                "request_index".to_owned(),
                                (index + 1).to_string(),
                            )]),
                        });
                        if !self.send(warning).await {
                            return;
                        }
                        break Bars::default();
                    }
                    Err(IbError::Pacing { message, .. }) => {
                        gate.record_violation();
                        let retry_after = gate.config().identical() * (attempt + 1);
                        if attempt >= self.host.settings.pacing_retries {
                            self.fail(IbError::Pacing {
                                message,
                                retry_after,
                            })
                            .await;
                            return;
                        }
                        attempt += 1;
                        tracing::warn!(
                            attempt,
                            "IB pacing violation despite the gate; retrying in {retry_after:?}"
                        );
                        tokio::time::sleep(retry_after).await;
                    }
                    Err(e) => {
                        self.fail(e).await;
                        return;
                    }
                }
            };
            let mut kept = Bars::with_capacity(bars.len());
            for (i, &ts) in bars.timestamp_ms.iter().enumerate() {
                if ts >= self.start_ms && ts < self.end_ms && ts > last_ts {
                    kept.push_from(&bars, i);
                }
            }
            if let Some(last) = kept.last_ms() {
                last_ts = last;
                bars_so_far += kept.len() as i64;
                let encoding = if self.args.arrow {
                    common::BarEncoding::ArrowIpc
                } else {
                    common::BarEncoding::Columns
                };
                let batch = match kept.into_batch(
                    &self.spec.symbol,
                    self.args.timeframe.as_str(),
                    encoding,
                ) {
                    Ok(batch) => batch,
                    Err(e) => {
                        self.fail(IbError::Internal(format!("Arrow IPC encoding failed: {e}")))
                            .await;
                        return;
                    }
                };
                if !self.send(Event::Bars(batch)).await {
                    return;
                }
            }
            let event = self.progress(index + 1, bars_so_far, waited, Duration::ZERO, "", started);
            if !self.send(event).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn bad_fetch_requests_name_every_field() {
        let req = pb::FetchBarsRequest {
            symbol: String::new(),
            timeframe: "2h".into(),
            range: Some(common::TimeRange {
                start_ms: 10,
                end_ms: 5,
            }),
            what_to_show: 42,
            ..Default::default()
        };
        let status: Status = validate_fetch(&req).unwrap_err().into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let fields = ktrdr_common::error::violated_fields(&status);
        assert_eq!(
            fields,
            ["symbol", "timeframe", "range.end_ms", "what_to_show"]
        );
    }

    #[test]
    fn forex_defaults_to_midpoint() {
        assert_eq!(
            default_what(AssetClass::Forex, WhatToShow::Unspecified),
            WhatToShow::Midpoint
        );
        assert_eq!(
            default_what(AssetClass::Stock, WhatToShow::Unspecified),
            WhatToShow::Trades
        );
        assert_eq!(
            default_what(AssetClass::Forex, WhatToShow::Bid),
            WhatToShow::Bid
        );
    }
}
