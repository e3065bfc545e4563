//! Training bars, streamed from the data service (`DATA_SERVICE_URL`) with `ReadBars`.

use std::time::Duration;

use ktrdr_common::client::ChannelPool;
use ktrdr_market::{Bars, Timeframe};
use ktrdr_proto::bars::BarsProto;
use ktrdr_proto::common::v1::{BarEncoding, TimeRange, bar_batch};
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::data::v1::{GetStatusRequest, ReadBarsRequest};
use tonic::Code;

use crate::error::{Result, TrainingError};

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
        let mut client = self.client()?;
        let request = ReadBarsRequest {
            symbol: symbol.to_owned(),
            timeframe: timeframe.to_owned(),
            range: Some(TimeRange {
                start_ms: if start_ms == i64::MIN { 0 } else { start_ms },
                end_ms: if end_ms == i64::MAX { 0 } else { end_ms },
            }),
            // Columns: no Arrow decoder needed here, and the store converts cheaply.
            encoding: BarEncoding::Columns as i32,
            ..Default::default()
        };
        let missing = || TrainingError::MissingData {
            symbol: symbol.to_owned(),
            timeframe: timeframe.to_owned(),
            url: self.urls.clone(),
        };
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
        if bars.is_empty() {
            return Err(missing());
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
