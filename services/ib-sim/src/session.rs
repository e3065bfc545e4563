//! One TWS API client connection: handshake (version negotiation), StartApi, then requests
//! until the client leaves or the control API drops it. Each data request is answered by its
//! own task, so slow (delayed or held) answers never block the others, and a cancel aborts just
//! that task. Rules, faults and answers are the same for every client; only the encoding
//! differs, and the connection's [`Codec`] owns it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use crate::calendar;
use crate::codec::Kind;
use crate::codec::{self, Codec, Request, Sync};
use crate::market::{self, BarTime, ContractQuery, SimContract, WhatToShow};
use crate::proto as ib;
use crate::rules::{self, IbDuration, Illegal, Violation};
use crate::state::{ClientEntry, FaultAction, Sim, now_ms};
use crate::wire;

/// Most bar slots one request may span (a year of 1-minute bars is about 525 000).
const MAX_BARS_PER_REQUEST: i64 = 2_000_000;

/// The order id a client may use first.
const NEXT_ORDER_ID: i32 = 1;

/// Longest wait for a client's greeting and StartApi.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub const MSG_PACING: &str =
    "Historical Market Data Service error message:Historical data request pacing violation";
pub const MSG_NO_SECURITY: &str = "No security definition has been found for the request";
pub const MSG_CLIENT_ID_IN_USE: &str =
    "Unable to connect as the client id is already in use. Retry with a unique client id.";

/// IB's standard text for an error code (used when a fault names none).
pub fn standard_message(code: i32) -> String {
    match code {
        162 => MSG_PACING.to_owned(),
        200 => MSG_NO_SECURITY.to_owned(),
        321 => "Error validating request.-'bW' : cause - simulated validation error".to_owned(),
        322 => "Error processing request.-'bW' : cause - simulated processing error".to_owned(),
        354 => "Requested market data is not subscribed.".to_owned(),
        366 => "No historical data query found for ticker id".to_owned(),
        502 => "Couldn't connect to TWS.".to_owned(),
        504 => "Not connected".to_owned(),
        1100 => "Connectivity between IB and Trader Workstation has been lost.".to_owned(),
        other => format!("Simulated error {other}"),
    }
}

/// Accepts TWS API clients until the task is dropped.
pub async fn serve(sim: Arc<Sim>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "TWS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if sim.refusing() {
            tracing::info!(%peer, "refusing TWS connection (injected outage)");
            drop(stream);
            continue;
        }
        sim.lock().counters.connections_accepted += 1;
        let sim = Arc::clone(&sim);
        tokio::spawn(async move {
            if let Err(e) = run(sim, stream, peer).await {
                tracing::info!(%peer, error = %e, "TWS session ended");
            }
        });
    }
}

/// Tasks answering requests of one connection, by request id.
type Pending = Arc<Mutex<HashMap<i32, AbortHandle>>>;

struct Session {
    sim: Arc<Sim>,
    conn: u64,
    codec: Codec,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
}

async fn run(sim: Arc<Sim>, stream: TcpStream, peer: SocketAddr) -> Result<(), wire::WireError> {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (client_min, client_max) =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, wire::read_greeting(&mut rd)).await {
            Ok(r) => r?,
            Err(_) => return Err(wire::WireError::Handshake("no greeting".into())),
        };
    let version = match codec::negotiate(sim.settings.server_version, client_min, client_max) {
        Ok(version) => version,
        Err(why) => {
            // No handshake reply: the client sees the socket close and reports a failed connect.
            tracing::warn!(%peer, client_min, client_max, "refused: {why}");
            let _ = wr.shutdown().await;
            return Ok(());
        }
    };
    let codec = Codec::new(version);
    let now = OffsetDateTime::now_utc();
    let time = format!(
        "{} {:02}:{:02}:{:02} UTC",
        calendar::yyyymmdd(now.date()),
        now.hour(),
        now.minute(),
        now.second()
    );
    wr.write_all(&wire::handshake_reply(version, &time)).await?;

    let start = match tokio::time::timeout(HANDSHAKE_TIMEOUT, wire::read_frame(&mut rd)).await {
        Ok(r) => r?,
        Err(_) => None,
    };
    let Some(start) = start else {
        return Err(wire::WireError::Handshake("no StartApi".into()));
    };
    let client_id = match codec.request(&wire::decode_frame(start, version)?) {
        Request::StartApi { client_id } => client_id,
        other => {
            return Err(wire::WireError::Handshake(format!(
                "expected StartApi at v{version}, got {other:?}"
            )));
        }
    };

    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (kill, mut killed) = watch::channel(false);
    let registered = {
        let mut inner = sim.lock();
        let in_use = inner.clients.values().any(|c| c.client_id == client_id);
        if in_use && inner.rules.client_id_in_use {
            None
        } else {
            let conn = inner.next_conn;
            inner.next_conn += 1;
            inner.clients.insert(
                conn,
                ClientEntry {
                    client_id,
                    peer,
                    connected_at_ms: now_ms(),
                    requests_served: 0,
                    server_version: version,
                    tx: tx.clone(),
                    kill,
                },
            );
            Some(conn)
        }
    };
    let Some(conn) = registered else {
        sim.count_error(326, false);
        wr.write_all(&codec.error(-1, 326, MSG_CLIENT_ID_IN_USE, now_ms()))
            .await?;
        let _ = wr.shutdown().await;
        tracing::info!(%peer, client_id, "refused: client id in use (326)");
        return Ok(());
    };
    tracing::info!(%peer, client_id, version, "TWS client connected");

    let now = now_ms();
    let greeting = [
        codec.next_valid_id(NEXT_ORDER_ID),
        codec.managed_accounts(codec::ACCOUNT),
        codec.error(-1, 2104, "Market data farm connection is OK:usfarm", now),
        codec.error(-1, 2106, "HMDS data farm connection is OK:ushmds", now),
        codec.error(-1, 2158, "Sec-def data farm connection is OK:secdefil", now),
    ];
    for frame in greeting {
        let _ = tx.send(frame);
    }

    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });

    let session = Session {
        sim: Arc::clone(&sim),
        conn,
        codec,
        tx,
        pending: Arc::default(),
    };
    let result = read_loop(&session, &mut rd, &mut killed).await;

    sim.lock().clients.remove(&conn);
    for (_, task) in session
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
    {
        task.abort();
    }
    // A dropped connection must close at once, even with frames still queued.
    writer.abort();
    tracing::info!(%peer, client_id, "TWS client disconnected");
    result
}

async fn read_loop(
    session: &Session,
    rd: &mut OwnedReadHalf,
    killed: &mut watch::Receiver<bool>,
) -> Result<(), wire::WireError> {
    loop {
        let body = tokio::select! {
            body = wire::read_frame(rd) => body?,
            _ = killed.wait_for(|k| *k) => return Ok(()),
        };
        let Some(body) = body else { return Ok(()) };
        let frame = wire::decode_frame(body, session.codec.version)?;
        session.dispatch(session.codec.request(&frame));
    }
}

fn query_of(contract: Option<&ib::Contract>) -> ContractQuery {
    let Some(c) = contract else {
        return ContractQuery::default();
    };
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    ContractQuery {
        con_id: c.con_id.unwrap_or(0),
        symbol: s(&c.symbol),
        sec_type: s(&c.sec_type),
        exchange: s(&c.exchange),
        currency: s(&c.currency),
        local_symbol: s(&c.local_symbol),
        contract_month: s(&c.last_trade_date_or_contract_month),
    }
}

/// Outcome of applying injected faults to a request.
enum FaultOutcome {
    Proceed,
    Failed,
}

impl Session {
    fn dispatch(&self, request: Request) {
        let kind = match &request {
            Request::Historical(_) => Kind::Historical,
            Request::HeadTimestamp(_) => Kind::HeadTimestamp,
            Request::ContractDetails(_) => Kind::ContractDetails,
            Request::Cancel { kind, .. } => *kind,
            Request::Sync(_) => Kind::AccountSync,
            Request::StartApi { .. } | Request::Unsupported(_) | Request::Malformed(_) => {
                Kind::Other
            }
        };
        self.sim.count_request(self.conn, kind);
        match request {
            Request::Historical(req) => {
                let req_id = req.req_id.unwrap_or(0);
                self.spawn(req_id, self.clone_parts().historical(req));
            }
            Request::HeadTimestamp(req) => {
                let req_id = req.req_id.unwrap_or(0);
                self.spawn(req_id, self.clone_parts().head_timestamp(req));
            }
            Request::ContractDetails(req) => {
                let req_id = req.req_id.unwrap_or(0);
                self.spawn(req_id, self.clone_parts().contract_details(req));
            }
            Request::Cancel { req_id, .. } => {
                let task = self
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&req_id);
                match task {
                    Some(task) => task.abort(),
                    // Cancelling a finished request is harmless at IB too (no answer).
                    None => tracing::debug!(req_id, "cancel for a finished request"),
                }
            }
            Request::Sync(sync) => self.sync(&sync),
            Request::StartApi { .. } => tracing::debug!("ignoring a second StartApi"),
            Request::Unsupported(id) => tracing::debug!(id, "ignoring unsupported message"),
            // TWS ignores what it cannot read, too.
            Request::Malformed(id) => tracing::warn!(id, "ignoring unreadable message"),
        }
    }

    /// Answers a connect-time request as an empty paper account does.
    fn sync(&self, sync: &Sync) {
        if let Some(frame) = self.codec.sync_reply(sync, NEXT_ORDER_ID, now_ms() / 1000) {
            let _ = self.tx.send(frame);
        }
    }

    fn clone_parts(&self) -> Handler {
        Handler {
            sim: Arc::clone(&self.sim),
            codec: self.codec,
            tx: self.tx.clone(),
        }
    }

    fn spawn(&self, req_id: i32, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let pending = Arc::clone(&self.pending);
        let mut map = pending.lock().unwrap_or_else(|e| e.into_inner());
        let done = Arc::clone(&self.pending);
        let task = tokio::spawn(async move {
            work.await;
            done.lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&req_id);
        });
        map.insert(req_id, task.abort_handle());
    }
}

/// What a request task needs: the shared state and the way to the client.
struct Handler {
    sim: Arc<Sim>,
    codec: Codec,
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

/// Decrements the open-request count however the request ends (answered, failed, cancelled).
struct OpenGuard(Arc<Sim>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.pacer.open = inner.pacer.open.saturating_sub(1);
    }
}

impl Handler {
    fn send(&self, frame: Vec<u8>) {
        let _ = self.tx.send(frame);
    }

    fn error(&self, req_id: i32, code: i32, message: &str) {
        let pacing = code == 162 && message.contains("pacing violation");
        self.sim.count_error(code, pacing);
        self.send(self.codec.error(req_id, code, message, now_ms()));
    }

    /// Applies injected faults: fail, delay, drop after N.
    async fn faults(&self, req_id: i32, kind: Kind, symbol: &str) -> FaultOutcome {
        let (actions, drops) = self.sim.take_faults(kind, symbol);
        for (client_ids, refuse) in drops {
            self.sim.drop_clients(&client_ids, refuse);
        }
        for action in actions {
            match action {
                FaultAction::Delay(d) => tokio::time::sleep(d).await,
                FaultAction::Fail { code, message } => {
                    self.error(req_id, code, &message);
                    return FaultOutcome::Failed;
                }
                FaultAction::DropAfter { .. } => {}
            }
        }
        FaultOutcome::Proceed
    }

    fn resolve(&self, contract: Option<&ib::Contract>) -> Option<SimContract> {
        let found = market::find(&self.sim.contracts, &query_of(contract));
        match found.as_slice() {
            [one] => Some((*one).clone()),
            _ => None,
        }
    }

    async fn contract_details(self, req: ib::ContractDataRequest) {
        let req_id = req.req_id.unwrap_or(0);
        let q = query_of(req.contract.as_ref());
        if let FaultOutcome::Failed = self.faults(req_id, Kind::ContractDetails, &q.symbol).await {
            return;
        }
        let found: Vec<SimContract> = market::find(&self.sim.contracts, &q)
            .into_iter()
            .cloned()
            .collect();
        if found.is_empty() {
            self.error(req_id, 200, MSG_NO_SECURITY);
            return;
        }
        let today = calendar::ny_date(now_ms() / 1000);
        for c in &found {
            self.send(self.codec.contract_data(&ib::ContractData {
                req_id: Some(req_id),
                contract: Some(wire_contract(c)),
                contract_details: Some(wire_details(c, today)),
            }));
        }
        self.send(self.codec.contract_data_end(req_id));
    }

    async fn head_timestamp(self, req: ib::HeadTimestampRequest) {
        let req_id = req.req_id.unwrap_or(0);
        let symbol = query_of(req.contract.as_ref()).symbol;
        if let FaultOutcome::Failed = self.faults(req_id, Kind::HeadTimestamp, &symbol).await {
            return;
        }
        let Some(contract) = self.resolve(req.contract.as_ref()) else {
            self.error(req_id, 200, MSG_NO_SECURITY);
            return;
        };
        let what = req.what_to_show.as_deref().and_then(WhatToShow::parse);
        match what {
            None => self.error(
                req_id,
                321,
                "Error validating request.-'bX' : cause - Invalid what to show",
            ),
            Some(WhatToShow::Trades) if contract.sec_type == "CASH" => self.error(
                req_id,
                162,
                &format!(
                    "Historical Market Data Service error message:No head time stamp for {}/CASH@IDEALPRO TRADES",
                    contract.local_symbol
                ),
            ),
            Some(_) => self.send(self.codec.head_timestamp(&ib::HeadTimestamp {
                req_id: Some(req_id),
                head_timestamp: Some(
                    self.sim
                        .replay
                        .head(&contract)
                        .unwrap_or(contract.head_timestamp)
                        .to_string(),
                ),
            })),
        }
    }

    async fn historical(self, req: ib::HistoricalDataRequest) {
        let req_id = req.req_id.unwrap_or(0);
        let symbol = query_of(req.contract.as_ref()).symbol;
        let Some(contract) = self.resolve(req.contract.as_ref()) else {
            self.error(req_id, 200, MSG_NO_SECURITY);
            return;
        };
        let bar_text = req.bar_size_setting.clone().unwrap_or_default();
        let Some(bar_size) = rules::parse_bar_size(&bar_text) else {
            self.error(
                req_id,
                321,
                &format!("Error validating request.-'bP' : cause - Historical data bar size setting is invalid: '{bar_text}'"),
            );
            return;
        };
        let duration_text = req.duration.clone().unwrap_or_default();
        let Some(duration) = IbDuration::parse(&duration_text) else {
            self.error(
                req_id,
                321,
                &format!("Error validating request.-'bP' : cause - Historical data duration format is invalid: '{duration_text}'"),
            );
            return;
        };
        let Some(what) = req.what_to_show.as_deref().and_then(WhatToShow::parse) else {
            self.error(
                req_id,
                321,
                "Error validating request.-'bP' : cause - Invalid what to show",
            );
            return;
        };
        let end_text = req.end_date_time.clone().unwrap_or_default();
        let now = now_ms() / 1000;
        let end = if end_text.trim().is_empty() {
            now
        } else {
            match calendar::parse_end_date_time(&end_text) {
                Some(end) => end,
                None => {
                    self.error(
                        req_id,
                        321,
                        &format!("Error validating request.-'bP' : cause - Invalid end date/time: '{end_text}'"),
                    );
                    return;
                }
            }
        };
        let rules = self.sim.rules();
        if rules.legal_durations
            && let Err(illegal) = rules::check_pair(duration, bar_size)
        {
            match illegal {
                Illegal::DurationTooLong | Illegal::TooManySeconds => self.error(
                    req_id,
                    162,
                    "Historical Market Data Service error message:Time length exceed max.",
                ),
                Illegal::BarTooLarge => self.error(
                    req_id,
                    321,
                    &format!("Error validating request.-'bP' : cause - Historical data bar size '{bar_text}' is not valid for duration '{duration_text}'"),
                ),
            }
            return;
        }
        if let FaultOutcome::Failed = self.faults(req_id, Kind::Historical, &symbol).await {
            return;
        }

        let use_rth = req.use_rth.unwrap_or(false);
        let identity = format!(
            "{}|{end_text}|{duration_text}|{bar_text}|{}|{use_rth}",
            contract.con_id,
            what.as_str()
        );
        let contract_key = format!("{}|{}", contract.pacing_key(), what.as_str());
        let cost = if what == WhatToShow::BidAsk { 2 } else { 1 };
        let admitted = {
            let mut inner = self.sim.lock();
            let switches = inner.rules.pacing;
            let verdict =
                inner
                    .pacer
                    .admit(Instant::now(), switches, &identity, &contract_key, cost);
            if verdict.is_ok() {
                inner.pacer.open += 1;
            }
            verdict
        };
        if let Err(violation) = admitted {
            tracing::info!(req_id, ?violation, "pacing violation");
            let message = match violation {
                Violation::TooManyOpen => {
                    "Historical Market Data Service error message:Historical data request pacing violation (max 50 simultaneous requests)"
                }
                _ => MSG_PACING,
            };
            self.error(req_id, 162, message);
            return;
        }
        let _open = OpenGuard(Arc::clone(&self.sim));

        // An injected connectivity loss holds historical answers until it ends.
        let mut lost = self.sim.connectivity_lost.subscribe();
        let _ = lost.wait_for(|lost| !*lost).await;

        if what == WhatToShow::Trades && contract.sec_type == "CASH" {
            self.error(
                req_id,
                162,
                &format!(
                    "Historical Market Data Service error message:No historical market data for {}/CASH@IDEALPRO Last 0",
                    contract.local_symbol
                ),
            );
            return;
        }
        let start = duration.start_before(end);
        // Even with the duration check off, never build more bars than fit in memory.
        if (end - start) / bar_size.nominal_secs().max(1) > MAX_BARS_PER_REQUEST {
            self.error(
                req_id,
                162,
                "Historical Market Data Service error message:Time length exceed max.",
            );
            return;
        }
        let bars = match self
            .sim
            .replay
            .bars(&contract, bar_size, start, end.min(now))
        {
            Some(replayed) => replayed,
            None => market::bars(&contract, bar_size, what, use_rth, start, end, now),
        };
        if bars.is_empty() {
            self.error(
                req_id,
                162,
                &format!(
                    "Historical Market Data Service error message:HMDS query returned no data: {}@{} {}",
                    contract.local_symbol,
                    contract.exchange,
                    what.as_str()
                ),
            );
            return;
        }
        // formatDate 2: unix seconds; 1: New York wall clock (the contracts' time zone).
        let wall_clock = req.format_date == Some(1);
        let wire_bars = bars
            .iter()
            .map(|b| ib::HistoricalDataBar {
                date: Some(match b.time {
                    BarTime::Unix(t) if wall_clock => calendar::ny_bar_time(t),
                    BarTime::Unix(t) => t.to_string(),
                    BarTime::Date(d) => calendar::yyyymmdd(d),
                }),
                open: Some(b.open),
                high: Some(b.high),
                low: Some(b.low),
                close: Some(b.close),
                volume: Some(format_decimal(b.volume)),
                wap: Some(format_decimal(b.wap)),
                bar_count: Some(b.count),
            })
            .collect();
        self.send(self.codec.historical(
            &ib::HistoricalData {
                req_id: Some(req_id),
                historical_data_bars: wire_bars,
            },
            &ib::HistoricalDataEnd {
                req_id: Some(req_id),
                start_date_str: Some(calendar::utc_dashed(start)),
                end_date_str: Some(calendar::utc_dashed(end)),
            },
        ));
    }
}

fn format_decimal(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

fn wire_contract(c: &SimContract) -> ib::Contract {
    ib::Contract {
        con_id: Some(c.con_id),
        symbol: Some(c.symbol.to_owned()),
        sec_type: Some(c.sec_type.to_owned()),
        last_trade_date_or_contract_month: c.last_trade_date.map(str::to_owned),
        strike: None,
        right: None,
        multiplier: c.multiplier,
        exchange: Some(c.exchange.to_owned()),
        primary_exch: (!c.primary_exchange.is_empty()).then(|| c.primary_exchange.to_owned()),
        currency: Some(c.currency.to_owned()),
        local_symbol: Some(c.local_symbol.to_owned()),
        trading_class: Some(c.trading_class.to_owned()),
        include_expired: None,
        last_trade_date: c.last_trade_date.map(str::to_owned),
    }
}

fn wire_details(c: &SimContract, today: time::Date) -> ib::ContractDetails {
    let trading_rth = c.schedule == market::Schedule::Forex;
    ib::ContractDetails {
        market_name: Some(c.trading_class.to_owned()),
        min_tick: Some(c.min_tick.to_string()),
        order_types: Some("LMT,MKT,STP".to_owned()),
        valid_exchanges: Some(c.exchange.to_owned()),
        price_magnifier: Some(1),
        under_con_id: None,
        long_name: Some(c.long_name.to_owned()),
        contract_month: c.last_trade_date.map(|d| d[..6].to_owned()),
        industry: None,
        category: None,
        subcategory: None,
        time_zone_id: Some("US/Eastern".to_owned()),
        trading_hours: Some(market::hours_string(c.schedule, today, 7, trading_rth)),
        liquid_hours: Some(market::hours_string(c.schedule, today, 7, true)),
        real_expiration_date: c.last_trade_date.map(str::to_owned),
        stock_type: (c.sec_type == "STK").then(|| "COMMON".to_owned()),
        min_size: Some("1".to_owned()),
        size_increment: Some("1".to_owned()),
    }
}
