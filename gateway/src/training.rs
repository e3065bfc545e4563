//! `TrainingManager`: the gateway's `TrainingService`, routed by `USE_TRAINING_HOST_SERVICE`
//! either to `ktrdr-training-host` (one URL, or a comma list balanced across hosts) or to
//! training sessions run in the gateway process (CPU).
//!
//! Predict and EvaluateModel on stored bars load what the store lacks: the training host
//! answers `FAILED_PRECONDITION` `DATA_NOT_COVERED` naming each dataset and range it needs
//! (warm-up before the range, stale or missing history inside it), the gateway loads them with
//! the loads TrainStrategy runs before training, and calls again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use ktrdr_common::client::ChannelPool;
use ktrdr_common::deadline;
use ktrdr_common::error::ServiceError;
use ktrdr_common::paging::Page;
use ktrdr_common::server::ResponseStream;
use ktrdr_proto::common::v1::{JobState, TimeRange, Warning};
use ktrdr_proto::gateway::v1::{BackendStatistics, LoadDataRequest, LoadEvent, LoadMode};
use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
use ktrdr_proto::training::v1::{self as pb, training_service_server::TrainingService};
use ktrdr_training_host::data::{
    BarSource, NOT_COVERED_REASON, Shortfall, shortfalls_from_metadata,
};
use ktrdr_training_host::grpc::TrainingGrpc;
use ktrdr_training_host::manager::SessionManager;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tonic_types::StatusExt;

use crate::config::{GatewayConfig, TRAINING};
use crate::jobs::CANCEL_WAIT;
use crate::listing::{self, HostList};
use crate::load::LoadManager;
use crate::orchestrator::{ServiceOrchestrator, probe};
use crate::replicas::Replicas;
use crate::routing::{Backend, Endpoint, Routed, routed_server_stream, routed_unary};
use crate::stats::BackendStats;
use crate::sweeps::{Sweep, Sweeps};

pub struct TrainingManager {
    routed: Routed<TrainingGrpc>,
    /// Loads what Predict and EvaluateModel find missing.
    loads: Arc<LoadManager>,
    /// The training hosts, one channel each (`None` when training runs in-process).
    replicas: Option<Arc<Replicas>>,
    /// Which host runs each session started through this gateway.
    owners: Mutex<HashMap<String, String>>,
    /// Call statistics per training host (GetStatistics lists each replica).
    per_host: Mutex<HashMap<String, Arc<BackendStats>>>,
    /// TrainStrategy's sweeps, which CancelTraining cancels by their id.
    pub sweeps: Sweeps,
}

type Client = TrainingServiceClient<Channel>;

/// How long GetConfiguration waits for each training host's GetStatus.
const STATUS_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn client(channel: Channel) -> Client {
    TrainingServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

/// Sessions whose host is remembered; older entries are looked up on every host again.
const OWNERS_KEPT: usize = 10_000;

impl TrainingManager {
    pub fn new(
        config: &GatewayConfig,
        pool: &ChannelPool,
        loads: Arc<LoadManager>,
    ) -> Result<Arc<Self>, ServiceError> {
        let route = config.routing.training.clone();
        let mut replicas = None;
        let backend = if route.use_host_service {
            replicas = Some(Replicas::start(
                &route.urls,
                pool.clone(),
                config.calls.dns_refresh,
            )?);
            Backend::remote(&route, pool)?
        } else {
            // In-process sessions read their bars through the data route: the data service, or
            // (with USE_DATA_SERVICE=false) the gateway's own DataService.
            let data_urls = if config.routing.data.use_host_service {
                config.routing.data.urls.clone()
            } else {
                let addr = config.server.listen_addr;
                let host = if addr.ip().is_unspecified() {
                    "127.0.0.1".to_owned()
                } else {
                    addr.ip().to_string()
                };
                vec![format!("http://{host}:{}", addr.port())]
            };
            let sessions = SessionManager::open(
                config.training.clone(),
                BarSource::new(pool.clone(), &data_urls)
                    .with_bearer_token(config.auth_token.as_deref()),
            );
            Backend::Local(TrainingGrpc::new(sessions, config.server.listen_addr))
        };
        Ok(Arc::new(Self {
            routed: Routed::new(&TRAINING, route, backend, config.calls),
            loads,
            replicas,
            owners: Mutex::new(HashMap::new()),
            per_host: Mutex::new(HashMap::new()),
            sweeps: Sweeps::for_sweeps(),
        }))
    }

    fn remember(&self, session_id: &str, url: &str) {
        let mut owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        if owners.len() >= OWNERS_KEPT {
            owners.clear();
        }
        owners.insert(session_id.to_owned(), url.to_owned());
    }

    /// The host that runs `session_id`, as far as this gateway knows.
    pub fn host_of(&self, session_id: &str) -> String {
        self.owner(session_id)
            .unwrap_or_else(|| self.routed.route.urls.join(","))
    }

    /// Training hosts configured; 0 when training runs in the gateway.
    pub fn host_count(&self) -> usize {
        self.replicas.as_ref().map_or(0, |r| r.all().len())
    }

    fn owner(&self, session_id: &str) -> Option<String> {
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(session_id)
            .cloned()
    }

    fn host_stats(&self, url: &str) -> Arc<BackendStats> {
        let mut per_host = self.per_host.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(per_host.entry(url.to_owned()).or_default())
    }

    /// Calls one host, counted for the manager and for that host.
    async fn call<T, F, Fut>(&self, url: &str, channel: Channel, call: F) -> Result<T, Status>
    where
        F: FnOnce(TrainingServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let host = self.host_stats(url);
        let (_in_flight, started) = host.start();
        let result = self
            .routed
            .observe_at(Some(url), call(client(channel)))
            .await;
        host.finish(started.elapsed(), result.as_ref().map(drop));
        result.map(Response::into_inner)
    }

    /// Calls the hosts in turn until one knows the thing asked about (not `NOT_FOUND`);
    /// `owner` goes first. Returns the answer and the host that gave it.
    async fn on_the_host_that_has<T, F, Fut>(
        &self,
        replicas: &Replicas,
        owner: Option<String>,
        call: F,
    ) -> Result<(T, String), Status>
    where
        F: Fn(TrainingServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let mut hosts = replicas.rotation();
        if let Some(owner) = owner
            && let Some(i) = hosts.iter().position(|(u, _)| *u == owner)
        {
            hosts[..=i].rotate_right(1);
        }
        let mut last = Status::not_found("no training host is configured");
        for (url, channel) in hosts {
            match self.call(&url, channel, &call).await {
                Ok(answer) => return Ok((answer, url)),
                Err(status) if status.code() == tonic::Code::NotFound => last = status,
                Err(status) => return Err(status),
            }
        }
        Err(last)
    }

    /// A call about one session (on its host, which is remembered) or, with `None`, about a
    /// model (on the first host that has it).
    async fn on_host_of<T, F, Fut>(
        &self,
        replicas: &Replicas,
        session_id: Option<&str>,
        call: F,
    ) -> Result<T, Status>
    where
        F: Fn(TrainingServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let owner = session_id.and_then(|s| self.owner(s));
        let (answer, url) = self.on_the_host_that_has(replicas, owner, call).await?;
        if let Some(session_id) = session_id {
            self.remember(session_id, &url);
        }
        Ok(answer)
    }

    /// A List call over every host: each host's every page, with what remains of the caller's
    /// deadline, merged ([`listing::merge`]) and cut to the caller's page. `seen` is told of
    /// each item and the host that listed it.
    async fn merged_list<L, F, Fut>(
        &self,
        replicas: &Replicas,
        request: Request<L>,
        call: F,
        seen: impl Fn(&L::Item, &str),
    ) -> Result<Response<L::Answer>, Status>
    where
        L: HostList,
        F: Fn(TrainingServiceClient<Channel>, Request<L>) -> Fut,
        Fut: Future<Output = Result<Response<L::Answer>, Status>>,
    {
        let (metadata, _, message) = request.into_parts();
        let (size, token) = message.paging();
        let page = Page::usual(size, token)?;
        let deadline = self.routed.deadline(&metadata);
        let mut items = Vec::new();
        for (url, channel) in replicas.all() {
            let mut token = String::new();
            loop {
                let request =
                    self.routed
                        .request_until(deadline, &metadata, message.host_page(token));
                let answer = self
                    .call(&url, channel.clone(), |c| call(c, request))
                    .await?;
                let (got, next) = L::items(answer);
                got.iter().for_each(|item| seen(item, &url));
                items.extend(got);
                if next.is_empty() {
                    break;
                }
                token = next;
            }
        }
        Ok(Response::new(L::answer(
            page.of(listing::merge::<L>(items)),
        )))
    }
}

/// A unary method about one session or one model: in-process, or on the training host that has
/// it (the session's known host first), with what remains of the caller's deadline. `$session`
/// picks the session id from the request (`|_| None` for models); its host is remembered.
macro_rules! on_the_host {
    ($manager:ident, $request:ident, $method:ident, $session:expr) => {{
        let Some(replicas) = &$manager.replicas else {
            return routed_unary!(&$manager.routed, client, $request, $method, true);
        };
        let (metadata, _, message) = $request.into_parts();
        let deadline = $manager.routed.deadline(&metadata);
        let session: Option<String> = ($session)(&message);
        $manager
            .on_host_of(replicas, session.as_deref(), |mut c| {
                let request = $manager
                    .routed
                    .request_until(deadline, &metadata, message.clone());
                async move { c.$method(request).await }
            })
            .await
            .map(Response::new)
    }};
}

/// Load-and-retry rounds of one inference call at most: the warm-up range named by the first
/// answer is an estimate that a second round may extend.
const LOAD_ROUNDS: usize = 2;

/// The datasets and ranges a `DATA_NOT_COVERED` answer names; `None` for any other answer.
fn not_covered(status: &Status) -> Option<Vec<Shortfall>> {
    if status.code() != tonic::Code::FailedPrecondition {
        return None;
    }
    let details = status.get_error_details();
    let info = details.error_info()?;
    if info.reason != NOT_COVERED_REASON {
        return None;
    }
    shortfalls_from_metadata(&info.metadata)
}

impl TrainingManager {
    /// Runs an inference call; while the training host answers that the store lacks bars, loads
    /// them (a FULL load of each dataset over the range named, the same loads TrainStrategy
    /// runs) and calls again, up to [`LOAD_ROUNDS`] times. A load that fails, or a round that
    /// leaves the same bars missing, ends with the host's `FAILED_PRECONDITION` (naming the
    /// dataset and range), its message saying what the load answered.
    async fn with_missing_bars_loaded<T, F, Fut>(&self, call: F) -> Result<Response<T>, Status>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        self.with_missing_bars_loaded_reporting(call, |_, _| async { true })
            .await
    }

    /// `with_missing_bars_loaded`, handing each event of the loads it runs to
    /// `on_load` (which returns false when its caller went away).
    pub async fn with_missing_bars_loaded_reporting<T, F, Fut, L, LFut>(
        &self,
        call: F,
        mut on_load: L,
    ) -> Result<Response<T>, Status>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
        L: FnMut(LoadDataRequest, LoadEvent) -> LFut,
        LFut: Future<Output = bool>,
    {
        let mut previous: Option<Vec<Shortfall>> = None;
        for round in 0..=LOAD_ROUNDS {
            let status = match call().await {
                Ok(answer) => return Ok(answer),
                Err(status) => status,
            };
            let Some(missing) = not_covered(&status) else {
                return Err(status);
            };
            if round == LOAD_ROUNDS || previous.as_ref() == Some(&missing) {
                return Err(status);
            }
            for shortfall in &missing {
                let request = LoadDataRequest {
                    symbol: shortfall.symbol.clone(),
                    timeframe: shortfall.timeframe.to_string(),
                    mode: LoadMode::Full as i32,
                    range: Some(TimeRange {
                        start_ms: shortfall.start_ms.max(1),
                        end_ms: shortfall.end_ms,
                    }),
                    fill_gaps: true,
                    ..LoadDataRequest::default()
                };
                tracing::info!(
                    symbol = %request.symbol,
                    timeframe = %request.timeframe,
                    start_ms = shortfall.start_ms,
                    end_ms = shortfall.end_ms,
                    "loading bars an inference call lacks"
                );
                let loaded = self
                    .loads
                    .run_to_end(&request, "the bars inference needs are missing", |event| {
                        on_load(request.clone(), event)
                    })
                    .await;
                if let Err(load) = loaded {
                    return Err(Status::with_details(
                        status.code(),
                        format!(
                            "{} (the gateway's load of {} {} failed: {})",
                            status.message(),
                            request.symbol,
                            request.timeframe,
                            load.message()
                        ),
                        status.details().to_vec().into(),
                    ));
                }
            }
            previous = Some(missing);
        }
        Err(Status::internal("unreachable: the last round returns"))
    }

    async fn evaluate_model_once(
        &self,
        request: Request<pb::EvaluateModelRequest>,
    ) -> Result<Response<pb::EvaluateModelResponse>, Status> {
        on_the_host!(self, request, evaluate_model, |_| None)
    }

    /// RunBacktest on one host (or in process), without loading what is missing.
    pub async fn run_backtest_once(
        &self,
        request: Request<pb::RunBacktestRequest>,
    ) -> Result<Response<ResponseStream<pb::RunBacktestResponse>>, Status> {
        routed_server_stream!(&self.routed, client, request, run_backtest)
    }

    /// Cancels session `session_id` with the caller's `metadata` (auth, deadline, trace).
    pub async fn cancel_session_as(
        &self,
        session_id: &str,
        metadata: &tonic::metadata::MetadataMap,
        reason: &str,
    ) -> Result<(), Status> {
        let mut request = Request::new(pb::CancelTrainingRequest {
            session_id: session_id.to_owned(),
            reason: reason.to_owned(),
        });
        *request.metadata_mut() = metadata.clone();
        self.cancel_session(request).await.map(drop)
    }

    /// Cancels every session of `sweep` and keeps its other points from starting; the sweep's
    /// state after a short wait for it to end (CANCELLED while it is still ending). The first
    /// failure to cancel a session is the answer, after every session was tried.
    async fn cancel_sweep(
        &self,
        sweep: &Sweep,
        metadata: &tonic::metadata::MetadataMap,
        reason: &str,
    ) -> Result<pb::TrainingState, Status> {
        let mut failure = None;
        for session_id in sweep.cancel() {
            if let Err(status) = self.cancel_session_as(&session_id, metadata, reason).await {
                failure.get_or_insert(status);
            }
        }
        if let Some(status) = failure {
            return Err(status);
        }
        Ok(match sweep.life.finished_within(CANCEL_WAIT).await {
            JobState::Completed => pb::TrainingState::Completed,
            JobState::Failed => pb::TrainingState::Failed,
            _ => pb::TrainingState::Cancelled,
        })
    }

    /// Cancels one session on its host (or in process).
    pub async fn cancel_session(
        &self,
        request: Request<pb::CancelTrainingRequest>,
    ) -> Result<Response<pb::CancelTrainingResponse>, Status> {
        // Cancelling is idempotent, so it may be retried.
        on_the_host!(
            self,
            request,
            cancel_training,
            |m: &pb::CancelTrainingRequest| Some(m.session_id.clone())
        )
    }

    async fn predict_once(
        &self,
        request: Request<pb::PredictRequest>,
    ) -> Result<Response<pb::PredictResponse>, Status> {
        on_the_host!(self, request, predict, |_| None)
    }
}

#[tonic::async_trait]
impl TrainingService for TrainingManager {
    async fn start_training(
        &self,
        request: Request<pb::StartTrainingRequest>,
    ) -> Result<Response<pb::StartTrainingResponse>, Status> {
        let Some(replicas) = &self.replicas else {
            return routed_unary!(&self.routed, client, request, start_training, false);
        };
        // New sessions go round robin; a host that cannot be reached is skipped.
        let (metadata, _, message) = request.into_parts();
        let deadline = self.routed.deadline(&metadata);
        let mut last = Status::unavailable("no training host is configured");
        for (url, channel) in replicas.rotation() {
            let request = self
                .routed
                .request_until(deadline, &metadata, message.clone());
            match self
                .call(&url, channel, |mut c| async move {
                    c.start_training(request).await
                })
                .await
            {
                Ok(started) => {
                    self.remember(&started.session_id, &url);
                    return Ok(Response::new(started));
                }
                Err(status) if status.code() == tonic::Code::Unavailable => last = status,
                Err(status) => return Err(status),
            }
        }
        Err(last)
    }

    type WatchTrainingStream = ResponseStream<pb::WatchTrainingResponse>;

    async fn watch_training(
        &self,
        request: Request<pb::WatchTrainingRequest>,
    ) -> Result<Response<Self::WatchTrainingStream>, Status> {
        let Some(replicas) = &self.replicas else {
            return routed_server_stream!(&self.routed, client, request, watch_training);
        };
        let (metadata, _, message) = request.into_parts();
        let session_id = message.session_id.clone();
        let owner = self.owner(&session_id);
        let (stream, url) = self
            .on_the_host_that_has(replicas, owner, |mut c| {
                let request = deadline::forward(&metadata, message.clone());
                async move { c.watch_training(request).await }
            })
            .await?;
        self.remember(&session_id, &url);
        Ok(Response::new(self.routed.relay(&url, stream)))
    }

    async fn get_training(
        &self,
        request: Request<pb::GetTrainingRequest>,
    ) -> Result<Response<pb::GetTrainingResponse>, Status> {
        on_the_host!(self, request, get_training, |m: &pb::GetTrainingRequest| {
            Some(m.session_id.clone())
        })
    }

    async fn list_trainings(
        &self,
        request: Request<pb::ListTrainingsRequest>,
    ) -> Result<Response<pb::ListTrainingsResponse>, Status> {
        match &self.replicas {
            Some(r) if r.all().len() > 1 => {
                let call = |mut c: Client, r| async move { c.list_trainings(r).await };
                let remember = |s: &pb::TrainingSession, url: &str| {
                    self.remember(&s.session_id, url);
                };
                self.merged_list(r, request, call, remember).await
            }
            _ => routed_unary!(&self.routed, client, request, list_trainings, true),
        }
    }

    async fn cancel_training(
        &self,
        request: Request<pb::CancelTrainingRequest>,
    ) -> Result<Response<pb::CancelTrainingResponse>, Status> {
        // A sweep's id cancels every session of the sweep.
        if let Some(sweep) = self.sweeps.get(&request.get_ref().session_id) {
            let (metadata, _, message) = request.into_parts();
            let state = self
                .cancel_sweep(&sweep, &metadata, &message.reason)
                .await?;
            return Ok(Response::new(pb::CancelTrainingResponse {
                state: state as i32,
                checkpoint_epoch: 0,
                session: None,
            }));
        }
        self.cancel_session(request).await
    }

    async fn evaluate_model(
        &self,
        request: Request<pb::EvaluateModelRequest>,
    ) -> Result<Response<pb::EvaluateModelResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        self.with_missing_bars_loaded(|| {
            self.evaluate_model_once(Request::from_parts(
                metadata.clone(),
                tonic::Extensions::default(),
                message.clone(),
            ))
        })
        .await
    }

    async fn predict(
        &self,
        request: Request<pb::PredictRequest>,
    ) -> Result<Response<pb::PredictResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        self.with_missing_bars_loaded(|| {
            self.predict_once(Request::from_parts(
                metadata.clone(),
                tonic::Extensions::default(),
                message.clone(),
            ))
        })
        .await
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        match &self.replicas {
            Some(r) if r.all().len() > 1 => {
                let call = |mut c: Client, r| async move { c.list_models(r).await };
                self.merged_list(r, request, call, |_, _| ()).await
            }
            _ => routed_unary!(&self.routed, client, request, list_models, true),
        }
    }

    async fn get_model(
        &self,
        request: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::GetModelResponse>, Status> {
        on_the_host!(self, request, get_model, |_| None)
    }

    type RunBacktestStream = ResponseStream<pb::RunBacktestResponse>;

    async fn run_backtest(
        &self,
        request: Request<pb::RunBacktestRequest>,
    ) -> Result<Response<Self::RunBacktestStream>, Status> {
        let (metadata, _, message) = request.into_parts();
        self.with_missing_bars_loaded(|| {
            self.run_backtest_once(Request::from_parts(
                metadata.clone(),
                tonic::Extensions::default(),
                message.clone(),
            ))
        })
        .await
    }

    async fn get_backtest(
        &self,
        request: Request<pb::GetBacktestRequest>,
    ) -> Result<Response<pb::GetBacktestResponse>, Status> {
        on_the_host!(self, request, get_backtest, |_| None)
    }

    async fn list_backtests(
        &self,
        request: Request<pb::ListBacktestsRequest>,
    ) -> Result<Response<pb::ListBacktestsResponse>, Status> {
        match &self.replicas {
            Some(r) if r.all().len() > 1 => {
                let call = |mut c: Client, r| async move { c.list_backtests(r).await };
                self.merged_list(r, request, call, |_, _| ()).await
            }
            _ => routed_unary!(&self.routed, client, request, list_backtests, true),
        }
    }

    type ReadBacktestTableStream = ResponseStream<pb::ReadBacktestTableResponse>;

    async fn read_backtest_table(
        &self,
        request: Request<pb::ReadBacktestTableRequest>,
    ) -> Result<Response<Self::ReadBacktestTableStream>, Status> {
        let Some(replicas) = &self.replicas else {
            return routed_server_stream!(&self.routed, client, request, read_backtest_table);
        };
        let (metadata, _, message) = request.into_parts();
        let deadline = self.routed.deadline(&metadata);
        let (stream, url) = self
            .on_the_host_that_has(replicas, None, |mut c| {
                let request = self
                    .routed
                    .request_until(deadline, &metadata, message.clone());
                async move { c.read_backtest_table(request).await }
            })
            .await?;
        Ok(Response::new(self.routed.relay(&url, stream)))
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        routed_unary!(&self.routed, client, request, get_status, true)
    }
}

#[tonic::async_trait]
impl ServiceOrchestrator for TrainingManager {
    fn endpoint(&self) -> &Endpoint {
        &self.routed
    }

    /// MODELS_NOT_SHARED when the training hosts keep their models on different volumes: a
    /// model id saved on two of them then names two models, and a model call is answered by
    /// whichever host it reaches.
    async fn warnings(&self) -> Vec<Warning> {
        let Some(replicas) = &self.replicas else {
            return Vec::new();
        };
        // Every host at once; a host that does not answer is reported by its health and
        // cannot be compared.
        let asked = replicas.all().into_iter().map(|(url, channel)| async move {
            let mut request = Request::new(pb::GetStatusRequest {});
            request.set_timeout(STATUS_PROBE_TIMEOUT);
            let status = client(channel).get_status(request).await.ok()?;
            let volume = status.into_inner().models_volume;
            (!volume.is_empty()).then_some((volume, url))
        });
        let mut volumes: Vec<(String, String)> = futures_util::future::join_all(asked)
            .await
            .into_iter()
            .flatten()
            .collect();
        volumes.sort();
        let groups: Vec<Vec<&str>> = volumes
            .chunk_by(|a, b| a.0 == b.0)
            .map(|hosts| hosts.iter().map(|(_, url)| url.as_str()).collect())
            .collect();
        if groups.len() < 2 {
            return Vec::new();
        }
        let hosts: Vec<String> = groups.iter().map(|g| g.join(" + ")).collect();
        vec![Warning {
            code: "MODELS_NOT_SHARED".to_owned(),
            message: format!(
                "the training hosts keep their models on {} different volumes ({}): the same \
                 model id can name a different model on each, and model calls go to whichever \
                 host answers; give every training host one shared KTRDR_MODELS_DIR volume",
                groups.len(),
                hosts.join("; ")
            ),
            time_ms: ktrdr_common::status::now_ms(),
            metadata: HashMap::from([("volumes".to_owned(), groups.len().to_string())]),
        }]
    }

    /// One entry per training host, each with its own calls, latencies and health.
    async fn statistics(&self) -> Vec<BackendStatistics> {
        let Some(replicas) = &self.replicas else {
            let (healthy, _) = self.health().await;
            return vec![
                self.stats()
                    .backend(self.manager(), &self.target(), healthy),
            ];
        };
        let mut out = Vec::new();
        for (url, channel) in replicas.all() {
            let (healthy, _) = probe(channel, self.service()).await;
            out.push(self.host_stats(&url).backend(self.manager(), &url, healthy));
        }
        out
    }
}
