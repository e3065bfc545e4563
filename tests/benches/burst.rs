//! A burst of concurrent readers against the real binaries on loopback: 200 ReadBars of the same
//! 120 k-bar dataset at once through the gateway, as callers that retry when the server refuses
//! them with RESOURCE_EXHAUSTED and RetryInfo. Reports the calls that failed, the refusals, the
//! time, and the peak (`VmHWM`) and remaining (`VmRSS`) memory of the gateway and the data
//! service. Prints a Markdown section; `make bench` puts it into BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ktrdr_market::Bars;
use ktrdr_proto::bars::BarsProto;
use ktrdr_proto::common::v1::{BarBatch, bar_batch};
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::data::v1::{ReadBarsRequest, ValidationMode, WriteBarsRequest};
use ktrdr_system_tests::bench::{DataBehindGateway, T0_2000};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const READERS: usize = 200;
const BARS: usize = 120_000;
/// Refusals one reader accepts before it counts as failed.
const MAX_RETRIES: usize = 1_000;

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "n/a".to_owned(),
        |b| format!("{:.0}", b as f64 / 1_048_576.0),
    )
}

async fn write_hours(mut data: DataServiceClient<Channel>) {
    let mut bars = Bars::with_capacity(BARS);
    for i in 0..BARS {
        let p = 1.1 + (i as f64 * 0.01).sin() * 0.05;
        bars.push(
            T0_2000 + i as i64 * 3_600_000,
            p,
            p + 0.001,
            p - 0.001,
            p,
            100.0,
        );
    }
    data.write_bars(tokio_stream::iter([WriteBarsRequest {
        batch: Some(BarBatch {
            symbol: "EURUSD".into(),
            timeframe: "1h".into(),
            payload: Some(bar_batch::Payload::Columns(bars.into_columns())),
            bar_count: 0,
        }),
        validation_mode: ValidationMode::Repair as i32,
        source: "bench".into(),
    }]))
    .await
    .unwrap();
}

/// Reads the whole dataset once, retrying refusals; the refusals, or the status it failed with.
async fn read_all(mut gateway: DataServiceClient<Channel>) -> Result<usize, tonic::Status> {
    let mut refusals = 0;
    loop {
        let attempt = async {
            let mut stream = gateway
                .read_bars(ReadBarsRequest {
                    symbol: "EURUSD".into(),
                    timeframe: "1h".into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            let mut bars = 0usize;
            while let Some(item) = stream.message().await? {
                bars += item.batch.map_or(0, |b| b.bar_count as usize);
            }
            Ok::<usize, tonic::Status>(bars)
        };
        match attempt.await {
            Ok(BARS) => return Ok(refusals),
            Ok(n) => return Err(tonic::Status::data_loss(format!("{n} of {BARS} bars"))),
            Err(status) if status.code() == Code::ResourceExhausted && refusals < MAX_RETRIES => {
                refusals += 1;
                let delay = status
                    .get_error_details()
                    .retry_info()
                    .and_then(|r| r.retry_delay)
                    .unwrap_or(Duration::from_millis(100));
                tokio::time::sleep(delay).await;
            }
            Err(status) => return Err(status),
        }
    }
}

#[tokio::main]
async fn main() {
    let DataBehindGateway { data, gateway, .. } = &DataBehindGateway::start().await;
    write_hours(DataServiceClient::new(data.channel().await)).await;
    let through = DataServiceClient::new(gateway.channel().await);
    let idle = [gateway.peak_rss_bytes(), data.peak_rss_bytes()];

    let started = Instant::now();
    let readers: Vec<_> = (0..READERS)
        .map(|_| tokio::spawn(read_all(through.clone())))
        .collect();
    let (mut failed, mut refusals, mut first_error) = (0, 0, None);
    for reader in readers {
        match reader.await.unwrap() {
            Ok(n) => refusals += n,
            Err(status) => {
                failed += 1;
                first_error.get_or_insert(status);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let peak = [gateway.peak_rss_bytes(), data.peak_rss_bytes()];
    // Give the allocators a moment, then see what the burst left resident.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = [gateway.rss_bytes(), data.rss_bytes()];

    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("## A burst of readers ({profile} binaries, loopback)\n");
    println!(
        "{READERS} `DataService/ReadBars` calls at once through the gateway, each reading the same {} k one-hour bars (default batch size, packed columns); a caller refused with `RESOURCE_EXHAUSTED` waits the `RetryInfo` delay and calls again.\n",
        BARS / 1_000
    );
    println!("| measurement | result |");
    println!("|---|---|");
    println!("| calls failed | {failed} of {READERS} |");
    println!("| refusals retried | {refusals} |");
    println!(
        "| all {READERS} reads done in | {secs:.2} s ({:.1} M bars/s) |",
        (READERS * BARS) as f64 / secs / 1e6
    );
    for (i, name) in ["gateway", "data"].iter().enumerate() {
        println!(
            "| {name} peak RSS (VmHWM): idle → burst | {} → {} MiB |",
            mib(idle[i]),
            mib(peak[i])
        );
        println!("| {name} RSS 2 s after the burst | {} MiB |", mib(after[i]));
    }
    if let Some(status) = first_error {
        println!("\nFirst failure: {:?}: {}", status.code(), status.message());
    }
}
