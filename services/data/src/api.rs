//! `ktrdr.data.v1.DataService`: the gRPC face of the store.
//!
//! Handlers check their arguments, then run the store's blocking work on the blocking pool;
//! streams are fed through bounded channels, so a slow client slows the reader instead of
//! growing memory.

use std::sync::Arc;

use ktrdr_common::error::{ServiceError, enum_field};
use ktrdr_common::market::{symbol_field, time_range, timeframe_field};
use ktrdr_common::paging::Page;
use ktrdr_common::server::ResponseStream;
use ktrdr_common::status::{ProcessIdentity, now_ms};
use ktrdr_market::Timeframe;
use ktrdr_proto::common::v1 as common;
use ktrdr_proto::data::v1::{self as pb, data_service_server::DataService};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::calendar::Calendar;
use crate::coverage;
use crate::csv_io;
use crate::import::{ChunkReader, ImportPlan};
use crate::store::{Store, StoreError, WriteOutcome};
use crate::validate::{self, MAX_ISSUES_RETURNED};
use ktrdr_market::{Bars, Resampler};
use ktrdr_proto::bars::BarsProto;

/// Bars per streamed batch unless the caller asks otherwise: ~200 kB as columns, so a relay
/// (the gateway) holds little per stream.
const DEFAULT_BATCH_BARS: usize = 4_096;
const MAX_BATCH_BARS: i32 = 1_000_000;
/// Batches buffered between the reading thread and the network.
const STREAM_BUFFER: usize = 2;
/// Store readers (ReadBars, ExportCsv, Resample) running at once; each holds a Parquet row
/// group's pages (a few MB). More streams wait for a free reader, so a burst of callers costs
/// time, not memory. A caller that stops reading keeps its reader until its deadline or
/// disconnect.
const MAX_READERS: usize = 32;
const DEFAULT_PAGE_SIZE: usize = 100;
const DEFAULT_MAX_GAPS: usize = 1_000;
/// Bars per ExportCsv chunk: about 1 MB of text.
const EXPORT_CHUNK_BARS: usize = 16_384;
const MAX_PAGE_SIZE: usize = 1_000;

/// Implements `DataService` over a [`Store`].
#[derive(Debug, Clone)]
pub struct DataApi {
    store: Arc<Store>,
    identity: Arc<ProcessIdentity>,
    readers: Arc<tokio::sync::Semaphore>,
}

/// Runs store work on the blocking pool and maps its errors.
async fn blocking<T, F>(work: F) -> Result<T, Status>
where
    F: FnOnce() -> Result<T, ServiceError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Status::from),
        Err(e) => Err(ServiceError::internal(format!("store task failed: {e}")).into()),
    }
}

fn coverage_summary(outcome: &WriteOutcome) -> pb::CoverageSummary {
    pb::CoverageSummary {
        first_ms: outcome.first_ms,
        last_ms: outcome.last_ms,
        bar_count: outcome.bar_count as i64,
    }
}

fn batch_size(requested: Option<i32>) -> Result<usize, ServiceError> {
    match requested {
        None | Some(0) => Ok(DEFAULT_BATCH_BARS),
        Some(n) if (1..=MAX_BATCH_BARS).contains(&n) => Ok(n as usize),
        Some(n) => Err(ServiceError::invalid_argument(
            "max_bars_per_batch",
            format!("{n} is outside 1..={MAX_BATCH_BARS}"),
        )),
    }
}

fn encoding_error(e: arrow_schema::ArrowError) -> Status {
    ServiceError::internal(format!("cannot encode bars: {e}")).into()
}

impl DataApi {
    pub fn new(store: Arc<Store>, listen_addr: impl ToString) -> Self {
        Self {
            store,
            identity: Arc::new(ProcessIdentity::new("data", listen_addr)),
            readers: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
        }
    }

    /// Runs a stream's store reader on the blocking pool once one of the [`MAX_READERS`] is
    /// free; it keeps the reader until it returns.
    fn spawn_reader(&self, reader: impl FnOnce() + Send + 'static) {
        let readers = Arc::clone(&self.readers);
        tokio::spawn(async move {
            let Ok(slot) = readers.acquire_owned().await else {
                return;
            };
            let _ = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                reader();
            })
            .await;
        });
    }

    /// Collects a WriteBars stream: the first message names the dataset and the options.
    async fn collect_write(
        stream: &mut Streaming<pb::WriteBarsRequest>,
    ) -> Result<(String, Timeframe, bool, String, Bars), Status> {
        let mut header: Option<(String, Timeframe, bool, String)> = None;
        let mut bars = Bars::default();
        while let Some(message) = stream.message().await? {
            let repair =
                enum_field::<pb::ValidationMode>("validation_mode", message.validation_mode)?
                    == pb::ValidationMode::Repair;
            let batch = message.batch.unwrap_or_default();
            let (symbol, timeframe) = match &header {
                None => {
                    let symbol = symbol_field("batch.symbol", &batch.symbol)?;
                    let timeframe = timeframe_field("batch.timeframe", &batch.timeframe)?;
                    let source = if message.source.is_empty() {
                        "write".to_owned()
                    } else {
                        message.source.clone()
                    };
                    header = Some((symbol.clone(), timeframe, repair, source));
                    (symbol, timeframe)
                }
                Some((symbol, timeframe, ..)) => (symbol.clone(), *timeframe),
            };
            let same_symbol = batch.symbol.is_empty()
                || symbol_field("batch.symbol", &batch.symbol).ok().as_deref()
                    == Some(symbol.as_str());
            let same_timeframe =
                batch.timeframe.is_empty() || Timeframe::parse(&batch.timeframe) == Some(timeframe);
            if !(same_symbol && same_timeframe) {
                return Err(ServiceError::invalid_argument(
                    "batch",
                    format!(
                        "every batch of one WriteBars call must be for {symbol} {timeframe}, got {} {}",
                        batch.symbol, batch.timeframe
                    ),
                )
                .into());
            }
            let decoded = Bars::from_batch_payload(batch.payload)
                .map_err(|e| ServiceError::invalid_argument("batch.payload", e.to_string()))?;
            bars.extend(&decoded);
        }
        let Some((symbol, timeframe, repair, source)) = header else {
            return Err(ServiceError::invalid_argument(
                "batch",
                "the stream was empty: the first message must carry a batch with symbol and timeframe",
            )
            .into());
        };
        Ok((symbol, timeframe, repair, source, bars))
    }

    /// Validates (rejecting, or repairing when `repair`) and stores decoded bars: the work of
    /// WriteBars once its stream is read, also called directly by the gateway when it runs the
    /// store in process.
    pub async fn write(
        &self,
        symbol: String,
        timeframe: Timeframe,
        repair: bool,
        source: String,
        bars: Bars,
    ) -> Result<pb::WriteBarsResponse, Status> {
        let store = self.store.clone();
        let received = bars.len() as i64;
        let (symbol_out, response_symbol) = (symbol.clone(), symbol);
        let (outcome, report) = blocking(move || {
            let (clean, report) = validate::validate(bars, timeframe, repair, now_ms());
            if !repair && report.has_errors() {
                return Err(report.rejection(&format!("WriteBars {symbol_out} {timeframe}")));
            }
            let outcome = store
                .dataset(&symbol_out, timeframe)?
                .write(&clean, &source)?;
            Ok((outcome, report))
        })
        .await?;
        Ok(pb::WriteBarsResponse {
            symbol: response_symbol,
            timeframe: timeframe.to_string(),
            bars_received: received,
            bars_written: outcome.bars_written as i64,
            bars_replaced: outcome.bars_replaced as i64,
            bars_repaired: report.bars_repaired,
            bars_dropped: report.bars_dropped,
            issues: report.returned_issues(MAX_ISSUES_RETURNED),
            issues_total: report.issues.len() as i64,
            coverage: Some(coverage_summary(&outcome)),
        })
    }
}

#[tonic::async_trait]
impl DataService for DataApi {
    async fn write_bars(
        &self,
        request: Request<Streaming<pb::WriteBarsRequest>>,
    ) -> Result<Response<pb::WriteBarsResponse>, Status> {
        let mut stream = request.into_inner();
        let (symbol, timeframe, repair, source, bars) = Self::collect_write(&mut stream).await?;
        self.write(symbol, timeframe, repair, source, bars)
            .await
            .map(Response::new)
    }

    type ReadBarsStream = ResponseStream<pb::ReadBarsResponse>;

    async fn read_bars(
        &self,
        request: Request<pb::ReadBarsRequest>,
    ) -> Result<Response<Self::ReadBarsStream>, Status> {
        let req = request.into_inner();
        let symbol = symbol_field("symbol", &req.symbol)?;
        let timeframe = timeframe_field("timeframe", &req.timeframe)?;
        let (start, end) = time_range("range", req.range.as_ref())?;
        let batch_bars = batch_size(req.max_bars_per_batch)?;
        let limit = match req.limit {
            None | Some(0) => None,
            Some(n) if n > 0 => Some(n as u64),
            Some(n) => {
                return Err(
                    ServiceError::invalid_argument("limit", format!("{n} is negative")).into(),
                );
            }
        };
        let encoding = enum_field::<common::BarEncoding>("encoding", req.encoding)?;
        let from_end = req.from_end;

        let store = self.store.clone();
        let symbol_for_read = symbol.clone();
        let (snapshot, total) = blocking(move || {
            let snapshot = store
                .dataset(&symbol_for_read, timeframe)?
                .existing_snapshot()?;
            let count = snapshot.count_range(start, end)?;
            Ok((snapshot, limit.map_or(count, |l| l.min(count))))
        })
        .await?;

        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        self.spawn_reader(move || {
            let tf = timeframe.to_string();
            let (mut index, mut so_far) = (0i32, 0i64);
            let mut emit =
                |payload: Result<common::bar_batch::Payload, arrow_schema::ArrowError>,
                 count: usize|
                 -> bool {
                    so_far += count as i64;
                    let item = payload
                        .map(|payload| pb::ReadBarsResponse {
                            batch: Some(common::BarBatch {
                                symbol: symbol.clone(),
                                timeframe: tf.clone(),
                                payload: Some(payload),
                                bar_count: count as i64,
                            }),
                            batch_index: index,
                            bars_so_far: so_far,
                            total_bars: total as i64,
                        })
                        .map_err(encoding_error);
                    index += 1;
                    tx.blocking_send(item).is_ok()
                };
            let result = match (from_end, limit) {
                (true, Some(limit)) => snapshot.read_tail(start, end, limit).map(|tail| {
                    let mut offset = 0;
                    while offset < tail.len() {
                        let to = (offset + batch_bars).min(tail.len());
                        let chunk = tail.slice(offset..to);
                        if !emit(chunk.into_payload(encoding), to - offset) {
                            break;
                        }
                        offset = to;
                    }
                    tail.len() as u64
                }),
                // Arrow out: hand Parquet's record batches straight to the IPC writer.
                _ if encoding == common::BarEncoding::ArrowIpc => {
                    snapshot.read_range_batches(start, end, batch_bars, limit, &mut |batch| {
                        let payload = ktrdr_market::arrow::record_batch_to_ipc(&batch)
                            .map(|ipc| common::bar_batch::Payload::ArrowIpc(ipc.into()));
                        emit(payload, batch.num_rows())
                    })
                }
                _ => snapshot.read_range(start, end, batch_bars, limit, &mut |bars| {
                    let count = bars.len();
                    emit(bars.into_payload(encoding), count)
                }),
            };
            match result {
                Ok(0) => {
                    emit(Bars::default().into_payload(encoding), 0);
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(ServiceError::from(e).into()));
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_coverage(
        &self,
        request: Request<pb::GetCoverageRequest>,
    ) -> Result<Response<pb::GetCoverageResponse>, Status> {
        let req = request.into_inner();
        let symbol = symbol_field("symbol", &req.symbol)?;
        let timeframe = timeframe_field("timeframe", &req.timeframe)?;
        let (start, end) = time_range("range", req.range.as_ref())?;
        let max_gaps = match req.max_gaps {
            None | Some(0) => DEFAULT_MAX_GAPS,
            Some(n) if n > 0 => n as usize,
            Some(n) => {
                return Err(
                    ServiceError::invalid_argument("max_gaps", format!("{n} is negative")).into(),
                );
            }
        };
        let store = self.store.clone();
        let calendar = Calendar::for_symbol(&symbol);
        let symbol_for_read = symbol.clone();
        let (timestamps, analysis) = blocking(move || {
            let snapshot = store
                .dataset(&symbol_for_read, timeframe)?
                .existing_snapshot()?;
            let timestamps = snapshot.timestamps(start, end)?;
            let mut analysis = coverage::analyse(calendar, timeframe, &timestamps);
            coverage::add_edge_gaps(&mut analysis, calendar, timeframe, &timestamps, start, end);
            Ok((timestamps, analysis))
        })
        .await?;
        let mut gaps: Vec<pb::Gap> = analysis
            .gaps
            .into_iter()
            .filter(|g| !req.unexpected_only || g.kind() == pb::GapKind::Unexpected)
            .collect();
        let gaps_truncated = gaps.len() > max_gaps;
        gaps.truncate(max_gaps);
        Ok(Response::new(pb::GetCoverageResponse {
            symbol,
            timeframe: timeframe.to_string(),
            first_ms: timestamps.first().copied().unwrap_or(0),
            last_ms: timestamps.last().copied().unwrap_or(0),
            bar_count: timestamps.len() as i64,
            covered: analysis.covered,
            gaps,
            gap_counts: analysis.counts,
            gaps_truncated,
            calendar: calendar.name().to_owned(),
            time_zone: calendar.time_zone().to_owned(),
        }))
    }

    async fn list_datasets(
        &self,
        request: Request<pb::ListDatasetsRequest>,
    ) -> Result<Response<pb::ListDatasetsResponse>, Status> {
        let req = request.into_inner();
        let symbol = if req.symbol.is_empty() {
            None
        } else {
            Some(symbol_field("symbol", &req.symbol)?)
        };
        let timeframe = if req.timeframe.is_empty() {
            None
        } else {
            Some(timeframe_field("timeframe", &req.timeframe)?)
        };
        let page = Page::parse(
            req.page_size,
            &req.page_token,
            DEFAULT_PAGE_SIZE,
            MAX_PAGE_SIZE,
        )?;
        let store = self.store.clone();
        let all = blocking(move || Ok(store.list()?)).await?;
        let matching: Vec<_> = all
            .into_iter()
            .filter(|d| symbol.as_ref().is_none_or(|s| &d.symbol == s))
            .filter(|d| timeframe.is_none_or(|t| d.timeframe == t))
            .collect();
        let page = page.of(matching);
        let datasets = page
            .items
            .into_iter()
            .map(|d| pb::DatasetInfo {
                symbol: d.symbol,
                timeframe: d.timeframe.to_string(),
                first_ms: d.manifest.first_ms().unwrap_or(0),
                last_ms: d.manifest.last_ms().unwrap_or(0),
                bar_count: d.manifest.rows() as i64,
                size_bytes: d.manifest.bytes() as i64,
                updated_at_ms: d.manifest.updated_at_ms,
                partitions: d.manifest.partitions.len() as i32,
                source: d.manifest.source.clone(),
            })
            .collect();
        Ok(Response::new(pb::ListDatasetsResponse {
            datasets,
            next_page_token: page.next_page_token,
            total_size: page.total_size,
        }))
    }

    async fn delete_dataset(
        &self,
        request: Request<pb::DeleteDatasetRequest>,
    ) -> Result<Response<pb::DeleteDatasetResponse>, Status> {
        let req = request.into_inner();
        let symbol = symbol_field("symbol", &req.symbol)?;
        let timeframes: Vec<Timeframe> = if req.timeframe.is_empty() {
            Timeframe::ALL.to_vec()
        } else {
            vec![timeframe_field("timeframe", &req.timeframe)?]
        };
        let store = self.store.clone();
        let explicit = !req.timeframe.is_empty();
        let response = blocking(move || {
            let mut response = pb::DeleteDatasetResponse::default();
            for timeframe in timeframes {
                let (bars, bytes) = store.dataset(&symbol, timeframe)?.delete()?;
                if bars > 0 {
                    response.bars_deleted += bars as i64;
                    response.bytes_deleted += bytes as i64;
                    response.timeframes.push(timeframe.to_string());
                }
            }
            if response.timeframes.is_empty() {
                let what = if explicit {
                    format!("{symbol} {}", req.timeframe)
                } else {
                    format!("{symbol} (any timeframe)")
                };
                return Err(ServiceError::not_found(
                    "DATASET_NOT_FOUND",
                    format!("no dataset {what} in the store"),
                )
                .with_metadata("symbol", symbol));
            }
            Ok(response)
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn import_csv(
        &self,
        request: Request<Streaming<pb::ImportCsvRequest>>,
    ) -> Result<Response<pb::ImportCsvResponse>, Status> {
        let mut stream = request.into_inner();
        let options = match stream.message().await?.and_then(|m| m.part) {
            Some(pb::import_csv_request::Part::Options(options)) => options,
            _ => {
                return Err(ServiceError::invalid_argument(
                    "options",
                    "the first message must carry the import options (then the file's bytes as chunks, or options.server_path)",
                )
                .into());
            }
        };
        let plan = ImportPlan::from_options(&options, self.store.root())?;

        // The file comes either from the server's disk or as chunks that follow the options.
        let input: Box<dyn std::io::Read + Send> = match &plan.server_file {
            Some(path) => {
                if stream.message().await?.is_some() {
                    return Err(ServiceError::invalid_argument(
                        "options.server_path",
                        "names a file on the server, so no chunks may follow the options; send the file either as chunks or as options.server_path, not both",
                    )
                    .into());
                }
                Box::new(std::fs::File::open(path).map_err(|e| {
                    ServiceError::not_found(
                        "FILE_NOT_FOUND",
                        format!("cannot open {}: {e}", path.display()),
                    )
                })?)
            }
            None => {
                let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                tokio::spawn(async move {
                    loop {
                        let chunk = match stream.message().await {
                            Ok(Some(pb::ImportCsvRequest {
                                part: Some(pb::import_csv_request::Part::Chunk(bytes)),
                            })) => Ok(bytes),
                            Ok(Some(_)) => Err(std::io::Error::other(
                                "only the first message may carry options",
                            )),
                            Ok(None) => break,
                            Err(status) => Err(std::io::Error::other(status.message().to_owned())),
                        };
                        let failed = chunk.is_err();
                        if tx.send(chunk).await.is_err() || failed {
                            break;
                        }
                    }
                });
                Box::new(ChunkReader {
                    rx,
                    chunk: Vec::new(),
                    pos: 0,
                })
            }
        };

        let store = self.store.clone();
        let response = blocking(move || plan.run(input, &store)).await?;
        Ok(Response::new(response))
    }

    type ExportCsvStream = ResponseStream<pb::ExportCsvResponse>;

    async fn export_csv(
        &self,
        request: Request<pb::ExportCsvRequest>,
    ) -> Result<Response<Self::ExportCsvStream>, Status> {
        let req = request.into_inner();
        let symbol = symbol_field("symbol", &req.symbol)?;
        let timeframe = timeframe_field("timeframe", &req.timeframe)?;
        let (start, end) = time_range("range", req.range.as_ref())?;
        let store = self.store.clone();
        let snapshot =
            blocking(move || Ok(store.dataset(&symbol, timeframe)?.existing_snapshot()?)).await?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        self.spawn_reader(move || {
            let mut rows = 0i64;
            let mut chunk = csv_io::HEADER.as_bytes().to_vec();
            let result = snapshot.read_range(start, end, EXPORT_CHUNK_BARS, None, &mut |bars| {
                rows += bars.len() as i64;
                csv_io::write_rows(&bars, &mut chunk);
                let item = pb::ExportCsvResponse {
                    chunk: std::mem::take(&mut chunk),
                    rows_so_far: rows,
                };
                tx.blocking_send(Ok(item)).is_ok()
            });
            match result {
                Ok(0) => {
                    let _ = tx.blocking_send(Ok(pb::ExportCsvResponse {
                        chunk,
                        rows_so_far: 0,
                    }));
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(ServiceError::from(e).into()));
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ResampleStream = ResponseStream<pb::ResampleResponse>;

    async fn resample(
        &self,
        request: Request<pb::ResampleRequest>,
    ) -> Result<Response<Self::ResampleStream>, Status> {
        let req = request.into_inner();
        let symbol = symbol_field("symbol", &req.symbol)?;
        let source = timeframe_field("source_timeframe", &req.source_timeframe)?;
        let target = timeframe_field("target_timeframe", &req.target_timeframe)?;
        if !(target > source && target.is_multiple_of(source)) {
            return Err(ServiceError::invalid_argument(
                "target_timeframe",
                format!("{target} is not a coarser multiple of {source}; resampling only aggregates into larger bars"),
            )
            .into());
        }
        let (start, end) = time_range("range", req.range.as_ref())?;
        let batch_bars = batch_size(req.max_bars_per_batch)?;
        let encoding = enum_field::<common::BarEncoding>("encoding", req.encoding)?;
        let store = self.store.clone();
        let symbol_for_read = symbol.clone();
        let snapshot = blocking(move || {
            Ok(store
                .dataset(&symbol_for_read, source)?
                .existing_snapshot()?)
        })
        .await?;
        let store = self.store.clone();
        let persist = req.store;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        self.spawn_reader(move || {
            let tf = target.to_string();
            let mut resampler = Resampler::new(target);
            let mut pending = Bars::default();
            let mut kept = Bars::default();
            let (mut index, mut so_far) = (0i32, 0i64);
            let mut emit = |bars: Bars, stored: Option<pb::CoverageSummary>| -> bool {
                so_far += bars.len() as i64;
                let item = bars
                    .into_batch(&symbol, &tf, encoding)
                    .map(|batch| pb::ResampleResponse {
                        batch: Some(batch),
                        batch_index: index,
                        bars_so_far: so_far,
                        stored,
                    })
                    .map_err(encoding_error);
                index += 1;
                tx.blocking_send(item).is_ok()
            };
            let read = snapshot.read_range(start, end, DEFAULT_BATCH_BARS, None, &mut |chunk| {
                pending.extend(&resampler.push(&chunk));
                if pending.len() < batch_bars {
                    return true;
                }
                let full = std::mem::take(&mut pending);
                if persist {
                    kept.extend(&full);
                }
                emit(full, None)
            });
            if let Err(e) = read {
                let _ = tx.blocking_send(Err(ServiceError::from(e).into()));
                return;
            }
            pending.extend(&resampler.finish());
            let stored = if persist {
                kept.extend(&pending);
                match store
                    .dataset(&symbol, target)
                    .and_then(|ds| ds.write(&kept, &format!("resample:{source}")))
                {
                    Ok(outcome) => Some(coverage_summary(&outcome)),
                    Err(e) => {
                        let _ = tx.blocking_send(Err(ServiceError::from(e).into()));
                        return;
                    }
                }
            } else {
                None
            };
            emit(pending, stored);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn validate_bars(
        &self,
        request: Request<pb::ValidateBarsRequest>,
    ) -> Result<Response<pb::ValidateBarsResponse>, Status> {
        let req = request.into_inner();
        let cap = match req.max_issues {
            None | Some(0) => MAX_ISSUES_RETURNED,
            Some(n) if n > 0 => n as usize,
            Some(n) => {
                return Err(ServiceError::invalid_argument(
                    "max_issues",
                    format!("{n} is negative"),
                )
                .into());
            }
        };
        let store = self.store.clone();
        let (bars, timeframe): (Option<Bars>, Timeframe);
        let mut dataset: Option<(String, i64, i64)> = None;
        match req.source {
            Some(pb::validate_bars_request::Source::Bars(batch)) => {
                timeframe = timeframe_field("bars.timeframe", &batch.timeframe)?;
                bars =
                    Some(Bars::from_batch_payload(batch.payload).map_err(|e| {
                        ServiceError::invalid_argument("bars.payload", e.to_string())
                    })?);
            }
            Some(pb::validate_bars_request::Source::Dataset(reference)) => {
                timeframe = timeframe_field("dataset.timeframe", &reference.timeframe)?;
                let symbol = symbol_field("dataset.symbol", &reference.symbol)?;
                let (start, end) = time_range("dataset.range", reference.range.as_ref())?;
                dataset = Some((symbol, start, end));
                bars = None;
            }
            None => {
                return Err(
                    ServiceError::invalid_argument("source", "set either bars or dataset").into(),
                );
            }
        }
        let report = blocking(move || {
            let bars = match (bars, dataset) {
                (Some(bars), _) => bars,
                (None, Some((symbol, start, end))) => store
                    .dataset(&symbol, timeframe)?
                    .existing_snapshot()?
                    .read_all(start, end)?,
                (None, None) => Bars::default(),
            };
            let checked = bars.len();
            let (_, report) = validate::validate(bars, timeframe, false, now_ms());
            Ok((checked, report))
        })
        .await?;
        let (checked, report) = report;
        Ok(Response::new(pb::ValidateBarsResponse {
            bars_checked: checked as i64,
            valid: !report.has_errors(),
            issues: report.returned_issues(cap),
            issues_total: report.issues.len() as i64,
            counts: report.counts(),
        }))
    }

    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let store = self.store.clone();
        let datasets = blocking(move || Ok(store.list()?)).await?;
        Ok(Response::new(pb::GetStatusResponse {
            service: Some(self.identity.service_info()),
            data_dir: self.store.root().display().to_string(),
            dataset_count: datasets.len() as i64,
            total_bars: datasets.iter().map(|d| d.manifest.rows() as i64).sum(),
            total_size_bytes: datasets.iter().map(|d| d.manifest.bytes() as i64).sum(),
        }))
    }
}

impl From<StoreError> for Status {
    fn from(err: StoreError) -> Self {
        ServiceError::from(err).into()
    }
}
