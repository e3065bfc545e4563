//! `ktrdr.gateway.v1.GatewayService`: the gRPC face of the gateway's own work (configuration,
//! statistics, load jobs, orchestrated training, backtest jobs).

use std::sync::Arc;

use ktrdr_common::paging::{Page, Paged};
use ktrdr_common::server::ResponseStream;
use ktrdr_common::status::ProcessIdentity;
use ktrdr_proto::common::v1::JobState;
use ktrdr_proto::gateway::v1::{self as pb, gateway_service_server::GatewayService};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::backtest::BacktestJobs;
use crate::load::LoadManager;
use crate::orchestrator::ServiceOrchestrator;
use crate::train::TrainFlow;

/// Implements `GatewayService` over the gateway's managers.
pub struct GatewayApi {
    managers: Vec<Arc<dyn ServiceOrchestrator>>,
    loads: Arc<LoadManager>,
    train: Arc<TrainFlow>,
    backtests: Arc<BacktestJobs>,
    identity: ProcessIdentity,
}

impl GatewayApi {
    pub fn new(
        managers: Vec<Arc<dyn ServiceOrchestrator>>,
        loads: Arc<LoadManager>,
        train: Arc<TrainFlow>,
        backtests: Arc<BacktestJobs>,
        listen_addr: impl ToString,
    ) -> Self {
        Self {
            managers,
            loads,
            train,
            backtests,
            identity: ProcessIdentity::new("gateway", listen_addr),
        }
    }
}

#[tonic::async_trait]
impl GatewayService for GatewayApi {
    async fn get_configuration(
        &self,
        _request: Request<pb::GetConfigurationRequest>,
    ) -> Result<Response<pb::GetConfigurationResponse>, Status> {
        let mut managers = Vec::with_capacity(self.managers.len());
        for manager in &self.managers {
            managers.push(manager.configuration().await);
        }
        Ok(Response::new(pb::GetConfigurationResponse {
            service: Some(self.identity.service_info()),
            managers,
        }))
    }

    async fn get_statistics(
        &self,
        _request: Request<pb::GetStatisticsRequest>,
    ) -> Result<Response<pb::GetStatisticsResponse>, Status> {
        let mut backends = Vec::with_capacity(self.managers.len());
        for manager in &self.managers {
            backends.extend(manager.statistics().await);
        }
        Ok(Response::new(pb::GetStatisticsResponse {
            backends,
            since_ms: self.identity.service_info().started_at_ms,
        }))
    }

    type LoadDataStream = ResponseStream<pb::LoadDataResponse>;

    async fn load_data(
        &self,
        request: Request<pb::LoadDataRequest>,
    ) -> Result<Response<Self::LoadDataStream>, Status> {
        let (job, joined) = self.loads.start(request.get_ref()).await?;
        Ok(each(job.events(joined), |event| pb::LoadDataResponse {
            event: Some(event),
        }))
    }

    type WatchLoadStream = ResponseStream<pb::WatchLoadResponse>;

    async fn watch_load(
        &self,
        request: Request<pb::WatchLoadRequest>,
    ) -> Result<Response<Self::WatchLoadStream>, Status> {
        let job = self.loads.get(&request.get_ref().job_id)?;
        Ok(each(job.events(false), |event| pb::WatchLoadResponse {
            event: Some(event),
        }))
    }

    async fn get_load(
        &self,
        request: Request<pb::GetLoadRequest>,
    ) -> Result<Response<pb::GetLoadResponse>, Status> {
        let job = self.loads.get(&request.get_ref().job_id)?;
        Ok(Response::new(pb::GetLoadResponse {
            job: Some(job.describe()),
        }))
    }

    async fn list_loads(
        &self,
        request: Request<pb::ListLoadsRequest>,
    ) -> Result<Response<pb::ListLoadsResponse>, Status> {
        let req = request.into_inner();
        let jobs = self
            .loads
            .list(&states(&req.states), &req.symbol, &req.timeframe);
        let page = paged(jobs, req.page_size, &req.page_token)?;
        Ok(Response::new(pb::ListLoadsResponse {
            jobs: page.items,
            next_page_token: page.next_page_token,
            total_size: page.total_size,
        }))
    }

    async fn cancel_load(
        &self,
        request: Request<pb::CancelLoadRequest>,
    ) -> Result<Response<pb::CancelLoadResponse>, Status> {
        let id = &request.get_ref().job_id;
        if let Some(batch) = self.loads.batch(id) {
            return Ok(Response::new(pb::CancelLoadResponse {
                state: batch.cancel().await as i32,
                job: None,
            }));
        }
        let job = self.loads.cancel(id).await?;
        Ok(Response::new(pb::CancelLoadResponse {
            state: job.state,
            job: Some(job),
        }))
    }

    type LoadBatchStream = ResponseStream<pb::LoadBatchResponse>;

    async fn load_batch(
        &self,
        request: Request<pb::LoadBatchRequest>,
    ) -> Result<Response<Self::LoadBatchStream>, Status> {
        self.loads
            .start_batch(request.into_inner())
            .map(Response::new)
    }

    type TrainStrategyStream = ResponseStream<pb::TrainStrategyResponse>;

    async fn train_strategy(
        &self,
        request: Request<pb::TrainStrategyRequest>,
    ) -> Result<Response<Self::TrainStrategyStream>, Status> {
        self.train.start(request).await.map(Response::new)
    }

    type BacktestStrategyStream = ResponseStream<pb::BacktestStrategyResponse>;

    async fn backtest_strategy(
        &self,
        request: Request<pb::BacktestStrategyRequest>,
    ) -> Result<Response<Self::BacktestStrategyStream>, Status> {
        let job = self.backtests.start(request.into_inner()).await?;
        Ok(each(job.events(), |event| pb::BacktestStrategyResponse {
            event: Some(event),
        }))
    }

    type WatchBacktestJobStream = ResponseStream<pb::WatchBacktestJobResponse>;

    async fn watch_backtest_job(
        &self,
        request: Request<pb::WatchBacktestJobRequest>,
    ) -> Result<Response<Self::WatchBacktestJobStream>, Status> {
        let job = self.backtests.get(&request.get_ref().job_id)?;
        Ok(each(job.events(), |event| pb::WatchBacktestJobResponse {
            event: Some(event),
        }))
    }

    async fn get_backtest_job(
        &self,
        request: Request<pb::GetBacktestJobRequest>,
    ) -> Result<Response<pb::GetBacktestJobResponse>, Status> {
        let job = self.backtests.get(&request.get_ref().job_id)?;
        Ok(Response::new(pb::GetBacktestJobResponse {
            job: Some(job.describe()),
        }))
    }

    async fn list_backtest_jobs(
        &self,
        request: Request<pb::ListBacktestJobsRequest>,
    ) -> Result<Response<pb::ListBacktestJobsResponse>, Status> {
        let req = request.into_inner();
        let page = paged(
            self.backtests.list(&states(&req.states)),
            req.page_size,
            &req.page_token,
        )?;
        Ok(Response::new(pb::ListBacktestJobsResponse {
            jobs: page.items,
            next_page_token: page.next_page_token,
            total_size: page.total_size,
        }))
    }

    async fn cancel_backtest_job(
        &self,
        request: Request<pb::CancelBacktestJobRequest>,
    ) -> Result<Response<pb::CancelBacktestJobResponse>, Status> {
        let req = request.into_inner();
        let job = self.backtests.cancel(&req.job_id, &req.reason).await?;
        Ok(Response::new(pb::CancelBacktestJobResponse {
            job: Some(job),
        }))
    }
}

/// A job's events as a call's responses, each wrapped by `wrap`.
fn each<E: 'static, R: Send + 'static>(
    events: impl Stream<Item = Result<E, Status>> + Send + 'static,
    wrap: fn(E) -> R,
) -> Response<ResponseStream<R>> {
    Response::new(Box::pin(events.map(move |event| event.map(wrap))))
}

/// One page of a job list, as every List call of this service pages.
fn paged<T>(items: Vec<T>, page_size: i32, page_token: &str) -> Result<Paged<T>, Status> {
    Ok(Page::usual(page_size, page_token)?.of(items))
}

/// A list filter's job states; unknown and UNSPECIFIED values match nothing extra.
fn states(raw: &[i32]) -> Vec<JobState> {
    raw.iter()
        .map(|s| JobState::try_from(*s).unwrap_or(JobState::Unspecified))
        .filter(|s| *s != JobState::Unspecified)
        .collect()
}
