//! Hostile and extreme input against the real binaries: every call is answered with a clear
//! status (never a panic, never a silent end of stream), and echoed input stays short.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ktrdr_proto::common::v1::TimeRange;
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::data::v1::import_csv_request::Part;
use ktrdr_proto::data::v1::{
    GetCoverageRequest, ImportCsvOptions, ImportCsvRequest, ListDatasetsRequest, ReadBarsRequest,
    WriteBarsRequest,
};
use ktrdr_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use ktrdr_proto::gateway::v1::{LoadDataRequest, TrainStrategyRequest, train_strategy_request};
use ktrdr_proto::ib::v1::ib_host_service_client::IbHostServiceClient;
use ktrdr_proto::ib::v1::inject_fault_request::Fault;
use ktrdr_proto::ib::v1::{
    DelayRepliesFault, FetchBarsRequest, InjectFaultRequest, SimRequestKind,
};
use ktrdr_system_tests::fixtures::{TINY_STRATEGY, utc_ms};
use ktrdr_system_tests::stack::{FAST_PACING, InProcess, Stack};
use tonic::Code;
use tonic_types::StatusExt;

/// The first status a server-streaming call ends with: the call's own error, or the first error
/// in its stream; `None` when the stream ended cleanly.
async fn first_error<T>(
    call: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> Option<tonic::Status> {
    let mut stream = match call {
        Ok(response) => response.into_inner(),
        Err(status) => return Some(status),
    };
    loop {
        match stream.message().await {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(status) => return Some(status),
        }
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
        let logs = process.logs();
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
    let data = ktrdr_system_tests::ServiceProcess::start(
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
