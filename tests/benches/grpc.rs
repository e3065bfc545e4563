//! gRPC plumbing benchmarks against the real release binaries on loopback: start-up time to
//! SERVING, unary round-trip latency (success and rich-error paths), and throughput of many
//! concurrent callers sharing one channel. Prints a Markdown section; `make bench` puts it
//! into BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ktrdr_proto::data::v1::GetCoverageRequest;
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_system_tests::bench::{QUIET, TIMED_CALLS, WARM_UP_CALLS, latencies, latency_row, ms};
use ktrdr_system_tests::{SERVICE_BINARIES, ServiceProcess};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const STARTS_PER_BINARY: usize = 5;
const CONCURRENT_CALLERS: usize = 32;
const CALLS_PER_CALLER: usize = 500;

async fn until_serving(channel: Channel) {
    let mut health = HealthClient::new(channel);
    loop {
        let ok = health
            .check(HealthCheckRequest::default())
            .await
            .is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving);
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn startup_times() -> Vec<(String, Vec<Duration>)> {
    let mut rows = Vec::new();
    for (binary, _) in SERVICE_BINARIES {
        let mut times = Vec::new();
        for _ in 0..STARTS_PER_BINARY {
            let started = Instant::now();
            let mut process = ServiceProcess::start(binary, &[QUIET]).await;
            until_serving(process.channel().await).await;
            times.push(started.elapsed());
            process.signal("TERM");
            process.wait().await;
        }
        times.sort();
        rows.push(((*binary).to_owned(), times));
    }
    rows
}

#[tokio::main]
async fn main() {
    let startup = startup_times().await;

    let process = ServiceProcess::start("ktrdr-data", &[QUIET]).await;
    let channel = process.channel().await;

    let health = HealthClient::new(channel.clone());
    let ok_path = latencies(|| {
        let mut health = health.clone();
        async move {
            health.check(HealthCheckRequest::default()).await.unwrap();
        }
    })
    .await;

    let data = DataServiceClient::new(channel.clone());
    let error_path = latencies(|| {
        let mut data = data.clone();
        async move {
            data.get_coverage(GetCoverageRequest::default())
                .await
                .unwrap_err();
        }
    })
    .await;

    let started = Instant::now();
    let callers: Vec<_> = (0..CONCURRENT_CALLERS)
        .map(|_| {
            let mut health = HealthClient::new(channel.clone());
            tokio::spawn(async move {
                for _ in 0..CALLS_PER_CALLER {
                    health.check(HealthCheckRequest::default()).await.unwrap();
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let elapsed = started.elapsed();
    let total = CONCURRENT_CALLERS * CALLS_PER_CALLER;

    println!("## gRPC plumbing (release binaries, loopback)\n");
    println!(
        "### Start-up: process spawn → listening → health SERVING ({STARTS_PER_BINARY} starts each)\n"
    );
    println!("| binary | min ms | median ms | max ms |");
    println!("|---|---:|---:|---:|");
    for (binary, times) in &startup {
        println!(
            "| {binary} | {} | {} | {} |",
            ms(times[0]),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        );
    }
    println!(
        "\n### Unary round trip to `ktrdr-data`, one caller, {TIMED_CALLS} calls after {WARM_UP_CALLS} warm-up calls\n"
    );
    println!("| call | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (name, times) in [
        ("grpc.health.v1.Health/Check (OK)", &ok_path),
        (
            "DataService/GetCoverage, empty request (INVALID_ARGUMENT + BadRequest)",
            &error_path,
        ),
    ] {
        println!("{}", latency_row(name, times));
    }
    println!(
        "\n### Throughput: {CONCURRENT_CALLERS} concurrent callers sharing one channel, {total} health checks\n"
    );
    println!(
        "{total} calls in {:.3} s = **{:.0} calls/s** (client and server on the same 2 cores)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
}
