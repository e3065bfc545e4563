//! IB path benchmarks against the real release binaries (`ktrdr-ib-sim` and `ktrdr-ib-host` as
//! processes, TWS protocol and gRPC over 127.0.0.1): bars/s that FetchBars streams with pacing
//! off, and, with IB's pacing rules on (windows scaled down), a long load's total time against
//! the pacing floor, the least time IB's rules allow. Prints a Markdown section; `make bench`
//! puts it into BENCHMARKS.md (`cargo bench -p ktrdr-system-tests --bench ib`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ktrdr_proto::common::v1::{TimeRange, bar_batch};
use ktrdr_proto::ib::v1::{
    self as ib, fetch_bars_response::Event, ib_host_service_client::IbHostServiceClient,
};
use ktrdr_system_tests::stack::IbPair;
use tonic::transport::Channel;

const DAY_MS: i64 = 86_400_000;
/// 2024-01-01 00:00 UTC.
const Y2024: i64 = 19_723 * DAY_MS;

/// (bars, IB requests, wall time)
async fn fetch(
    api: &mut IbHostServiceClient<Channel>,
    symbol: &str,
    tf: &str,
    start_ms: i64,
    end_ms: i64,
) -> (usize, usize, Duration) {
    let t0 = Instant::now();
    let mut stream = api
        .fetch_bars(ib::FetchBarsRequest {
            symbol: symbol.into(),
            timeframe: tf.into(),
            range: Some(TimeRange { start_ms, end_ms }),
            use_rth: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut bars, mut requests) = (0, 0);
    while let Some(item) = stream.message().await.unwrap() {
        match item.event {
            Some(Event::Plan(p)) => requests = p.requests.len(),
            Some(Event::Bars(b)) => {
                if let Some(bar_batch::Payload::Columns(c)) = b.payload {
                    bars += c.timestamp_ms.len();
                }
            }
            _ => {}
        }
    }
    (bars, requests, t0.elapsed())
}

/// The earliest time the last of `n` requests for one contract may be sent under IB's rules
/// (6th within `two_s` and 61st within `ten_min` must wait), from a standing start.
fn pacing_floor(n: usize, two_s: Duration, ten_min: Duration) -> Duration {
    let mut sent: Vec<Duration> = Vec::with_capacity(n);
    for i in 0..n {
        let mut t = sent.last().copied().unwrap_or_default();
        if i >= 5 {
            t = t.max(sent[i - 5] + two_s);
        }
        if i >= 60 {
            t = t.max(sent[i - 60] + ten_min);
        }
        sent.push(t);
    }
    sent.last().copied().unwrap_or_default()
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    println!("## IB path: ib-host streaming from ib-sim (release binaries, loopback)\n");

    let mut s = IbPair::start(&[("IB_SIM_PACING", "false")], &[("IB_PACING", "false")]).await;
    // Warm the contract and head-timestamp caches so only the bars are timed.
    fetch(&mut s.api, "AAPL", "1d", Y2024, Y2024 + 30 * DAY_MS).await;
    fetch(&mut s.api, "EURUSD", "1d", Y2024, Y2024 + 30 * DAY_MS).await;
    println!("### FetchBars throughput, pacing off (sim and host)\n");
    println!("| load | IB requests | bars | seconds | bars/s | requests/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, symbol, tf, days) in [
        ("AAPL 1m, 2024, regular hours", "AAPL", "1m", 366),
        ("EURUSD 1m, 60 days", "EURUSD", "1m", 60),
        ("AAPL 1h, 2014–2024", "AAPL", "1h", 3653),
    ] {
        let start = if days > 366 {
            Y2024 - (days - 366) * DAY_MS
        } else {
            Y2024
        };
        let end = start + days * DAY_MS;
        let (bars, requests, took) = fetch(&mut s.api, symbol, tf, start, end).await;
        println!(
            "| {label} | {requests} | {bars} | {} | {:.0} | {:.0} |",
            secs(took),
            bars as f64 / took.as_secs_f64(),
            requests as f64 / took.as_secs_f64()
        );
    }
    drop(s);

    // Pacing on at both ends, IB's windows × SCALE: 10 min → 6 s, 2 s → 20 ms, 15 s → 150 ms.
    const SCALE: f64 = 0.01;
    let scale = SCALE.to_string();
    let mut s = IbPair::start(
        &[("IB_SIM_PACING", "true"), ("IB_SIM_PACING_SCALE", &scale)],
        &[("IB_PACING", "true"), ("IB_PACING_SCALE", &scale)],
    )
    .await;
    fetch(&mut s.api, "MSFT", "1d", Y2024, Y2024 + 30 * DAY_MS).await;
    // Let the warm-up's request leave the 10-minute window before the timed load.
    tokio::time::sleep(Duration::from_secs_f64(600.0 * SCALE + 0.5)).await;
    let days = 150;
    let (bars, requests, took) =
        fetch(&mut s.api, "MSFT", "1m", Y2024, Y2024 + days * DAY_MS).await;
    let floor = pacing_floor(
        requests,
        Duration::from_secs_f64(2.0 * SCALE),
        Duration::from_secs_f64(600.0 * SCALE),
    );
    let real_floor = pacing_floor(requests, Duration::from_secs(2), Duration::from_secs(600));
    let violations = s.sim_status().await.pacing_violations_sent;
    println!("\n### A long load with IB's pacing on (windows × {SCALE}, both ends)\n");
    println!(
        "MSFT 1-minute bars for {days} days = {requests} IB requests, {bars} bars. The pacing floor is \
         the earliest the last request may be sent under IB's rules (60 per 10 min, 6th per \
         contract within 2 s); ib-host adds its 250 ms safety margin to each window.\n"
    );
    println!(
        "| total s | pacing floor s | total / floor | 162 errors at the sim | same load at IB's real windows (floor) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {:.2} | {violations} | {:.1} min |",
        secs(took),
        secs(floor),
        took.as_secs_f64() / floor.as_secs_f64().max(1e-9),
        real_floor.as_secs_f64() / 60.0
    );
}
