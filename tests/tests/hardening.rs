//! Hostile and extreme input against the real binaries: every call is answered with a clear
//! status (never a panic, never a silent end of stream), and echoed input stays short.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ktrdr_proto::common::v1::TimeRange;
use ktrdr_proto::data::v1::ReadBarsRequest;
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use ktrdr_proto::gateway::v1::{LoadDataRequest, TrainStrategyRequest, train_strategy_request};
use ktrdr_proto::ib::v1::FetchBarsRequest;
use ktrdr_proto::ib::v1::ib_host_service_client::IbHostServiceClient;
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
