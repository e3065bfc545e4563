//! OpenTelemetry across processes: the gateway and the host services export their spans over
//! OTLP to a collector running in this test, and a call through the gateway is one trace whose
//! backend spans are children of the gateway's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ktrdr_proto::data::v1::GetCoverageRequest;
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::training::v1::ListTrainingsRequest;
use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
use ktrdr_system_tests::stack::{InProcess, Stack};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// One exported span: the service that sent it and its ids.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

/// An OTLP/gRPC trace collector that keeps what it receives.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Span {
                        service: service.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                    });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Starts the collector on a free loopback port; returns its URL.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        url
    }

    /// The server spans of `method` (`package.Service/Method`) once every service in `services`
    /// has exported one, all in one trace (waits up to 30 s).
    async fn trace_of(&self, method: &str, services: &[&str]) -> Vec<Span> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let spans: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.name == method)
                .cloned()
                .collect();
            let seen: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
            if services.iter().all(|s| seen.contains(s)) {
                return spans;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {method} spans from all of {services:?} within 30 s; got {:#?}",
                self.spans.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A collector, and the whole stack (with `training_hosts` training hosts) exporting its spans
/// to it.
async fn traced_stack(training_hosts: usize) -> (Collector, Stack) {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let stack = Stack::start(InProcess::NONE, training_hosts, &otel).await;
    (collector, stack)
}

/// The span of `service` among `spans`.
fn of<'a>(spans: &'a [Span], service: &str) -> &'a Span {
    spans.iter().find(|s| s.service == service).unwrap()
}

#[tokio::test]
async fn a_call_through_the_gateway_is_one_trace_across_the_services() {
    let (collector, stack) = traced_stack(1).await;
    let gateway = &stack.gateway;

    // gateway → data
    let coverage = DataServiceClient::new(gateway.channel().await)
        .get_coverage(GetCoverageRequest {
            symbol: "AAPL".into(),
            timeframe: "1h".into(),
            ..Default::default()
        })
        .await;
    assert!(
        coverage.is_ok() || coverage.as_ref().unwrap_err().code() == tonic::Code::NotFound,
        "{coverage:?}"
    );
    let spans = collector
        .trace_of(
            "ktrdr.data.v1.DataService/GetCoverage",
            &["ktrdr-gateway", "ktrdr-data"],
        )
        .await;
    let (gw, backend) = (of(&spans, "ktrdr-gateway"), of(&spans, "ktrdr-data"));
    assert_eq!(gw.trace_id, backend.trace_id, "one trace: {spans:#?}");
    assert_eq!(
        backend.parent_span_id, gw.span_id,
        "data's span is the gateway span's child"
    );
    assert!(
        gw.parent_span_id.is_empty(),
        "the gateway's span is the root: {gw:?}"
    );

    // gateway → training host, a separate trace
    TrainingServiceClient::new(gateway.channel().await)
        .list_trainings(ListTrainingsRequest::default())
        .await
        .unwrap();
    let spans = collector
        .trace_of(
            "ktrdr.training.v1.TrainingService/ListTrainings",
            &["ktrdr-gateway", "ktrdr-training-host"],
        )
        .await;
    let (gw2, backend) = (
        of(&spans, "ktrdr-gateway"),
        of(&spans, "ktrdr-training-host"),
    );
    assert_eq!(gw2.trace_id, backend.trace_id, "one trace: {spans:#?}");
    assert_eq!(backend.parent_span_id, gw2.span_id);
    assert_ne!(gw2.trace_id, gw.trace_id, "each call is its own trace");
}

#[tokio::test]
async fn a_load_data_is_one_trace_over_the_gateway_ib_host_and_data() {
    use ktrdr_proto::common::v1::TimeRange;
    use ktrdr_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
    use ktrdr_proto::gateway::v1::{LoadDataRequest, LoadMode};
    use ktrdr_system_tests::fixtures::utc_ms;

    let (collector, stack) = traced_stack(0).await;
    let mut stream = GatewayServiceClient::new(stack.gateway_channel().await)
        .load_data(LoadDataRequest {
            symbol: "AAPL".into(),
            timeframe: "1h".into(),
            mode: LoadMode::Tail as i32,
            range: Some(TimeRange {
                start_ms: utc_ms(2024, 3, 4),
                end_ms: utc_ms(2024, 3, 9),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}

    let load = collector
        .trace_of(
            "ktrdr.gateway.v1.GatewayService/LoadData",
            &["ktrdr-gateway"],
        )
        .await;
    let root = of(&load, "ktrdr-gateway");
    assert!(
        root.parent_span_id.is_empty(),
        "LoadData is the root: {root:?}"
    );
    // Every hop of the load: symbol lookup, head timestamp and bars from ib-host; coverage and
    // the segment write at the data service.
    for (method, service) in [
        ("ktrdr.ib.v1.IbHostService/LookupContract", "ktrdr-ib-host"),
        (
            "ktrdr.ib.v1.IbHostService/GetHeadTimestamp",
            "ktrdr-ib-host",
        ),
        ("ktrdr.ib.v1.IbHostService/FetchBars", "ktrdr-ib-host"),
        ("ktrdr.data.v1.DataService/GetCoverage", "ktrdr-data"),
        ("ktrdr.data.v1.DataService/WriteBars", "ktrdr-data"),
    ] {
        let spans = collector.trace_of(method, &[service]).await;
        let hop = of(&spans, service);
        assert_eq!(
            hop.trace_id, root.trace_id,
            "{method} is in the LoadData trace: {hop:?}"
        );
        assert!(
            !hop.parent_span_id.is_empty(),
            "{method} has a parent in the trace"
        );
    }
}

#[tokio::test]
async fn a_train_strategy_is_one_trace_down_to_the_training_hosts_bar_reads() {
    use ktrdr_proto::common::v1::TimeRange;
    use ktrdr_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
    use ktrdr_proto::gateway::v1::{TrainStrategyRequest, train_strategy_request};
    use ktrdr_system_tests::fixtures::{TINY_STRATEGY, utc_ms};

    let (collector, stack) = traced_stack(1).await;
    let mut stream = GatewayServiceClient::new(stack.gateway_channel().await)
        .train_strategy(TrainStrategyRequest {
            strategy: Some(train_strategy_request::Strategy::StrategyYaml(
                TINY_STRATEGY.into(),
            )),
            range: Some(TimeRange {
                start_ms: utc_ms(2023, 9, 1),
                end_ms: utc_ms(2024, 3, 1),
            }),
            epochs: Some(1),
            seed: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}

    let train = collector
        .trace_of(
            "ktrdr.gateway.v1.GatewayService/TrainStrategy",
            &["ktrdr-gateway"],
        )
        .await;
    let root = of(&train, "ktrdr-gateway");
    for (method, service) in [
        ("ktrdr.ib.v1.IbHostService/FetchBars", "ktrdr-ib-host"),
        (
            "ktrdr.training.v1.TrainingService/StartTraining",
            "ktrdr-training-host",
        ),
        // The session reads its bars from the data service in the same trace.
        ("ktrdr.data.v1.DataService/ReadBars", "ktrdr-data"),
    ] {
        let spans = collector.trace_of(method, &[service]).await;
        let hop = of(&spans, service);
        assert_eq!(
            hop.trace_id, root.trace_id,
            "{method} is in the TrainStrategy trace: {hop:?}"
        );
    }
}
