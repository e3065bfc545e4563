//! Gateway benchmarks against the real binaries on loopback, each figure next to the same call
//! made directly to the backend in the same run: the gateway's overhead per unary call (p50/p99),
//! ReadBars throughput through the gateway, and the `ktrdr` CLI's wall time per invocation
//! (process start to exit). Prints a Markdown section; `make bench` puts it into BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ktrdr_proto::bars::BarsProto;
use std::time::{Duration, Instant};

use ktrdr_market::Bars;
use ktrdr_proto::common::v1::{BarBatch, BarEncoding, bar_batch};
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::data::v1::{GetStatusRequest, ValidationMode, WriteBarsRequest};
use ktrdr_system_tests::bench::{
    DataBehindGateway, T0_2000, TIMED_CALLS, WARM_UP_CALLS, data_client, goal_line, latencies,
    latency_row, ms, percentile, timed_read,
};
use ktrdr_system_tests::ktrdr;
use tonic::transport::Channel;

const BARS: usize = 5_000_000;
/// Bars per WriteBars message: under the 16 MiB message limit.
const CHUNK: usize = 250_000;
const READS: usize = 3;
const CLI_RUNS: usize = 20;

/// `GetStatus` latencies (see [`latencies`]).
async fn status_latencies(data: &DataServiceClient<Channel>) -> Vec<Duration> {
    latencies(|| {
        let mut data = data.clone();
        async move {
            data.get_status(GetStatusRequest {}).await.unwrap();
        }
    })
    .await
}

/// The best of `READS` full reads, in bars per second.
async fn read_rate(mut data: DataServiceClient<Channel>) -> f64 {
    let mut best = 0.0f64;
    for _ in 0..READS {
        let (bars, secs) = timed_read(&mut data, "BENCH", "1m", BarEncoding::ArrowIpc).await;
        assert_eq!(bars, BARS);
        best = best.max(bars as f64 / secs);
    }
    best
}

async fn write_minutes(mut data: DataServiceClient<Channel>) {
    for start in (0..BARS).step_by(CHUNK) {
        let mut bars = Bars::with_capacity(CHUNK);
        for i in start..start + CHUNK {
            let p = 100.0 + (i as f64 * 0.001).sin() * 10.0;
            bars.push(
                T0_2000 + i as i64 * 60_000,
                p,
                p + 0.5,
                p - 0.5,
                p + 0.1,
                10.0,
            );
        }
        let batch = BarBatch {
            symbol: "BENCH".into(),
            timeframe: "1m".into(),
            payload: Some(bar_batch::Payload::Columns(bars.into_columns())),
            bar_count: 0,
        };
        data.write_bars(tokio_stream::iter([WriteBarsRequest {
            batch: Some(batch),
            validation_mode: ValidationMode::Repair as i32,
            source: "bench".into(),
        }]))
        .await
        .unwrap();
    }
}

/// Median wall time of `ktrdr ARGS` over `CLI_RUNS` runs (each must succeed).
async fn cli_median(url: &str, args: &[&str]) -> Duration {
    let mut times = Vec::with_capacity(CLI_RUNS);
    for _ in 0..CLI_RUNS {
        let t = Instant::now();
        let run = ktrdr(url, args).await;
        times.push(t.elapsed());
        assert_eq!(run.code, Some(0), "{run}");
    }
    times.sort();
    times[times.len() / 2]
}

#[tokio::main]
async fn main() {
    let DataBehindGateway { data, gateway, .. } = &DataBehindGateway::start().await;
    let direct = data_client(data.channel().await);
    let through = data_client(gateway.channel().await);

    let direct_unary = status_latencies(&direct).await;
    let gateway_unary = status_latencies(&through).await;

    write_minutes(direct.clone()).await;
    let direct_rate = read_rate(direct).await;
    let gateway_rate = read_rate(through).await;

    let url = gateway.url();
    let health = cli_median(&url, &["health"]).await;
    let show = cli_median(
        &url,
        &["data", "show", "BENCH", "-t", "1m", "--limit", "100"],
    )
    .await;

    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("## Gateway ({profile} binaries, loopback)\n");
    println!(
        "### Overhead per unary call: `DataService/GetStatus` to `ktrdr-data` directly and through the gateway, one caller, {TIMED_CALLS} calls after {WARM_UP_CALLS} warm-up calls\n"
    );
    println!("| path | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (name, times) in [
        ("client → data", &direct_unary),
        ("client → gateway → data", &gateway_unary),
    ] {
        println!("{}", latency_row(name, times));
    }
    let overhead = |p: f64| {
        percentile(&gateway_unary, p).as_secs_f64() * 1000.0
            - percentile(&direct_unary, p).as_secs_f64() * 1000.0
    };
    println!(
        "\nThe gateway adds {:.3} ms at p50 and {:.3} ms at p99 (one extra loopback hop, routing, statistics).",
        overhead(50.0),
        overhead(99.0)
    );
    println!(
        "\n### ReadBars, Arrow IPC, {} M one-minute bars, best of {READS} full reads\n",
        BARS / 1_000_000
    );
    println!("| path | bars/s |");
    println!("|---|---:|");
    println!("| client → data | {:.2} M |", direct_rate / 1e6);
    println!("| client → gateway → data | {:.2} M |", gateway_rate / 1e6);
    let relay = gateway_rate / direct_rate;
    println!(
        "\nThrough the gateway: {:.0} % of the direct rate (client, gateway and data share the cores).\n",
        relay * 100.0
    );
    println!(
        "{}",
        goal_line(
            "ReadBars through the gateway ÷ directly",
            &format!("{relay:.2}×"),
            "≥ 0.9×",
            relay >= 0.9
        )
    );
    println!(
        "\n### `ktrdr` CLI wall time, process start to exit, median of {CLI_RUNS} runs against the gateway\n"
    );
    println!("| command | median ms |");
    println!("|---|---:|");
    println!("| `ktrdr health` | {} |", ms(health));
    println!(
        "| `ktrdr data show BENCH -t 1m --limit 100` | {} |",
        ms(show)
    );
}
