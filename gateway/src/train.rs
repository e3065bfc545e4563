//! `TrainStrategy`: make sure the data exists (a load per symbol × timeframe), start the
//! session on a training host (or in-process), and relay its events until it ends; or, with a
//! sweep, train every point of its grid ([`crate::sweep`]) after the same loads.

use std::path::PathBuf;
use std::sync::Arc;

use ktrdr_common::error::ServiceError;
use ktrdr_common::server::ResponseStream;
use ktrdr_proto::gateway::v1::{
    self as pb, DataLoadEvent, LoadDataRequest, LoadMode, TrainingStarted, train_strategy_request,
    train_strategy_response,
};
use ktrdr_proto::training::v1::training_service_server::TrainingService;
use ktrdr_proto::training::v1::{
    StartTrainingRequest, WatchTrainingRequest, start_training_request,
};
use ktrdr_training_host::spec;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use crate::load::LoadManager;
use crate::orchestrator::ServiceOrchestrator;
use crate::sweep::{self, Grid};
use crate::training::TrainingManager;

type Sender = mpsc::Sender<Result<pb::TrainStrategyResponse, Status>>;

pub struct TrainFlow {
    loads: Arc<LoadManager>,
    training: Arc<TrainingManager>,
    strategies_dir: PathBuf,
}

fn event(event: train_strategy_response::Event) -> pb::TrainStrategyResponse {
    point_event(0, event)
}

/// A stream item about sweep point `point` (0: not a sweep's point).
pub(crate) fn point_event(
    point: i32,
    event: train_strategy_response::Event,
) -> pb::TrainStrategyResponse {
    pb::TrainStrategyResponse {
        event: Some(event),
        point,
    }
}

impl TrainFlow {
    pub fn new(
        loads: Arc<LoadManager>,
        training: Arc<TrainingManager>,
        strategies_dir: PathBuf,
    ) -> Arc<Self> {
        Arc::new(Self {
            loads,
            training,
            strategies_dir,
        })
    }

    /// Validates the request (the strategy, symbols, timeframes, overrides, the sweep's grid)
    /// before anything starts, then runs the flow in a task that feeds the caller's stream.
    pub async fn start(
        self: &Arc<Self>,
        request: Request<pb::TrainStrategyRequest>,
    ) -> Result<ResponseStream<pb::TrainStrategyResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let yaml = match &request.strategy {
            Some(train_strategy_request::Strategy::StrategyYaml(yaml)) => yaml.clone(),
            Some(train_strategy_request::Strategy::StrategyName(name)) => {
                spec::read_named_strategy(&self.strategies_dir, name).map_err(Status::from)?
            }
            None => {
                return Err(ServiceError::invalid_argument(
                    "strategy",
                    "give strategy_yaml (the YAML text) or strategy_name (a file under the gateway's strategies/)",
                )
                .into());
            }
        };
        let start = StartTrainingRequest {
            strategy: Some(start_training_request::Strategy::StrategyYaml(yaml)),
            symbols: request.symbols.clone(),
            timeframes: request.timeframes.clone(),
            range: request.range,
            epochs: request.epochs,
            seed: request.seed,
            batch_size: request.batch_size,
            learning_rate: request.learning_rate,
            device: request.device.clone(),
            resume_from_session_id: request.resume_from_session_id.clone(),
            labels: request.labels.clone(),
            hidden_layers: Vec::new(),
        };
        // The device is the training host's to judge (it may have a GPU this process lacks).
        let checked = spec::resolve(
            &StartTrainingRequest {
                device: None,
                ..start.clone()
            },
            &self.strategies_dir,
        )
        .map_err(Status::from)?;
        let data_mode = match LoadMode::try_from(request.data_mode) {
            Ok(LoadMode::Unspecified) => LoadMode::Tail,
            Ok(mode) => mode,
            Err(_) => {
                return Err(ServiceError::invalid_argument(
                    "data_mode",
                    format!("unknown load mode {}", request.data_mode),
                )
                .into());
            }
        };
        let grid = match request.sweep.clone() {
            None => None,
            Some(sweep) => {
                let (base, dir, hosts) = (
                    start.clone(),
                    self.strategies_dir.clone(),
                    self.training.host_count(),
                );
                // Every point is resolved as a training host would: parsing is CPU work.
                let grid =
                    tokio::task::spawn_blocking(move || sweep::grid(&sweep, &base, &dir, hosts))
                        .await
                        .map_err(|e| Status::internal(format!("validating the sweep: {e}")))?
                        .map_err(Status::from)?;
                Some(grid)
            }
        };
        let loads: Vec<LoadDataRequest> = checked
            .symbols
            .iter()
            .flat_map(|symbol| {
                checked
                    .timeframes
                    .iter()
                    .map(move |timeframe| LoadDataRequest {
                        symbol: symbol.clone(),
                        timeframe: timeframe.clone(),
                        mode: data_mode as i32,
                        range: request.range,
                        fill_gaps: request.fill_gaps,
                        ..LoadDataRequest::default()
                    })
            })
            .collect();
        let (tx, rx) = mpsc::channel(64);
        let flow = Arc::clone(self);
        let span = tracing::Span::current();
        ktrdr_common::server::spawn_stream_task(
            tx.clone(),
            "TrainStrategy",
            tracing::Instrument::instrument(
                async move {
                    if let Err(status) = flow.run(loads, start, grid, metadata, &tx).await {
                        let _ = tx.send(Err(status)).await;
                    }
                },
                span,
            ),
        );
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    /// The flow; `Ok` also when the caller went away (nothing more to tell anyone).
    async fn run(
        &self,
        loads: Vec<LoadDataRequest>,
        start: StartTrainingRequest,
        grid: Option<Grid>,
        metadata: MetadataMap,
        tx: &Sender,
    ) -> Result<(), Status> {
        for request in loads {
            if !self.load(&request, tx).await? {
                return Ok(());
            }
        }
        if let Some(grid) = grid {
            let sweep = self.training.sweeps.create();
            sweep::run(
                Arc::clone(&self.training),
                sweep,
                grid,
                metadata,
                tx.clone(),
            )
            .await;
            return Ok(());
        }

        let mut start_request = Request::new(start);
        *start_request.metadata_mut() = metadata.clone();
        let started = self
            .training
            .start_training(start_request)
            .await?
            .into_inner();
        let local = !self.training.route().use_host_service;
        let announce = event(train_strategy_response::Event::TrainingStarted(
            TrainingStarted {
                session_id: started.session_id.clone(),
                state: started.state,
                queue_position: started.queue_position,
                local,
                training_host_url: if local {
                    String::new()
                } else {
                    self.training.host_of(&started.session_id)
                },
            },
        ));
        if tx.send(Ok(announce)).await.is_err() {
            return Ok(());
        }

        let mut watch = Request::new(WatchTrainingRequest {
            session_id: started.session_id,
            after_sequence: None,
        });
        *watch.metadata_mut() = metadata;
        let mut events = self.training.watch_training(watch).await?.into_inner();
        while let Some(item) = events.next().await {
            let Some(training) = item?.event else {
                continue;
            };
            let message = event(train_strategy_response::Event::Training(training));
            if tx.send(Ok(message)).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// One load, relayed; `false` when the caller went away. A load that does not complete
    /// ends the flow with its error.
    async fn load(&self, request: &LoadDataRequest, tx: &Sender) -> Result<bool, Status> {
        let relay = |load_event| {
            let message = event(train_strategy_response::Event::DataLoad(DataLoadEvent {
                symbol: request.symbol.clone(),
                timeframe: request.timeframe.clone(),
                event: Some(load_event),
            }));
            async move { tx.send(Ok(message)).await.is_ok() }
        };
        self.loads
            .run_to_end(request, "training did not start", relay)
            .await
    }
}
