//! Where bars come from: the [`MarketDataSource`] trait (what the host logic needs from IB) and
//! its implementation over the `ibapi` client. The gateway can run [`crate::host::IbHost`] in
//! process over the same trait.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ibapi::Client;
use ibapi::contracts::{Contract, Currency, Exchange, SecurityType, Symbol};
use ibapi::market_data::TradingHours;
use ibapi::market_data::historical::{
    BarSize, BarTimestamp, Duration as IbApiDuration, WhatToShow as IbWhat,
};
use ktrdr_market::{AssetClass, Bars, Timeframe};
use ktrdr_proto::common::v1::Instrument;
use ktrdr_proto::ib::v1::WhatToShow;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::config::{ConnectSettings, IbConnectionConfig, RequestTimeouts};
use crate::connection::{ConnectionInfo, IbConnection, Phase};
use crate::contract::{self, ContractSpec};
use crate::error::IbError;
use crate::plan::IbDuration;

/// One reqHistoricalData call.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoricalRequest {
    pub timeframe: Timeframe,
    /// End of the window, unix seconds.
    pub end: i64,
    pub duration: IbDuration,
    pub what: WhatToShow,
    pub use_rth: bool,
}

impl HistoricalRequest {
    /// The most bars IB can return for this request: its window over the bar length.
    pub fn max_bars(&self) -> u64 {
        let window = self
            .end
            .saturating_sub(self.duration.start_before(self.end));
        let bar_secs = (self.timeframe.duration_ms() / 1000).max(1);
        u64::try_from(window / bar_secs).unwrap_or(0)
    }
}

/// What the host logic needs from Interactive Brokers.
#[tonic::async_trait]
pub trait MarketDataSource: Send + Sync + 'static {
    /// IB's reqContractDetails; an unknown contract is [`IbError::UnknownContract`].
    async fn contract_details(&self, spec: &ContractSpec) -> Result<Vec<Instrument>, IbError>;
    /// IB's reqHeadTimeStamp, UTC epoch milliseconds.
    async fn head_timestamp(
        &self,
        spec: &ContractSpec,
        what: WhatToShow,
        use_rth: bool,
    ) -> Result<i64, IbError>;
    /// IB's reqHistoricalData; bars as IB sent them (open times in UTC epoch milliseconds,
    /// ascending; volume `-1` where IB reports none).
    async fn historical(
        &self,
        spec: &ContractSpec,
        request: &HistoricalRequest,
    ) -> Result<Bars, IbError>;
    /// Current connection state and details.
    fn connection(&self) -> (Phase, ConnectionInfo);
    /// true while requests can be served; changes drive health.
    fn watch_ready(&self) -> watch::Receiver<bool>;
    /// Where IB is, for messages ("127.0.0.1:4002").
    fn address(&self) -> String;
    fn config(&self) -> IbConnectionConfig;
}

/// [`MarketDataSource`] over one `ibapi` connection.
pub struct IbapiSource {
    conn: Arc<IbConnection>,
    timeouts: RequestTimeouts,
    ready: watch::Receiver<bool>,
}

impl IbapiSource {
    /// Starts connecting in the background; calls fail with UNAVAILABLE until connected.
    pub fn start(
        config: IbConnectionConfig,
        settings: ConnectSettings,
        timeouts: RequestTimeouts,
    ) -> Self {
        let conn = IbConnection::start(config, settings);
        let (ready_tx, ready) = watch::channel(false);
        let mut links = conn.subscribe();
        tokio::spawn(async move {
            loop {
                let up = links.borrow_and_update().phase == Phase::Connected;
                ready_tx.send_if_modified(|r| std::mem::replace(r, up) != up);
                if links.changed().await.is_err() {
                    return;
                }
            }
        });
        Self {
            conn,
            timeouts,
            ready,
        }
    }

    /// Runs `call` on the current client; fails fast when the link drops (not waiting for the
    /// library), and after `timeout`. Every answer and every timeout is reported to the
    /// connection, which gives up a link that stays silent. Dropping the future (a cancelled
    /// gRPC call) drops the library's request, which cancels it at IB.
    async fn call<T, F, Fut>(&self, symbol: &str, timeout: Duration, call: F) -> Result<T, IbError>
    where
        F: FnOnce(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, ibapi::Error>>,
    {
        let (client, generation) = self.conn.client()?;
        let address = self.conn.address();
        let result = tokio::select! {
            result = tokio::time::timeout(timeout, call(client)) => match result {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(match IbError::from_ibapi(e, &address, symbol) {
                    IbError::Timeout(_) => IbError::Timeout(timeout),
                    other => other,
                }),
                Err(_) => Err(IbError::Timeout(timeout)),
            },
            () = self.conn.lost(generation) => return Err(self.conn.disconnected()),
        };
        match &result {
            Err(IbError::Timeout(waited)) => self.conn.timed_out(generation, *waited),
            Err(e) if e.is_disconnected() => {}
            _ => self.conn.answered(generation),
        }
        result
    }
}

fn ib_contract(spec: &ContractSpec) -> Contract {
    let security_type = match spec.class {
        AssetClass::Stock => SecurityType::Stock,
        AssetClass::Forex => SecurityType::ForexPair,
        AssetClass::Future => SecurityType::Future,
    };
    Contract {
        contract_id: i32::try_from(spec.con_id).unwrap_or(0),
        symbol: Symbol::from(spec.ib_symbol.as_str()),
        security_type,
        exchange: Exchange::from(spec.exchange.as_str()),
        currency: Currency::from(spec.currency.as_str()),
        ..Default::default()
    }
}

fn ib_what(what: WhatToShow) -> IbWhat {
    match what {
        WhatToShow::Midpoint => IbWhat::MidPoint,
        WhatToShow::Bid => IbWhat::Bid,
        WhatToShow::Ask => IbWhat::Ask,
        WhatToShow::BidAsk => IbWhat::BidAsk,
        WhatToShow::Trades | WhatToShow::Unspecified => IbWhat::Trades,
    }
}

fn ib_bar_size(tf: Timeframe) -> BarSize {
    match tf {
        Timeframe::M1 => BarSize::Min,
        Timeframe::M5 => BarSize::Min5,
        Timeframe::M15 => BarSize::Min15,
        Timeframe::M30 => BarSize::Min30,
        Timeframe::H1 => BarSize::Hour,
        Timeframe::H4 => BarSize::Hour4,
        Timeframe::D1 => BarSize::Day,
        Timeframe::W1 => BarSize::Week,
    }
}

fn ib_duration(d: IbDuration) -> IbApiDuration {
    let n = i32::try_from(d.count).unwrap_or(i32::MAX);
    match d.unit {
        'S' => IbApiDuration::seconds(n),
        'D' => IbApiDuration::days(n),
        'W' => IbApiDuration::weeks(n),
        'M' => IbApiDuration::months(n),
        _ => IbApiDuration::years(n),
    }
}

fn trading_hours(use_rth: bool) -> TradingHours {
    if use_rth {
        TradingHours::Regular
    } else {
        TradingHours::Extended
    }
}

/// Daily and weekly bars carry a date; ktrdr stamps them at 00:00 UTC of that date (weekly
/// bars at the Monday of their week, the store's convention).
fn bar_ms(date: &BarTimestamp, tf: Timeframe) -> i64 {
    let ms = match date {
        BarTimestamp::DateTime(t) => t.unix_timestamp() * 1000,
        BarTimestamp::Date(d) => d.midnight().assume_utc().unix_timestamp() * 1000,
    };
    match tf {
        Timeframe::W1 => tf.bar_start(ms),
        _ => ms,
    }
}

#[tonic::async_trait]
impl MarketDataSource for IbapiSource {
    async fn contract_details(&self, spec: &ContractSpec) -> Result<Vec<Instrument>, IbError> {
        let contract = ib_contract(spec);
        let details = self
            .call(
                &spec.symbol,
                self.timeouts.for_bars(0),
                |client| async move { client.contract_details(&contract).await },
            )
            .await?;
        Ok(details
            .iter()
            .map(|d| contract::instrument(spec, d))
            .collect())
    }

    async fn head_timestamp(
        &self,
        spec: &ContractSpec,
        what: WhatToShow,
        use_rth: bool,
    ) -> Result<i64, IbError> {
        let contract = ib_contract(spec);
        let t = self
            .call(
                &spec.symbol,
                self.timeouts.for_bars(0),
                |client| async move {
                    client
                        .head_timestamp(&contract, ib_what(what), trading_hours(use_rth))
                        .await
                },
            )
            .await?;
        Ok(t.unix_timestamp() * 1000)
    }

    async fn historical(
        &self,
        spec: &ContractSpec,
        request: &HistoricalRequest,
    ) -> Result<Bars, IbError> {
        let contract = ib_contract(spec);
        let end = OffsetDateTime::from_unix_timestamp(request.end)
            .map_err(|e| IbError::Internal(format!("bad end time {}: {e}", request.end)))?;
        let tf = request.timeframe;
        let timeout = self.timeouts.for_bars(request.max_bars());
        let data = self
            .call(&spec.symbol, timeout, |client| async move {
                client
                    .historical_data(&contract, ib_bar_size(tf))
                    .duration(ib_duration(request.duration))
                    .ending(end)
                    .what_to_show(ib_what(request.what))
                    .trading_hours(trading_hours(request.use_rth))
                    .fetch()
                    .await
            })
            .await?;
        let mut bars = Bars::with_capacity(data.bars.len());
        for b in &data.bars {
            bars.push(
                bar_ms(&b.date, tf),
                b.open,
                b.high,
                b.low,
                b.close,
                b.volume,
            );
        }
        Ok(bars)
    }

    fn connection(&self) -> (Phase, ConnectionInfo) {
        (self.conn.phase(), self.conn.info())
    }

    fn watch_ready(&self) -> watch::Receiver<bool> {
        self.ready.clone()
    }

    fn address(&self) -> String {
        self.conn.address()
    }

    fn config(&self) -> IbConnectionConfig {
        self.conn.config().clone()
    }
}
