//! The Prometheus endpoint of every binary, as a real process: it serves the RPC metrics on its
//! own port, the counters move with the calls made, and each service's own metrics are there
//! (label families appear with their first sample).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ktrdr_proto::common::v1::{BarBatch, bar_batch};
use ktrdr_proto::data::v1::WriteBarsRequest;
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_system_tests::fixtures::simple_hourly_bars;
use ktrdr_system_tests::stack::start_data;
use ktrdr_system_tests::{SERVICE_BINARIES, ServiceProcess, sample, scrape};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const HEALTH_OK: &str = r#"grpc_server_handled_total{grpc_service="grpc.health.v1.Health",grpc_method="Check",grpc_code="OK"}"#;

/// Metric families each binary serves besides the RPC ones.
fn own_metrics(binary: &str) -> &'static [&'static str] {
    match binary {
        "ktrdr-ib-host" => &[
            "ib_pacing_queue_depth 0",
            "ib_reconnects_total 0",
            "ib_connected 0",
        ],
        "ktrdr-data" => &["store_bars_written_total 0", "store_bytes_written_total 0"],
        "ktrdr-training-host" => &[
            r#"training_sessions{state="queued"} 0"#,
            r#"training_sessions{state="running"} 0"#,
        ],
        _ => &[],
    }
}

#[tokio::test]
async fn every_binary_serves_metrics_and_its_rpc_counters_move() {
    for (binary, _) in SERVICE_BINARIES {
        // ib-sim's TWS port on a free port too; ib-host pointed at a closed port (no IB here).
        let env: &[(&str, &str)] = match *binary {
            "ktrdr-ib-sim" => &[("IB_SIM_ADDR", "127.0.0.1:0")],
            "ktrdr-ib-host" => &[("IB_PORT", "1")],
            _ => &[],
        };
        let service = ServiceProcess::start(binary, env).await;
        let metrics = service
            .metrics_addr
            .unwrap_or_else(|| panic!("{binary} logged no metrics address:\n{}", service.logs()));
        assert_ne!(
            metrics, service.addr,
            "{binary}: metrics need their own port"
        );

        let before = scrape(metrics).await;
        assert!(
            before.ends_with("# EOF\n"),
            "{binary}: OpenMetrics text\n{before}"
        );
        for family in own_metrics(binary) {
            assert!(
                before.contains(family),
                "{binary} lacks {family}:\n{before}"
            );
        }

        let mut health = HealthClient::new(service.channel().await);
        for _ in 0..3 {
            health.check(HealthCheckRequest::default()).await.unwrap();
        }
        let after = scrape(metrics).await;
        assert_eq!(
            sample(&after, HEALTH_OK) - sample(&before, HEALTH_OK),
            3.0,
            "{binary}: three health checks\n{after}"
        );
        assert!(
            after.contains(r#"grpc_server_handling_seconds_count{grpc_service="grpc.health.v1.Health",grpc_method="Check",grpc_code="OK"}"#),
            "{binary}: latency histogram\n{after}"
        );
    }
}

#[tokio::test]
async fn errors_are_counted_by_code_and_store_writes_by_bars() {
    let (data, _dir) = start_data(&[]).await;
    let metrics = data.metrics_addr.unwrap();
    let mut client = DataServiceClient::new(data.channel().await);

    let write = |n: usize| WriteBarsRequest {
        batch: Some(BarBatch {
            symbol: "AAPL".into(),
            timeframe: if n == 0 { "2h".into() } else { "1h".into() },
            payload: Some(bar_batch::Payload::Columns(simple_hourly_bars(n.max(1)))),
            bar_count: 0,
        }),
        ..Default::default()
    };
    client
        .write_bars(tokio_stream::iter([write(24)]))
        .await
        .unwrap();
    let bad = client
        .write_bars(tokio_stream::iter([write(0)]))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    let after = scrape(metrics).await;
    let series = |code: &str| {
        format!(
            r#"grpc_server_handled_total{{grpc_service="ktrdr.data.v1.DataService",grpc_method="WriteBars",grpc_code="{code}"}}"#
        )
    };
    assert_eq!(sample(&after, &series("OK")), 1.0, "{after}");
    assert_eq!(sample(&after, &series("INVALID_ARGUMENT")), 1.0, "{after}");
    assert_eq!(sample(&after, "store_bars_written_total"), 24.0, "{after}");
    assert!(sample(&after, "store_bytes_written_total") > 0.0, "{after}");
}

#[tokio::test]
async fn metrics_can_be_switched_off() {
    let data = ServiceProcess::start("ktrdr-data", &[("KTRDR_METRICS_ADDR", "off")]).await;
    assert_eq!(data.metrics_addr, None, "{}", data.logs());
}
