//! `TrainingManager`: the gateway's `TrainingService`, routed by `USE_TRAINING_HOST_SERVICE`
//! either to `ktrdr-training-host` (one URL, or a comma list balanced across hosts) or to
//! training sessions run in the gateway process (CPU).

use std::sync::Arc;

use ktrdr_common::client::ChannelPool;
use ktrdr_common::error::ServiceError;
use ktrdr_common::server::ResponseStream;
use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
use ktrdr_proto::training::v1::{self as pb, training_service_server::TrainingService};
use ktrdr_training_host::data::BarSource;
use ktrdr_training_host::grpc::TrainingGrpc;
use ktrdr_training_host::manager::SessionManager;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::config::{GatewayConfig, Route};
use crate::orchestrator::ServiceOrchestrator;
use crate::routing::{Backend, Routed, routed_server_stream, routed_unary};
use crate::stats::BackendStats;

pub struct TrainingManager {
    routed: Routed<TrainingGrpc>,
}

fn client(channel: Channel) -> TrainingServiceClient<Channel> {
    TrainingServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

impl TrainingManager {
    pub fn new(config: &GatewayConfig, pool: &ChannelPool) -> Result<Arc<Self>, ServiceError> {
        let route = config.routing.training.clone();
        let backend = if route.use_host_service {
            let url = route.urls.join(",");
            Backend::Remote {
                channel: pool.channel(&url)?,
                url,
            }
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
                BarSource::new(pool.clone(), &data_urls),
            );
            Backend::Local(TrainingGrpc::new(sessions, config.server.listen_addr))
        };
        let hint = "start ktrdr-training-host or set USE_TRAINING_HOST_SERVICE=false to train in the gateway";
        Ok(Arc::new(Self {
            routed: Routed::new(route, backend, "Training host", hint),
        }))
    }
}

#[tonic::async_trait]
impl TrainingService for TrainingManager {
    async fn start_training(
        &self,
        request: Request<pb::StartTrainingRequest>,
    ) -> Result<Response<pb::StartTrainingResponse>, Status> {
        routed_unary!(&self.routed, client, request, start_training, false)
    }

    type WatchTrainingStream = ResponseStream<pb::WatchTrainingResponse>;

    async fn watch_training(
        &self,
        request: Request<pb::WatchTrainingRequest>,
    ) -> Result<Response<Self::WatchTrainingStream>, Status> {
        routed_server_stream!(&self.routed, client, request, watch_training)
    }

    async fn get_training(
        &self,
        request: Request<pb::GetTrainingRequest>,
    ) -> Result<Response<pb::GetTrainingResponse>, Status> {
        routed_unary!(&self.routed, client, request, get_training, true)
    }

    async fn list_trainings(
        &self,
        request: Request<pb::ListTrainingsRequest>,
    ) -> Result<Response<pb::ListTrainingsResponse>, Status> {
        routed_unary!(&self.routed, client, request, list_trainings, true)
    }

    async fn cancel_training(
        &self,
        request: Request<pb::CancelTrainingRequest>,
    ) -> Result<Response<pb::CancelTrainingResponse>, Status> {
        // Cancelling is idempotent, so it may be retried.
        routed_unary!(&self.routed, client, request, cancel_training, true)
    }

    async fn evaluate_model(
        &self,
        request: Request<pb::EvaluateModelRequest>,
    ) -> Result<Response<pb::EvaluateModelResponse>, Status> {
        routed_unary!(&self.routed, client, request, evaluate_model, true)
    }

    async fn predict(
        &self,
        request: Request<pb::PredictRequest>,
    ) -> Result<Response<pb::PredictResponse>, Status> {
        routed_unary!(&self.routed, client, request, predict, true)
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        routed_unary!(&self.routed, client, request, list_models, true)
    }

    async fn get_model(
        &self,
        request: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::GetModelResponse>, Status> {
        routed_unary!(&self.routed, client, request, get_model, true)
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
    fn manager(&self) -> &'static str {
        "training"
    }
    fn service(&self) -> &'static str {
        "ktrdr.training.v1.TrainingService"
    }
    fn env_prefix(&self) -> &'static str {
        "TRAINING_HOST_SERVICE"
    }
    fn default_url(&self) -> &'static str {
        "http://localhost:50053"
    }
    fn route(&self) -> &Route {
        &self.routed.route
    }
    fn stats(&self) -> &BackendStats {
        &self.routed.stats
    }
    fn channel(&self) -> Option<Channel> {
        self.routed.channel()
    }
}
