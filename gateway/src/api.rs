//! `ktrdr.gateway.v1.GatewayService`: the gRPC face of this service.
//!
//! Methods whose issue has not landed yet answer `UNIMPLEMENTED` with a message naming the
//! method and the binary that answered.

use std::sync::Arc;

use ktrdr_common::error::unimplemented_status;
use ktrdr_common::server::ResponseStream;
use ktrdr_common::status::ProcessIdentity;
use ktrdr_proto::gateway::v1::{self as pb, gateway_service_server::GatewayService};
use tonic::{Request, Response, Status};

use crate::orchestrator::ServiceOrchestrator;

const SERVICE: &str = "ktrdr.gateway.v1.GatewayService";

/// Implements `GatewayService` over the gateway's managers.
pub struct GatewayApi {
    server: &'static str,
    managers: Vec<Arc<dyn ServiceOrchestrator>>,
    identity: ProcessIdentity,
}

impl GatewayApi {
    pub fn new(
        server: &'static str,
        managers: Vec<Arc<dyn ServiceOrchestrator>>,
        listen_addr: impl ToString,
    ) -> Self {
        Self {
            server,
            managers,
            identity: ProcessIdentity::new("gateway", listen_addr),
        }
    }

    fn unimplemented<T>(&self, method: &str) -> Result<T, Status> {
        Err(unimplemented_status(SERVICE, method, self.server))
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
            backends.push(manager.statistics().await);
        }
        Ok(Response::new(pb::GetStatisticsResponse {
            backends,
            since_ms: self.identity.service_info().started_at_ms,
        }))
    }

    type LoadDataStream = ResponseStream<pb::LoadDataResponse>;

    async fn load_data(
        &self,
        _request: Request<pb::LoadDataRequest>,
    ) -> Result<Response<Self::LoadDataStream>, Status> {
        self.unimplemented("LoadData")
    }

    type WatchLoadStream = ResponseStream<pb::WatchLoadResponse>;

    async fn watch_load(
        &self,
        _request: Request<pb::WatchLoadRequest>,
    ) -> Result<Response<Self::WatchLoadStream>, Status> {
        self.unimplemented("WatchLoad")
    }

    async fn get_load(
        &self,
        _request: Request<pb::GetLoadRequest>,
    ) -> Result<Response<pb::GetLoadResponse>, Status> {
        self.unimplemented("GetLoad")
    }

    async fn list_loads(
        &self,
        _request: Request<pb::ListLoadsRequest>,
    ) -> Result<Response<pb::ListLoadsResponse>, Status> {
        self.unimplemented("ListLoads")
    }

    async fn cancel_load(
        &self,
        _request: Request<pb::CancelLoadRequest>,
    ) -> Result<Response<pb::CancelLoadResponse>, Status> {
        self.unimplemented("CancelLoad")
    }

    type TrainStrategyStream = ResponseStream<pb::TrainStrategyResponse>;

    async fn train_strategy(
        &self,
        _request: Request<pb::TrainStrategyRequest>,
    ) -> Result<Response<Self::TrainStrategyStream>, Status> {
        self.unimplemented("TrainStrategy")
    }
}
