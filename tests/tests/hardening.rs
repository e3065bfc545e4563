//! Hostile and extreme input against the real binaries: every call is answered with a clear
//! status (never a panic, never a silent end of stream), echoed input stays short, names from
//! requests never become paths outside their root, model saves are never seen half-written,
//! and a host that dies mid-stream is reported as unavailable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ktrdr_proto::common::v1::TimeRange;
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::data::v1::import_csv_request::Part;
use ktrdr_proto::data::v1::{
    GetCoverageRequest, ImportCsvOptions, ImportCsvRequest, ListDatasetsRequest, ReadBarsRequest,
    WriteBarsRequest,
};
use ktrdr_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use ktrdr_proto::gateway::v1::{
    LoadDataRequest, TrainStrategyRequest, train_strategy_request, train_strategy_response,
};
use ktrdr_proto::ib::v1::ib_host_service_client::IbHostServiceClient;
use ktrdr_proto::ib::v1::inject_fault_request::Fault;
use ktrdr_proto::ib::v1::{
    DelayRepliesFault, FetchBarsRequest, InjectFaultRequest, SimRequestKind,
};
use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
use ktrdr_proto::training::v1::{
    CancelTrainingRequest, GetModelRequest, GetStatusRequest, GetTrainingRequest,
    ListModelsRequest, PredictRequest, StartTrainingRequest, TrainingState, WatchTrainingRequest,
    start_training_request, training_event,
};
use ktrdr_system_tests::fixtures::{TINY_STRATEGY, trending_hourly_bars, utc_ms};
use ktrdr_system_tests::stack::{FAST_PACING, InProcess, Stack, start_training_host};
use ktrdr_system_tests::{ServiceProcess, store_bars};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// Longest a training or a wait may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(240);

/// The first status a server-streaming call ends with: the call's own error, or the first error
/// in its stream; `None` when the stream ended cleanly.
async fn first_error<T>(
    call: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> Option<tonic::Status> {
    match call {
        Ok(response) => until_error(&mut response.into_inner()).await,
        Err(status) => Some(status),
    }
}

fn violated_field(status: &tonic::Status) -> String {
    let details = status.get_error_details();
    let bad = details.bad_request().expect("BadRequest details");
    bad.field_violations[0].field.clone()
}

#[tokio::test]
async fn timestamps_at_the_ends_of_i64_are_invalid_arguments_in_process_and_never_a_panic() {
    let stack = Stack::start(InProcess::ALL, 0, FAST_PACING).await;
    let channel = stack.gateway_channel().await;
    let mut gateway = GatewayServiceClient::new(channel.clone());
    for (start_ms, end_ms, field) in [
        (i64::MIN, utc_ms(2024, 2, 1), "range.start_ms"),
        (utc_ms(2024, 1, 1), i64::MAX, "range.end_ms"),
    ] {
        let range = Some(TimeRange { start_ms, end_ms });
        let load = gateway
            .load_data(LoadDataRequest {
                symbol: "EURUSD".into(),
                timeframe: "1h".into(),
                range,
                ..Default::default()
            })
            .await;
        let status = first_error(load).await.expect("the load is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(violated_field(&status), field);

        let train = gateway
            .train_strategy(TrainStrategyRequest {
                strategy: Some(train_strategy_request::Strategy::StrategyYaml(
                    TINY_STRATEGY.into(),
                )),
                range,
                ..Default::default()
            })
            .await;
        let status = first_error(train)
            .await
            .expect("the training is refused, not an empty stream that ends OK");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(violated_field(&status), field);

        let read = DataServiceClient::new(channel.clone())
            .read_bars(ReadBarsRequest {
                symbol: "EURUSD".into(),
                timeframe: "1h".into(),
                range,
                ..Default::default()
            })
            .await;
        let status = first_error(read).await.expect("the read is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    let logs = stack.gateway.logs();
    assert!(!logs.contains("panicked"), "{logs}");
}

#[tokio::test]
async fn a_100_kb_symbol_is_refused_with_a_short_message_and_a_short_log_line() {
    let stack = Stack::start(InProcess::NONE, 0, FAST_PACING).await;
    let channel = stack.gateway_channel().await;
    let huge = "A".repeat(100_000);
    let load = GatewayServiceClient::new(channel.clone())
        .load_data(LoadDataRequest {
            symbol: huge.clone(),
            timeframe: "1h".into(),
            ..Default::default()
        })
        .await;
    let status = first_error(load).await.expect("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().len() < 300, "{}", status.message());
    assert!(
        status.message().contains("(100000 bytes)"),
        "{}",
        status.message()
    );
    // Relayed by the gateway from the data service: still short and still INVALID_ARGUMENT.
    let read = DataServiceClient::new(channel)
        .read_bars(ReadBarsRequest {
            symbol: huge,
            timeframe: "1h".into(),
            ..Default::default()
        })
        .await;
    let status = first_error(read).await.expect("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().len() < 300, "{}", status.message());
    for logs in [stack.gateway.logs(), stack.data.as_ref().unwrap().logs()] {
        let longest = logs.lines().map(str::len).max().unwrap_or(0);
        assert!(longest < 2_000, "a log line of {longest} bytes");
    }
}

#[tokio::test]
async fn an_enum_value_the_contract_does_not_define_is_an_invalid_argument_naming_the_field() {
    let stack = Stack::start(InProcess::NONE, 0, FAST_PACING).await;
    let channel = stack.gateway_channel().await;
    let read = DataServiceClient::new(channel.clone())
        .read_bars(ReadBarsRequest {
            symbol: "EURUSD".into(),
            timeframe: "1h".into(),
            encoding: 999,
            ..Default::default()
        })
        .await;
    let status = first_error(read).await.expect("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_field(&status), "encoding");
    let fetch = IbHostServiceClient::new(channel)
        .fetch_bars(FetchBarsRequest {
            symbol: "EURUSD".into(),
            timeframe: "1h".into(),
            what_to_show: 999,
            ..Default::default()
        })
        .await;
    let status = first_error(fetch).await.expect("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_field(&status), "what_to_show");
}

#[tokio::test]
async fn a_load_from_an_ib_that_stopped_answering_fails_at_its_first_silent_segment_naming_the_cause()
 {
    let mut env = FAST_PACING.to_vec();
    env.extend([
        ("IB_REQUEST_TIMEOUT_MS", "1000"),
        ("IB_REQUEST_TIMEOUT_PER_1000_BARS_MS", "0"),
    ]);
    let stack = Stack::start(InProcess::NONE, 0, &env).await;
    stack
        .sim_api()
        .await
        .inject_fault(InjectFaultRequest {
            fault: Some(Fault::DelayReplies(DelayRepliesFault {
                delay_ms: 600_000,
                count: -1,
                request_kind: SimRequestKind::HistoricalData as i32,
                symbol: String::new(),
            })),
        })
        .await
        .unwrap();
    // Half a year of hours: several segments, each of which would wait out its timeout.
    let load = GatewayServiceClient::new(stack.gateway_channel().await)
        .load_data(LoadDataRequest {
            symbol: "EURUSD".into(),
            timeframe: "1h".into(),
            range: Some(TimeRange {
                start_ms: utc_ms(2024, 1, 1),
                end_ms: utc_ms(2024, 7, 1),
            }),
            ..Default::default()
        })
        .await;
    let status = tokio::time::timeout(ktrdr_system_tests::PROCESS_WAIT, first_error(load))
        .await
        .expect("the load ends")
        .expect("the load fails");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("IB did not answer segment 1/")
            && status.message().contains("within 1s"),
        "{status:?}"
    );
    assert_eq!(
        stack.sim_historical_requests().await,
        1,
        "no further segment was asked for"
    );
}

#[tokio::test]
async fn an_import_naming_a_server_file_and_sending_chunks_too_is_refused_as_contradictory() {
    let stack = Stack::start(InProcess::NONE, 0, FAST_PACING).await;
    let csv = "timestamp,open,high,low,close,volume\n2024-01-02T00:00:00Z,1,2,0.5,1.5,100\n";
    std::fs::write(stack.data_dir.path().join("AAPL_1h.csv"), csv).unwrap();
    let mut data = DataServiceClient::new(stack.gateway_channel().await);
    let messages = vec![
        ImportCsvRequest {
            part: Some(Part::Options(ImportCsvOptions {
                server_path: "AAPL_1h.csv".into(),
                ..Default::default()
            })),
        },
        ImportCsvRequest {
            part: Some(Part::Chunk(csv.as_bytes().to_vec())),
        },
    ];
    let status = data
        .import_csv(tokio_stream::iter(messages))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_field(&status), "options.server_path");
    let coverage = data
        .get_coverage(GetCoverageRequest {
            symbol: "AAPL".into(),
            timeframe: "1h".into(),
            ..Default::default()
        })
        .await;
    match coverage {
        Ok(c) => assert_eq!(c.into_inner().bar_count, 0, "nothing was imported"),
        Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
    }
}

#[tokio::test]
async fn request_bytes_that_are_not_protobuf_are_an_invalid_argument_logged_as_a_warning() {
    let stack = Stack::start(InProcess::NONE, 0, FAST_PACING).await;
    let garbage = vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x08];
    let deadline = std::time::Duration::from_secs(20);
    // Unary, server-streaming and client-streaming methods, on the gateway and on the service
    // behind it.
    let data = stack.data.as_ref().unwrap();
    for (process, channel, path) in [
        (
            &stack.gateway,
            stack.gateway_channel().await,
            "/ktrdr.data.v1.DataService/GetCoverage",
        ),
        (
            &stack.gateway,
            stack.gateway_channel().await,
            "/ktrdr.gateway.v1.GatewayService/LoadData",
        ),
        (
            data,
            data.channel().await,
            "/ktrdr.data.v1.DataService/ReadBars",
        ),
        (
            data,
            data.channel().await,
            "/ktrdr.data.v1.DataService/WriteBars",
        ),
        (
            data,
            data.channel().await,
            "/ktrdr.data.v1.DataService/ImportCsv",
        ),
    ] {
        let status = ktrdr_system_tests::raw::call(channel, path, vec![garbage.clone()], deadline)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
        assert!(
            status.message().contains("not a valid message"),
            "{path}: {status:?}"
        );
        // The server logs after it answers: give the line a moment to reach the log.
        let mut logs = process.logs();
        for _ in 0..250 {
            if logs
                .lines()
                .any(|l| l.contains("undecodable request") && l.contains(path))
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            logs = process.logs();
        }
        let line = logs
            .lines()
            .find(|l| l.contains("undecodable request") && l.contains(path))
            .unwrap_or_else(|| panic!("no warning for {path} in\n{logs}"));
        assert!(line.contains("WARN"), "{line}");
        assert!(
            !logs
                .lines()
                .any(|l| l.contains("ERROR") && l.contains(path)),
            "{logs}"
        );
    }
}

#[tokio::test]
async fn a_call_beyond_the_concurrent_stream_limit_is_refused_with_retry_info_and_health_still_answers()
 {
    let dir = tempfile::tempdir().unwrap();
    let data = ServiceProcess::start(
        "ktrdr-data",
        &[
            ("KTRDR_DATA_DIR", dir.path().to_str().unwrap()),
            ("KTRDR_MAX_CONCURRENT_STREAMS", "2"),
        ],
    )
    .await;
    let channel = data.channel().await;
    let client = DataServiceClient::new(channel.clone());
    // Two uploads that never send a message hold their calls open (each calls again when a
    // call of the test itself took the place it wanted).
    let held: Vec<_> = (0..2)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                loop {
                    let upload = client
                        .write_bars(tokio_stream::pending::<WriteBarsRequest>())
                        .await;
                    match upload {
                        Err(status) if status.code() == Code::ResourceExhausted => {
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                        other => return other,
                    }
                }
            })
        })
        .collect();
    let list = || {
        let mut client = client.clone();
        async move { client.list_datasets(ListDatasetsRequest::default()).await }
    };
    let deadline = tokio::time::Instant::now() + ktrdr_system_tests::PROCESS_WAIT;
    let refused = loop {
        match list().await {
            Err(status) if status.code() == Code::ResourceExhausted => break status,
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never refused: {other:?}\n{}",
                    data.logs()
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    assert!(
        refused.message().contains("KTRDR_MAX_CONCURRENT_STREAMS"),
        "{refused:?}"
    );
    let details = refused.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "TOO_MANY_STREAMS");
    assert!(details.retry_info().is_some());
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        health.into_inner().status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    // Calls that end give their places back.
    for call in held {
        call.abort();
    }
    loop {
        match list().await {
            Ok(_) => break,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(tokio::time::Instant::now() < deadline, "{status:?}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    }
}

/// The names in `dir` (none when it does not exist).
fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn yaml_request(yaml: &str) -> StartTrainingRequest {
    StartTrainingRequest {
        strategy: Some(start_training_request::Strategy::StrategyYaml(yaml.into())),
        epochs: Some(1),
        seed: Some(5),
        ..Default::default()
    }
}

/// The state a session ends in, watched from its start.
async fn final_state(channel: &Channel, session_id: &str) -> TrainingState {
    let mut events = TrainingServiceClient::new(channel.clone())
        .watch_training(WatchTrainingRequest {
            session_id: session_id.into(),
            after_sequence: None,
        })
        .await
        .expect("WatchTraining")
        .into_inner();
    let mut state = TrainingState::Unspecified;
    tokio::time::timeout(WAIT, async {
        while let Some(item) = events.message().await.expect("the watch succeeds") {
            if let Some(training_event::Event::StateChanged(c)) = item.event.and_then(|e| e.event) {
                state = c.to_state();
            }
        }
    })
    .await
    .expect("the session ends");
    state
}

#[tokio::test]
async fn unsafe_strategy_names_and_symbols_are_refused_and_nothing_lands_outside_the_models_dir() {
    let stack = Stack::start(InProcess::NONE, 1, FAST_PACING).await;
    let data = stack.data.as_ref().unwrap().channel().await;
    store_bars(data, "EURUSD", "1h", trending_hourly_bars(400, 7)).await;
    let gateway = stack.gateway_channel().await;
    let host = stack.training_hosts[0].channel().await;
    let host_models = stack.models_dir.path().join("host0");
    let watched = [
        Path::new("/"),
        stack.models_dir.path(),
        host_models.as_path(),
    ];
    let before = watched.map(listing);

    let long = "n".repeat(65);
    let mut cases: Vec<(String, &str)> = [
        "_sessions",
        ".hidden",
        "...",
        "a/b",
        "a\\\\b",
        "a\\0b",
        "",
        long.as_str(),
    ]
    .iter()
    .map(|name| {
        let yaml = TINY_STRATEGY.replace("name: \"tiny_rsi\"", &format!("name: \"{name}\""));
        (yaml, "strategy_yaml.name")
    })
    .collect();
    for symbol in ["/EURUSD", "../../EURUSD", "EU/RUSD"] {
        let yaml = TINY_STRATEGY.replace("symbol: \"EURUSD\"", &format!("symbol: \"{symbol}\""));
        cases.push((yaml, "strategy_yaml.training_data.symbols.symbol"));
    }
    for (yaml, field) in &cases {
        let status = TrainingServiceClient::new(host.clone())
            .start_training(yaml_request(yaml))
            .await
            .expect_err("StartTraining refuses it");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(violated_field(&status), *field, "{status:?}");
        if *field == "strategy_yaml.name" {
            assert!(
                status.message().contains("allowed are letters, digits"),
                "{}",
                status.message()
            );
        }
        let train = GatewayServiceClient::new(gateway.clone())
            .train_strategy(TrainStrategyRequest {
                strategy: Some(train_strategy_request::Strategy::StrategyYaml(yaml.clone())),
                data_mode: ktrdr_proto::gateway::v1::LoadMode::Local as i32,
                ..Default::default()
            })
            .await;
        let status = first_error(train).await.expect("TrainStrategy refuses it");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(violated_field(&status), *field, "{status:?}");
    }
    assert_eq!(
        watched.map(listing),
        before,
        "nothing new around the models dir"
    );

    // A documented spelling of the pair trains and saves under the normalised symbol.
    let yaml = TINY_STRATEGY.replace("symbol: \"EURUSD\"", "symbol: \"EUR/USD\"");
    let id = TrainingServiceClient::new(host.clone())
        .start_training(yaml_request(&yaml))
        .await
        .expect("EUR/USD is accepted")
        .into_inner()
        .session_id;
    assert_eq!(final_state(&host, &id).await, TrainingState::Completed);
    let session = TrainingServiceClient::new(host.clone())
        .get_training(GetTrainingRequest { session_id: id })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(session.symbols, ["EURUSD"]);
    assert_eq!(session.model_id, "tiny_rsi/EURUSD_1h_v1");
    assert!(
        host_models
            .join("tiny_rsi/EURUSD_1h_v1/strategy.yaml")
            .is_file()
    );
    assert_eq!(listing(Path::new("/")), before[0]);
}

#[tokio::test]
async fn a_half_written_model_version_is_never_served_and_is_removed_when_the_host_restarts() {
    let models = tempfile::tempdir().unwrap();
    let nobody = "http://127.0.0.1:1";
    let mut host = start_training_host(nobody, models.path(), &[]).await;
    let strategy_dir = models.path().join("tiny_rsi");
    // A version a save killed half-way left: files, but no strategy.yaml.
    let partial = strategy_dir.join("EURUSD_1h_v1");
    std::fs::create_dir_all(&partial).unwrap();
    for file in ["model.mpk", "config.json", "metadata.json"] {
        std::fs::write(partial.join(file), "{}").unwrap();
    }
    // Another host's save in progress: its staging directory and its empty claim.
    let staging = strategy_dir.join(".staging.other-host.EURUSD_1h_v2");
    let claim = strategy_dir.join("EURUSD_1h_v2");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("model.mpk"), "half").unwrap();
    std::fs::create_dir(&claim).unwrap();

    let mut client = TrainingServiceClient::new(host.channel().await);
    let listed = client
        .list_models(ListModelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_size, 0, "{listed:?}");
    let status = client
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.model_count, 0);
    for id in ["tiny_rsi/EURUSD_1h_v1", "tiny_rsi/EURUSD_1h_v2"] {
        let got = client
            .get_model(GetModelRequest {
                model_id: id.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(got.code(), Code::NotFound, "{got:?}");
        let predicted = client
            .predict(PredictRequest {
                model_id: id.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(predicted.code(), Code::NotFound, "{predicted:?}");
    }

    host.signal("TERM");
    host.wait().await;
    let host = start_training_host(nobody, models.path(), &[]).await;
    assert!(!partial.exists(), "the partial version is removed at start");
    assert!(
        host.logs().contains("removed an incomplete model version"),
        "{}",
        host.logs()
    );
    assert!(
        staging.is_dir() && claim.is_dir(),
        "another host's save is left alone"
    );
}

#[tokio::test]
async fn a_session_is_not_resumed_while_it_runs_nor_twice_at_once() {
    let data_dir = tempfile::tempdir().unwrap();
    let data = ServiceProcess::start(
        "ktrdr-data",
        &[("KTRDR_DATA_DIR", data_dir.path().to_str().unwrap())],
    )
    .await;
    store_bars(
        data.channel().await,
        "EURUSD",
        "1h",
        trending_hourly_bars(700, 7),
    )
    .await;
    let models = tempfile::tempdir().unwrap();
    let host = start_training_host(&data.url(), models.path(), &[]).await;
    let mut client = TrainingServiceClient::new(host.channel().await);
    let long = StartTrainingRequest {
        epochs: Some(500),
        batch_size: Some(2),
        ..yaml_request(TINY_STRATEGY)
    };
    let first = client
        .start_training(long)
        .await
        .unwrap()
        .into_inner()
        .session_id;
    let resume = |id: &str| StartTrainingRequest {
        resume_from_session_id: Some(id.to_owned()),
        ..Default::default()
    };
    let busy = client.start_training(resume(&first)).await.unwrap_err();
    assert_eq!(busy.code(), Code::FailedPrecondition, "{busy:?}");
    assert!(
        busy.message().contains("not finished"),
        "{}",
        busy.message()
    );

    let cancel = |id: &str| CancelTrainingRequest {
        session_id: id.to_owned(),
        reason: String::new(),
    };
    client.cancel_training(cancel(&first)).await.unwrap();
    let again = client
        .start_training(resume(&first))
        .await
        .expect("a cancelled session resumes")
        .into_inner()
        .session_id;
    let twice = client.start_training(resume(&first)).await.unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition, "{twice:?}");
    assert!(twice.message().contains(&again), "{}", twice.message());
    let info = twice.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, "SESSION_BUSY");
    assert_eq!(info.metadata["session_id"], first);
    client.cancel_training(cancel(&again)).await.unwrap();
}

#[tokio::test]
async fn a_training_host_killed_mid_stream_is_unavailable_naming_it_for_train_and_watch() {
    let stack = Stack::start(InProcess::NONE, 1, FAST_PACING).await;
    let gateway = stack.gateway_channel().await;
    let mut train = GatewayServiceClient::new(gateway.clone())
        .train_strategy(TrainStrategyRequest {
            strategy: Some(train_strategy_request::Strategy::StrategyYaml(
                TINY_STRATEGY.into(),
            )),
            range: Some(TimeRange {
                start_ms: utc_ms(2024, 1, 1),
                end_ms: utc_ms(2024, 3, 1),
            }),
            epochs: Some(500),
            batch_size: Some(2),
            seed: Some(3),
            ..Default::default()
        })
        .await
        .expect("TrainStrategy accepted")
        .into_inner();
    // Until the session trains: its id, and a watch of it through the gateway.
    let mut session_id = String::new();
    tokio::time::timeout(WAIT, async {
        while let Some(item) = train.message().await.expect("the flow runs") {
            match item.event.unwrap() {
                train_strategy_response::Event::TrainingStarted(s) => session_id = s.session_id,
                train_strategy_response::Event::Training(e) => {
                    if matches!(e.event, Some(training_event::Event::EpochProgress(_))) {
                        return;
                    }
                }
                _ => {}
            }
        }
        panic!("the flow ended before training");
    })
    .await
    .expect("training starts");
    let mut watch = TrainingServiceClient::new(gateway.clone())
        .watch_training(WatchTrainingRequest {
            session_id: session_id.clone(),
            after_sequence: None,
        })
        .await
        .expect("WatchTraining through the gateway")
        .into_inner();
    watch.message().await.expect("the watch streams").unwrap();

    let host = &stack.training_hosts[0];
    host.signal("KILL");
    for (what, end) in [
        ("TrainStrategy", until_error(&mut train).await),
        ("WatchTraining", until_error(&mut watch).await),
    ] {
        let status = end.unwrap_or_else(|| panic!("{what} ended OK after the host died"));
        assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
        assert!(
            status
                .message()
                .contains("Training host service unavailable"),
            "{what}: {}",
            status.message()
        );
        let details = status.get_error_details();
        let info = details
            .error_info()
            .unwrap_or_else(|| panic!("{what}: no ErrorInfo"));
        assert_eq!(info.reason, "SERVICE_UNAVAILABLE");
        assert_eq!(info.metadata["service"], "Training host");
        assert_eq!(info.metadata["url"], host.url(), "{what}");
        assert!(details.retry_info().is_some(), "{what}: no RetryInfo");
    }
}

/// Reads `stream` until it fails (bounded by [`WAIT`]); `None` if it ends cleanly.
async fn until_error<T>(stream: &mut tonic::Streaming<T>) -> Option<tonic::Status> {
    tokio::time::timeout(WAIT, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    })
    .await
    .expect("the stream ends")
}
