//! `ktrdr-gateway` as a real process: routing of the public DataService to `ktrdr-data` or to
//! an in-process store, the configuration and statistics it reports, and a backend that is down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ktrdr_proto::common::v1::BarColumns;
use ktrdr_proto::data::v1::ListDatasetsRequest;
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::gateway::v1::ManagerMode;
use ktrdr_system_tests::fixtures::simple_hourly_bars;
use ktrdr_system_tests::gateway::{backend, manager};
use ktrdr_system_tests::stack::{free_port, start_data, start_training_host};
use ktrdr_system_tests::{ServiceProcess, read_bars, store_bars, store_training_bars};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// Writes 50 hourly AAPL bars through the DataService at `channel` and reads them back.
async fn write_and_read(channel: Channel) -> BarColumns {
    let written = store_bars(channel.clone(), "AAPL", "1h", simple_hourly_bars(50)).await;
    assert_eq!(written.bars_written, 50);
    read_bars(channel, "AAPL", "1h").await
}

#[tokio::test]
async fn the_public_data_api_is_routed_to_the_data_service() {
    let (data, _dir) = start_data(&[]).await;
    let gateway = ServiceProcess::start(
        "ktrdr-gateway",
        &[("DATA_SERVICE_URL", data.url().as_str())],
    )
    .await;

    let through_gateway = write_and_read(gateway.channel().await).await;
    assert_eq!(through_gateway, simple_hourly_bars(50));
    // The bars live in the data service's store.
    let direct = DataServiceClient::new(data.channel().await)
        .list_datasets(ListDatasetsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(direct.datasets[0].bar_count, 50);

    let manager = manager(gateway.channel().await, "data").await;
    assert_eq!(manager.mode(), ManagerMode::HostService);
    assert_eq!(manager.url, data.url());
    assert!(manager.healthy, "{}", manager.health_message);
    assert_eq!(manager.env["USE_DATA_SERVICE"], "true");
    assert_eq!(manager.env["DATA_SERVICE_URL"], data.url());
    assert!(manager.stats.as_ref().unwrap().calls >= 2);

    let backend = backend(gateway.channel().await, "data").await;
    assert_eq!((backend.calls, backend.errors), (2, 0));
    assert!(backend.latency_max_ms > 0.0);
}

#[tokio::test]
async fn with_use_data_service_false_the_gateway_opens_the_store_itself() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = ServiceProcess::start(
        "ktrdr-gateway",
        &[
            ("USE_DATA_SERVICE", "false"),
            ("KTRDR_DATA_DIR", dir.path().to_str().unwrap()),
        ],
    )
    .await;
    let bars = write_and_read(gateway.channel().await).await;
    assert_eq!(bars.close, simple_hourly_bars(50).close);
    assert!(dir.path().join("AAPL/1h/manifest.json").is_file());
    let manager = manager(gateway.channel().await, "data").await;
    assert_eq!(manager.mode(), ManagerMode::Local);
    assert!(manager.healthy);
}

#[tokio::test]
async fn a_data_service_that_is_down_is_unavailable_with_retry_info_and_a_hint() {
    // Nothing listens on port 9 (discard) on loopback.
    let url = "http://127.0.0.1:9";
    let gateway = ServiceProcess::start("ktrdr-gateway", &[("DATA_SERVICE_URL", url)]).await;
    let status = DataServiceClient::new(gateway.channel().await)
        .list_datasets(ListDatasetsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status
            .message()
            .contains("start ktrdr-data or set USE_DATA_SERVICE=false"),
        "{}",
        status.message()
    );
    let details = status.get_error_details();
    let info = details.error_info().unwrap();
    assert_eq!(
        (info.reason.as_str(), info.metadata["url"].as_str()),
        ("SERVICE_UNAVAILABLE", url)
    );
    assert!(details.retry_info().is_some());

    let backend = backend(gateway.channel().await, "data").await;
    assert_eq!(
        (backend.calls, backend.errors, backend.retries),
        (1, 1, 3),
        "a read is retried GATEWAY_RETRIES (3) times"
    );
    assert!(!backend.healthy);
    assert_eq!(backend.errors_by_code["Unavailable"], 1);
}

#[tokio::test]
async fn the_public_training_api_is_routed_to_the_training_host() {
    use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
    use ktrdr_proto::training::v1::{GetTrainingRequest, ListModelsRequest};

    let models = tempfile::tempdir().unwrap();
    let host = start_training_host("http://127.0.0.1:1", models.path(), &[]).await;
    let gateway = ServiceProcess::start(
        "ktrdr-gateway",
        &[("TRAINING_HOST_SERVICE_URL", host.url().as_str())],
    )
    .await;
    let mut training = TrainingServiceClient::new(gateway.channel().await);
    let listed = training
        .list_models(ListModelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.models.is_empty());
    // The host's own errors pass through unchanged.
    let missing = training
        .get_training(GetTrainingRequest {
            session_id: "no-such-session".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let manager = manager(gateway.channel().await, "training").await;
    assert_eq!(manager.mode(), ManagerMode::HostService);
    assert_eq!(manager.env["TRAINING_HOST_SERVICE_URL"], host.url());
    assert!(manager.healthy, "{}", manager.health_message);
    assert_eq!(manager.stats.as_ref().unwrap().calls, 2);
}

#[tokio::test]
async fn a_training_host_that_is_down_is_unavailable_with_the_fix_in_the_message() {
    use ktrdr_proto::training::v1::ListModelsRequest;
    use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;

    let gateway = ServiceProcess::start(
        "ktrdr-gateway",
        &[("TRAINING_HOST_SERVICE_URL", "http://127.0.0.1:9")],
    )
    .await;
    let status = TrainingServiceClient::new(gateway.channel().await)
        .list_models(ListModelsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "Training host service unavailable at http://127.0.0.1:9 — start ktrdr-training-host or set USE_TRAINING_HOST_SERVICE=false to train in the gateway"
    );
    assert!(status.get_error_details().retry_info().is_some());
}

#[tokio::test]
async fn with_everything_in_process_the_gateway_stores_bars_and_trains_a_model() {
    use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
    use ktrdr_proto::training::v1::{
        ListModelsRequest, StartTrainingRequest, TrainingState, start_training_request::Strategy,
    };
    use ktrdr_system_tests::fixtures::TINY_STRATEGY;
    use ktrdr_system_tests::training::train_to_end;

    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    // In-process training reads bars through the gateway's own DataService, so the gateway needs
    // a known port.
    let addr = format!("127.0.0.1:{}", free_port());
    let gateway = ServiceProcess::start(
        "ktrdr-gateway",
        &[
            ("KTRDR_LISTEN_ADDR", addr.as_str()),
            ("USE_DATA_SERVICE", "false"),
            ("USE_TRAINING_HOST_SERVICE", "false"),
            ("KTRDR_DATA_DIR", data_dir.path().to_str().unwrap()),
            ("KTRDR_MODELS_DIR", models.path().to_str().unwrap()),
        ],
    )
    .await;
    let channel = gateway.channel().await;
    store_training_bars(channel.clone()).await;

    let mut training = TrainingServiceClient::new(channel.clone());
    let request = StartTrainingRequest {
        strategy: Some(Strategy::StrategyYaml(TINY_STRATEGY.into())),
        epochs: Some(2),
        seed: Some(3),
        ..Default::default()
    };
    let session = tokio::time::timeout(
        std::time::Duration::from_secs(240),
        train_to_end(&mut training, request),
    )
    .await
    .expect("the session ends");
    assert_eq!(
        session.state(),
        TrainingState::Completed,
        "{}",
        session.error
    );
    let listed = training
        .list_models(ListModelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.models.len(), 1);
    assert!(
        models.path().join("_sessions").is_dir(),
        "sessions persist under the models dir"
    );
}
