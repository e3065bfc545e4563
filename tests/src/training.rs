//! The TrainingService calls the system tests make, one line each (against a training host or
//! the gateway's TrainingService): a failed call panics with its status. Calls whose error a
//! test checks go through the client directly.

use std::time::Duration;

use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
use ktrdr_proto::training::v1::{
    CancelTrainingRequest, CancelTrainingResponse, GetStatusRequest, GetStatusResponse,
    GetTrainingRequest, ListModelsRequest, ListModelsResponse, ListTrainingsRequest,
    ListTrainingsResponse, StartTrainingRequest, StartTrainingResponse, TrainingEvent,
    TrainingSession, TrainingState, WatchTrainingRequest, training_event::Event,
};
use tonic::transport::Channel;

pub type Client = TrainingServiceClient<Channel>;

/// Longest a whole session or a wait for one may take on a loaded machine.
pub const SESSION_WAIT: Duration = Duration::from_secs(240);

pub async fn start(client: &mut Client, request: StartTrainingRequest) -> StartTrainingResponse {
    client
        .start_training(request)
        .await
        .expect("StartTraining")
        .into_inner()
}

pub async fn get(client: &mut Client, id: &str) -> TrainingSession {
    client
        .get_training(GetTrainingRequest {
            session_id: id.into(),
        })
        .await
        .expect("GetTraining")
        .into_inner()
        .session
        .expect("a session")
}

pub async fn list(client: &mut Client, request: ListTrainingsRequest) -> ListTrainingsResponse {
    client
        .list_trainings(request)
        .await
        .expect("ListTrainings")
        .into_inner()
}

pub async fn list_models(client: &mut Client, request: ListModelsRequest) -> ListModelsResponse {
    client
        .list_models(request)
        .await
        .expect("ListModels")
        .into_inner()
}

pub async fn cancel(client: &mut Client, id: &str, reason: &str) -> CancelTrainingResponse {
    client
        .cancel_training(CancelTrainingRequest {
            session_id: id.into(),
            reason: reason.into(),
        })
        .await
        .expect("CancelTraining")
        .into_inner()
}

pub async fn get_status(client: &mut Client) -> GetStatusResponse {
    client
        .get_status(GetStatusRequest {})
        .await
        .expect("GetStatus")
        .into_inner()
}

/// Every event of the session after `after` until its terminal state (the stream ends there).
pub async fn watch_all(client: &mut Client, id: &str, after: Option<i64>) -> Vec<TrainingEvent> {
    let mut stream = client
        .watch_training(WatchTrainingRequest {
            session_id: id.into(),
            after_sequence: after,
        })
        .await
        .expect("WatchTraining")
        .into_inner();
    let mut events = Vec::new();
    tokio::time::timeout(SESSION_WAIT, async {
        while let Some(item) = stream.message().await.expect("the watch stream") {
            events.push(item.event.expect("an event"));
        }
    })
    .await
    .expect("the watch stream ends after the terminal state");
    events
}

/// Starts a session, follows it to its end and returns it as it ended.
pub async fn train_to_end(client: &mut Client, request: StartTrainingRequest) -> TrainingSession {
    let id = start(client, request).await.session_id;
    watch_all(client, &id, None).await;
    get(client, &id).await
}

/// The states the events passed through, in order.
pub fn states(events: &[TrainingEvent]) -> Vec<TrainingState> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::StateChanged(s)) => Some(s.to_state()),
            _ => None,
        })
        .collect()
}
