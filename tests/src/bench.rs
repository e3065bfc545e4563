//! What the benchmarks (`tests/benches`) share: the quiet log level the services run with, a
//! data service behind a gateway, a DataService client without message size limits, latency
//! percentiles and their Markdown rows, a timed full read of the benchmark dataset, and the
//! "goal" line each benchmark prints for `make bench` to gather.

use std::time::{Duration, Instant};

use ktrdr_proto::common::v1::BarEncoding;
use ktrdr_proto::data::v1::ReadBarsRequest;
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use tempfile::TempDir;
use tonic::transport::Channel;

use crate::ServiceProcess;

/// The log level of services under a benchmark: warnings, and the server's start-up lines (the
/// harness waits for "listening on").
pub const QUIET: (&str, &str) = ("RUST_LOG", "warn,ktrdr_common::server=info");

/// 2000-01-03 00:00 UTC, where the benchmarks' generated bars start: millions of minutes from
/// there are still in the past.
pub const T0_2000: i64 = 946_857_600_000;

/// Untimed calls before a latency measurement, and the calls it times.
pub const WARM_UP_CALLS: usize = 100;
pub const TIMED_CALLS: usize = 2_000;

/// A URL nothing listens on, for the backends a benchmark does not use.
const NOBODY: &str = "http://127.0.0.1:1";

/// `ktrdr-data` on an empty store and `ktrdr-gateway` routing DataService to it (IB and
/// training routed to a port nothing listens on), both logging [`QUIET`]ly.
pub struct DataBehindGateway {
    pub data: ServiceProcess,
    pub gateway: ServiceProcess,
    /// The store; removed when dropped.
    _dir: TempDir,
}

impl DataBehindGateway {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temporary store directory");
        let store = dir.path().to_str().expect("UTF-8 temporary directory");
        let data = ServiceProcess::start("ktrdr-data", &[QUIET, ("KTRDR_DATA_DIR", store)]).await;
        let gateway = ServiceProcess::start(
            "ktrdr-gateway",
            &[
                QUIET,
                ("DATA_SERVICE_URL", data.url().as_str()),
                ("IB_HOST_SERVICE_URL", NOBODY),
                ("TRAINING_HOST_SERVICE_URL", NOBODY),
            ],
        )
        .await;
        Self {
            data,
            gateway,
            _dir: dir,
        }
    }
}

/// A DataService client on `channel` that accepts and sends messages of any size.
pub fn data_client(channel: Channel) -> DataServiceClient<Channel> {
    DataServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

/// The line a benchmark prints for one goal, from the figure it measured in the same run;
/// `make bench` gathers these lines into the "Goals" section of BENCHMARKS.md:
/// `Goal: WHAT: MEASURED (goal GOAL): met` (or `not met`).
pub fn goal_line(what: &str, measured: &str, goal: &str, met: bool) -> String {
    let verdict = if met { "**met**" } else { "**not met**" };
    format!("Goal: {what}: {measured} (goal {goal}): {verdict}")
}

/// The latencies of [`TIMED_CALLS`] calls of `call`, one at a time after [`WARM_UP_CALLS`]
/// untimed ones, ascending.
pub async fn latencies<F, Fut>(mut call: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..WARM_UP_CALLS {
        call().await;
    }
    let mut times = Vec::with_capacity(TIMED_CALLS);
    for _ in 0..TIMED_CALLS {
        let t = Instant::now();
        call().await;
        times.push(t.elapsed());
    }
    times.sort();
    times
}

/// The `p`-th percentile (0–100) of ascending `sorted` durations (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[rank.min(sorted.len().saturating_sub(1))]
}

/// Milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// The Markdown row `| name | p50 | p90 | p99 | max |` (ms) of ascending `sorted` durations.
pub fn latency_row(name: &str, sorted: &[Duration]) -> String {
    format!(
        "| {name} | {} | {} | {} | {} |",
        ms(percentile(sorted, 50.0)),
        ms(percentile(sorted, 90.0)),
        ms(percentile(sorted, 99.0)),
        ms(sorted[sorted.len() - 1])
    )
}

/// Reads every bar of `symbol` `timeframe` in `encoding`, 100 000 bars a batch; the bars read
/// and the seconds it took.
pub async fn timed_read(
    client: &mut DataServiceClient<Channel>,
    symbol: &str,
    timeframe: &str,
    encoding: BarEncoding,
) -> (usize, f64) {
    let started = Instant::now();
    let mut stream = client
        .read_bars(ReadBarsRequest {
            symbol: symbol.into(),
            timeframe: timeframe.into(),
            encoding: encoding as i32,
            max_bars_per_batch: Some(100_000),
            ..Default::default()
        })
        .await
        .expect("ReadBars")
        .into_inner();
    let mut bars = 0usize;
    while let Some(item) = stream.message().await.expect("ReadBars streams") {
        bars += item.batch.expect("a batch").bar_count as usize;
    }
    (bars, started.elapsed().as_secs_f64())
}
