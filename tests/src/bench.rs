//! What the benchmarks (`tests/benches`) share: latency percentiles and their Markdown rows,
//! and a timed full read of the benchmark dataset.

use std::time::{Duration, Instant};

use ktrdr_proto::common::v1::BarEncoding;
use ktrdr_proto::data::v1::ReadBarsRequest;
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use tonic::transport::Channel;

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
