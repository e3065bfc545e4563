//! `ktrdr.training.v1.TrainingService` over a [`SessionManager`]: argument checks and message
//! mapping only; the logic is in the manager and the registry.

use std::collections::BTreeMap;
use std::sync::Arc;

use ktrdr_common::error::enum_field;
use ktrdr_common::market::{symbol_field, time_range};
use ktrdr_common::paging::Page;
use ktrdr_common::server::{ResponseStream, spawn_stream_task};
use ktrdr_common::status::ProcessIdentity;
use ktrdr_market::{Bars, Timeframe};
use ktrdr_proto::common::v1::bar_batch;
use ktrdr_proto::training::v1::{self as pb, training_service_server::TrainingService};
use ktrdr_strategy::artifacts::file;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::backtest;
use crate::convert;
use crate::error::TrainingError;
use crate::manager::{ListFilter, SessionManager};
use crate::registry;

/// Implements `TrainingService` with real sessions.
#[derive(Clone)]
pub struct TrainingGrpc {
    manager: SessionManager,
    identity: Arc<ProcessIdentity>,
    backtests: Arc<backtest::Index>,
}

impl TrainingGrpc {
    pub fn new(manager: SessionManager, listen_addr: impl ToString) -> Self {
        Self {
            manager,
            identity: Arc::new(ProcessIdentity::new("training-host", listen_addr)),
            backtests: Arc::default(),
        }
    }
}

/// Runs blocking registry work (model files, burn) off the runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, TrainingError> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Status::from),
        Err(e) => Err(TrainingError::internal(format!("worker failed: {e}")).into()),
    }
}

fn page(size: i32, token: &str) -> Result<Page, Status> {
    Ok(Page::usual(size, token)?)
}

fn model_pb(e: &registry::ModelEntry) -> pb::Model {
    let m = &e.metadata;
    pb::Model {
        model_id: e.model_id.clone(),
        strategy_name: m.strategy_name.clone(),
        version: e.version as i32,
        symbols: m.symbols.clone(),
        timeframes: m.timeframes.iter().map(ToString::to_string).collect(),
        created_at_ms: m.created_at_ms,
        training_session_id: e
            .session
            .as_ref()
            .map(|s| s.session_id.clone())
            .unwrap_or_default(),
        metrics: e.metrics.as_ref().map(convert::metrics),
        feature_names: e.feature_names.clone(),
        path: e.dir.display().to_string(),
        size_bytes: e.size_bytes as i64,
        device: e
            .session
            .as_ref()
            .map_or_else(|| "cpu".to_owned(), |s| s.device.clone()),
        training_range: e
            .session
            .as_ref()
            .map(|s| convert::range(s.loaded_first_ms, s.loaded_end_ms)),
        parameter_count: e.parameters as i64,
        fit_range: e.session.as_ref().map(|s| {
            let (start, end) = s.fit_range();
            convert::range(start, end)
        }),
        labels: e
            .session
            .as_ref()
            .map(|s| {
                s.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn timeframes_of(entry: &registry::ModelEntry) -> Vec<Timeframe> {
    entry.metadata.timeframes.clone()
}

/// A device with its load and memory now, for GetStatus.
fn device_pb(load: &crate::manager::DeviceLoad) -> pb::DeviceInfo {
    let device = &load.device;
    let bytes = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    pb::DeviceInfo {
        kind: if device.compute.is_cuda() {
            pb::DeviceKind::Cuda
        } else {
            pb::DeviceKind::Cpu
        } as i32,
        id: device.id(),
        name: device.name.clone(),
        memory_total_bytes: bytes(device.memory_total_bytes),
        memory_used_bytes: device.memory_used_bytes().map_or(0, bytes),
        sessions: i32::try_from(load.sessions).unwrap_or(i32::MAX),
        max_sessions: i32::try_from(load.limit).unwrap_or(i32::MAX),
    }
}

#[tonic::async_trait]
impl TrainingService for TrainingGrpc {
    async fn start_training(
        &self,
        request: Request<pb::StartTrainingRequest>,
    ) -> Result<Response<pb::StartTrainingResponse>, Status> {
        let (record, position) = self.manager.start(request.get_ref()).await?;
        Ok(Response::new(pb::StartTrainingResponse {
            session_id: record.id,
            state: convert::state(record.state) as i32,
            queue_position: position as i32,
        }))
    }

    type WatchTrainingStream = ResponseStream<pb::WatchTrainingResponse>;

    async fn watch_training(
        &self,
        request: Request<pb::WatchTrainingRequest>,
    ) -> Result<Response<Self::WatchTrainingStream>, Status> {
        let req = request.into_inner();
        let id = req.session_id.trim().to_owned();
        let rx = self.manager.watch(&id, req.after_sequence.unwrap_or(0))?;
        let stream = ReceiverStream::new(rx).map(move |e| {
            Ok(pb::WatchTrainingResponse {
                event: Some(convert::event(&id, &e)),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_training(
        &self,
        request: Request<pb::GetTrainingRequest>,
    ) -> Result<Response<pb::GetTrainingResponse>, Status> {
        let (record, position) = self.manager.get(&request.get_ref().session_id)?;
        Ok(Response::new(pb::GetTrainingResponse {
            session: Some(convert::session(&record, position)),
        }))
    }

    async fn list_trainings(
        &self,
        request: Request<pb::ListTrainingsRequest>,
    ) -> Result<Response<pb::ListTrainingsResponse>, Status> {
        let req = request.into_inner();
        let page = page(req.page_size, &req.page_token)?;
        let filter = ListFilter {
            states: req.states().filter_map(convert::state_from_pb).collect(),
            strategy_name: req.strategy_name.trim().to_owned(),
            symbol: req.symbol.trim().to_owned(),
        };
        let (sessions, total) = self.manager.list(&filter, page.offset, page.limit);
        Ok(Response::new(pb::ListTrainingsResponse {
            next_page_token: page.next_token(total),
            sessions: sessions
                .iter()
                .map(|(r, p)| convert::session(r, *p))
                .collect(),
            total_size: total as i32,
        }))
    }

    async fn cancel_training(
        &self,
        request: Request<pb::CancelTrainingRequest>,
    ) -> Result<Response<pb::CancelTrainingResponse>, Status> {
        let req = request.into_inner();
        let record = self.manager.cancel(&req.session_id, &req.reason).await?;
        Ok(Response::new(pb::CancelTrainingResponse {
            state: convert::state(record.state) as i32,
            checkpoint_epoch: record.last_checkpoint_epoch as i32,
            session: Some(convert::session(&record, 0)),
        }))
    }

    async fn evaluate_model(
        &self,
        request: Request<pb::EvaluateModelRequest>,
    ) -> Result<Response<pb::EvaluateModelResponse>, Status> {
        let req = request.into_inner();
        let models_dir = self.manager.models_dir();
        let id = req.model_id.clone();
        let entry = blocking(move || registry::get(&models_dir, &id)).await?;
        let symbols = if req.symbols.is_empty() {
            entry.metadata.symbols.clone()
        } else {
            req.symbols
                .iter()
                .enumerate()
                .map(|(i, s)| symbol_field(&format!("symbols[{i}]"), s))
                .collect::<Result<Vec<_>, _>>()?
        };
        let zero_range = req
            .range
            .as_ref()
            .is_none_or(|r| r.start_ms == 0 && r.end_ms == 0);
        let (start, end) = if zero_range {
            // The model's own test split: the same bars as training, split the same way.
            entry
                .session
                .as_ref()
                .map_or((i64::MIN, i64::MAX), |s| (s.start_ms, s.end_ms))
        } else {
            time_range("range", req.range.as_ref())?
        };
        // The model's own test split is rebuilt from the bars training read (no warm-up
        // before them, as in training); any other range gets its warm-up from before it.
        let warmup = if zero_range {
            BTreeMap::new()
        } else {
            let dir = entry.dir.clone();
            blocking(move || registry::warmup_of(&dir)).await?
        };
        let bars = self
            .manager
            .data()
            .read_window(&symbols, &timeframes_of(&entry), &warmup, start, end)
            .await?;
        let dir = entry.dir.clone();
        let test_split_only = zero_range && req.symbols.is_empty();
        let compute = self.manager.inference_compute();
        let metrics = blocking(move || {
            registry::evaluate_model(&dir, &bars, test_split_only, start.max(0), &compute)
        })
        .await?;
        Ok(Response::new(pb::EvaluateModelResponse {
            model_id: entry.model_id,
            bars_evaluated: metrics.test_samples as i64,
            metrics: Some(convert::metrics(&metrics)),
        }))
    }

    async fn predict(
        &self,
        request: Request<pb::PredictRequest>,
    ) -> Result<Response<pb::PredictResponse>, Status> {
        let req = request.into_inner();
        let models_dir = self.manager.models_dir();
        let id = req.model_id.clone();
        let entry = blocking(move || registry::get(&models_dir, &id)).await?;
        let timeframes = timeframes_of(&entry);
        // With a range start: exactly the base bars from it on are predicted.
        let mut from_ms = None;
        let (symbol, mut bars) = match req.input {
            Some(pb::predict_request::Input::Dataset(d)) => {
                let symbol = symbol_field("dataset.symbol", &d.symbol)?;
                let (start, end) = time_range("dataset.range", d.range.as_ref())?;
                let dir = entry.dir.clone();
                let warmup = blocking(move || registry::warmup_of(&dir)).await?;
                let mut read = self
                    .manager
                    .data()
                    .read_window(
                        std::slice::from_ref(&symbol),
                        &timeframes,
                        &warmup,
                        start,
                        end,
                    )
                    .await?;
                let bars = read.pop().map(|s| s.bars).unwrap_or_default();
                from_ms = (start != i64::MIN).then_some(start);
                (symbol, bars)
            }
            Some(pb::predict_request::Input::Bars(given)) => {
                let mut symbol = String::new();
                let mut bars = BTreeMap::new();
                let mut tf_index = BTreeMap::new();
                for (i, batch) in given.batches.into_iter().enumerate() {
                    let field = format!("bars.batches[{i}]");
                    let tf: Timeframe = batch.timeframe.trim().parse().map_err(|_| {
                        TrainingError::invalid(
                            format!("{field}.timeframe"),
                            format!("unknown timeframe {:?}", batch.timeframe),
                        )
                    })?;
                    if symbol.is_empty() {
                        symbol = symbol_field(&format!("{field}.symbol"), &batch.symbol)?;
                    }
                    let Some(bar_batch::Payload::Columns(c)) = batch.payload else {
                        return Err(TrainingError::invalid(
                            format!("{field}.payload"),
                            "send bars as columns (Arrow IPC is not accepted by Predict)",
                        )
                        .into());
                    };
                    let b = Bars {
                        timestamp_ms: c.timestamp_ms,
                        open: c.open,
                        high: c.high,
                        low: c.low,
                        close: c.close,
                        volume: c.volume,
                    };
                    b.validate().map_err(|e| {
                        TrainingError::invalid(format!("{field}.payload"), e.to_string())
                    })?;
                    bars.insert(tf, b);
                    tf_index.insert(tf, i);
                }
                registry::complete_timeframes(&mut bars, &timeframes)?;
                bars.retain(|tf, _| timeframes.contains(tf));
                crate::data::check_given_bars(&bars, |tf| {
                    tf_index.get(&tf).map_or_else(
                        || format!("bars ({tf}, resampled)"),
                        |i| format!("bars.batches[{i}]"),
                    )
                })?;
                (symbol, bars)
            }
            None => {
                return Err(TrainingError::invalid("input", "give bars or a dataset").into());
            }
        };
        bars.retain(|tf, _| timeframes.contains(tf));
        let dir = entry.dir.clone();
        let predict_symbol = symbol.clone();
        let compute = self.manager.inference_compute();
        let predictions = blocking(move || {
            let saved = ktrdr_strategy::artifacts::LoadedModel::load(&dir, &compute)?;
            let predictions = saved.predict(&predict_symbol, &bars)?;
            let Some(from_ms) = from_ms else {
                return Ok(predictions);
            };
            // The warm-up bars are inputs only; every bar of the range must get a prediction.
            let base = saved.features.base_timeframe;
            let wanted = bars.get(&base).map_or(0, |b| {
                b.timestamp_ms.iter().filter(|&&t| t >= from_ms).count()
            });
            let predictions: Vec<_> = predictions
                .into_iter()
                .filter(|p| p.timestamp_ms >= from_ms)
                .collect();
            if predictions.len() != wanted {
                return Err(TrainingError::internal(format!(
                    "{} of the {wanted} {base} bars of the range have incomplete features \
                     after the warm-up",
                    wanted - predictions.len().min(wanted)
                )));
            }
            Ok(predictions)
        })
        .await?;
        let mut out = pb::PredictResponse {
            model_id: entry.model_id.clone(),
            symbol,
            timeframe: entry.metadata.timeframe.to_string(),
            ..Default::default()
        };
        for p in predictions {
            out.timestamp_ms.push(p.timestamp_ms);
            out.signals.push(convert::signal(p.signal.index()) as i32);
            out.prob_buy.push(p.probabilities[0]);
            out.prob_hold.push(p.probabilities[1]);
            out.prob_sell.push(p.probabilities[2]);
        }
        Ok(Response::new(out))
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let req = request.into_inner();
        let page = page(req.page_size, &req.page_token)?;
        let models_dir = self.manager.models_dir();
        let all = blocking(move || Ok(registry::list(&models_dir))).await?;
        let matching: Vec<_> = all
            .iter()
            .filter(|e| {
                req.strategy_name.is_empty() || e.metadata.strategy_name == req.strategy_name
            })
            .filter(|e| {
                req.symbol.is_empty()
                    || e.metadata
                        .symbols
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(req.symbol.trim()))
            })
            .filter(|e| {
                req.timeframe.is_empty()
                    || e.metadata
                        .timeframes
                        .iter()
                        .any(|t| t.to_string() == req.timeframe.trim())
            })
            .collect();
        let page = page.of(matching);
        Ok(Response::new(pb::ListModelsResponse {
            models: page.items.into_iter().map(model_pb).collect(),
            next_page_token: page.next_page_token,
            total_size: page.total_size,
        }))
    }

    async fn get_model(
        &self,
        request: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::GetModelResponse>, Status> {
        let models_dir = self.manager.models_dir();
        let id = request.into_inner().model_id;
        let (entry, config_json, metadata_json, strategy_yaml) = blocking(move || {
            let entry = registry::get(&models_dir, &id)?;
            let read =
                |name: &str| std::fs::read_to_string(entry.dir.join(name)).unwrap_or_default();
            let config_json = read(file::CONFIG);
            let metadata_json = read(file::METADATA);
            // Written by the training session next to the model, verbatim.
            let strategy_yaml = read("strategy.yaml");
            Ok((entry, config_json, metadata_json, strategy_yaml))
        })
        .await?;
        Ok(Response::new(pb::GetModelResponse {
            model: Some(model_pb(&entry)),
            strategy_yaml,
            config_json,
            metadata_json,
        }))
    }

    type RunBacktestStream = ResponseStream<pb::RunBacktestResponse>;

    async fn run_backtest(
        &self,
        request: Request<pb::RunBacktestRequest>,
    ) -> Result<Response<Self::RunBacktestStream>, Status> {
        let req = request.into_inner();
        let models_dir = self.manager.models_dir();
        let dir = models_dir.clone();
        let plan = tokio::task::spawn_blocking(move || backtest::plan_request(&dir, &req))
            .await
            .map_err(|e| TrainingError::internal(format!("worker failed: {e}")))??;
        // Bars first, before the stream starts: what the store lacks is the call's answer
        // (DATA_NOT_COVERED), which the gateway acts on.
        let mut inputs = Vec::with_capacity(plan.segments.len());
        for segment in &plan.segments {
            let dir = segment.model.dir.clone();
            let warmup = blocking(move || registry::warmup_of(&dir)).await?;
            let mut read = self
                .manager
                .data()
                .read_window(
                    std::slice::from_ref(&plan.symbol),
                    &segment.model.metadata.timeframes,
                    &warmup,
                    segment.start_ms,
                    segment.end_ms,
                )
                .await?;
            inputs.push(read.pop().ok_or_else(|| {
                TrainingError::internal(format!("no bars were read for {}", plan.symbol))
            })?);
        }
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let progress = tx.clone();
        let owner = self.manager.staging_owner();
        let compute = self.manager.inference_compute();
        spawn_stream_task(tx.clone(), "the backtest", async move {
            let answer = tokio::task::spawn_blocking(move || {
                let mut report = |stage: &str, done: i64, total: i64, equity: f64| {
                    let event = pb::RunBacktestResponse {
                        event: Some(pb::run_backtest_response::Event::Progress(
                            pb::BacktestProgress {
                                stage: stage.to_owned(),
                                bars_done: done,
                                bars_total: total,
                                equity,
                            },
                        )),
                    };
                    progress.blocking_send(Ok(event)).is_ok()
                };
                backtest::run(&models_dir, &owner, &plan, inputs, &compute, &mut report)
            })
            .await;
            let item = match answer {
                Ok(Ok(result)) => Ok(pb::RunBacktestResponse {
                    event: Some(pb::run_backtest_response::Event::Result(result)),
                }),
                Ok(Err(e)) => Err(Status::from(e)),
                Err(e) => {
                    Err(TrainingError::internal(format!("backtest worker failed: {e}")).into())
                }
            };
            let _ = tx.send(item).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_backtest(
        &self,
        request: Request<pb::GetBacktestRequest>,
    ) -> Result<Response<pb::GetBacktestResponse>, Status> {
        let models_dir = self.manager.models_dir();
        let id = request.into_inner().backtest_id;
        let result = blocking(move || backtest::get(&models_dir, id.trim())).await?;
        Ok(Response::new(pb::GetBacktestResponse {
            result: Some(result),
        }))
    }

    async fn list_backtests(
        &self,
        request: Request<pb::ListBacktestsRequest>,
    ) -> Result<Response<pb::ListBacktestsResponse>, Status> {
        let req = request.into_inner();
        let page = page(req.page_size, &req.page_token)?;
        let models_dir = self.manager.models_dir();
        let index = Arc::clone(&self.backtests);
        let page =
            blocking(move || Ok(index.page(&models_dir, &req.model_id, &req.symbol, page))).await?;
        Ok(Response::new(pb::ListBacktestsResponse {
            results: page.items,
            next_page_token: page.next_page_token,
            total_size: page.total_size,
        }))
    }

    type ReadBacktestTableStream = ResponseStream<pb::ReadBacktestTableResponse>;

    async fn read_backtest_table(
        &self,
        request: Request<pb::ReadBacktestTableRequest>,
    ) -> Result<Response<Self::ReadBacktestTableStream>, Status> {
        let req = request.into_inner();
        let table = enum_field::<pb::BacktestTable>("table", req.table)?;
        let format = enum_field::<pb::TableFormat>("format", req.format)?;
        let models_dir = self.manager.models_dir();
        let id = req.backtest_id.trim().to_owned();
        let bytes = blocking(move || backtest::read_table(&models_dir, &id, table, format)).await?;
        let chunks: Vec<Result<pb::ReadBacktestTableResponse, Status>> = bytes
            .chunks(backtest::CHUNK_BYTES)
            .map(|chunk| {
                Ok(pb::ReadBacktestTableResponse {
                    chunk: chunk.to_vec(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let (running, queued) = self.manager.load();
        let models_dir = self.manager.models_dir();
        let dir = models_dir.clone();
        // Counting models and reading each device's memory (`/proc`, the CUDA driver) block.
        let manager = self.manager.clone();
        let (model_count, devices) = blocking(move || {
            let devices: Vec<pb::DeviceInfo> = manager.devices().iter().map(device_pb).collect();
            Ok((registry::count(&dir), devices))
        })
        .await?;
        let default_id = self.manager.default_device().id();
        let device = devices.iter().find(|d| d.id == default_id).cloned();
        Ok(Response::new(pb::GetStatusResponse {
            service: Some(self.identity.service_info()),
            devices,
            device,
            max_concurrent_sessions: self.manager.config().max_concurrent_sessions as i32,
            running: running as i32,
            queued: queued as i32,
            models_dir: models_dir.display().to_string(),
            model_count: model_count as i64,
            models_volume: self.manager.models_volume().to_owned(),
        }))
    }
}
