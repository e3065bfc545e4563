//! A `TrainingService` that answers every method with `UNIMPLEMENTED`: what the gateway mounts
//! until its TrainingManager (proxy to the training host, or in-process sessions) lands. The
//! training host itself serves [`crate::grpc::TrainingGrpc`].
//!
//! Methods whose issue has not landed yet answer `UNIMPLEMENTED` with a message naming the
//! method and the binary that answered.

use ktrdr_common::error::unimplemented_status;
use ktrdr_common::server::ResponseStream;
use ktrdr_proto::training::v1::{self as pb, training_service_server::TrainingService};
use tonic::{Request, Response, Status};

const SERVICE: &str = "ktrdr.training.v1.TrainingService";

/// Implements `TrainingService`; `server` names the binary in error messages.
#[derive(Debug, Clone)]
pub struct TrainingApi {
    server: &'static str,
}

impl TrainingApi {
    pub fn new(server: &'static str) -> Self {
        Self { server }
    }

    fn unimplemented<T>(&self, method: &str) -> Result<T, Status> {
        Err(unimplemented_status(SERVICE, method, self.server))
    }
}

#[tonic::async_trait]
impl TrainingService for TrainingApi {
    async fn start_training(
        &self,
        _request: Request<pb::StartTrainingRequest>,
    ) -> Result<Response<pb::StartTrainingResponse>, Status> {
        self.unimplemented("StartTraining")
    }

    type WatchTrainingStream = ResponseStream<pb::WatchTrainingResponse>;

    async fn watch_training(
        &self,
        _request: Request<pb::WatchTrainingRequest>,
    ) -> Result<Response<Self::WatchTrainingStream>, Status> {
        self.unimplemented("WatchTraining")
    }

    async fn get_training(
        &self,
        _request: Request<pb::GetTrainingRequest>,
    ) -> Result<Response<pb::GetTrainingResponse>, Status> {
        self.unimplemented("GetTraining")
    }

    async fn list_trainings(
        &self,
        _request: Request<pb::ListTrainingsRequest>,
    ) -> Result<Response<pb::ListTrainingsResponse>, Status> {
        self.unimplemented("ListTrainings")
    }

    async fn cancel_training(
        &self,
        _request: Request<pb::CancelTrainingRequest>,
    ) -> Result<Response<pb::CancelTrainingResponse>, Status> {
        self.unimplemented("CancelTraining")
    }

    async fn evaluate_model(
        &self,
        _request: Request<pb::EvaluateModelRequest>,
    ) -> Result<Response<pb::EvaluateModelResponse>, Status> {
        self.unimplemented("EvaluateModel")
    }

    async fn predict(
        &self,
        _request: Request<pb::PredictRequest>,
    ) -> Result<Response<pb::PredictResponse>, Status> {
        self.unimplemented("Predict")
    }

    async fn list_models(
        &self,
        _request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        self.unimplemented("ListModels")
    }

    async fn get_model(
        &self,
        _request: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::GetModelResponse>, Status> {
        self.unimplemented("GetModel")
    }

    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        self.unimplemented("GetStatus")
    }
}
