//! Store benchmarks against the real release `ktrdr-data` on loopback: ReadBars throughput in
//! both encodings against reading the same Parquet in-process, WriteBars throughput, and the
//! server's peak memory while streaming a 50 M-bar dataset. Prints a Markdown section.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ktrdr_proto::bars::BarsProto;
use std::time::Instant;

use ktrdr_data::store::Store;
use ktrdr_market::Bars;
use ktrdr_market::Timeframe;
use ktrdr_proto::common::v1::{BarBatch, BarEncoding, bar_batch};
use ktrdr_proto::data::v1::{ValidationMode, WriteBarsRequest};
use ktrdr_system_tests::ServiceProcess;
use ktrdr_system_tests::bench::{QUIET, data_client, goal_line, timed_read};

const BIG: usize = 50_000_000;
const CHUNK: usize = 1_000_000;
const WRITE_BARS: usize = 2_000_000;
const T0: i64 = -1_577_923_200_000; // 1920-01-01: 50 M minutes end in 2015

fn minutes(start: usize, n: usize) -> Bars {
    let mut bars = Bars::with_capacity(n);
    for i in start..start + n {
        let p = 100.0 + (i as f64 * 0.001).sin() * 10.0 + (i % 7) as f64 * 0.01;
        bars.push(
            T0 + i as i64 * 60_000,
            p,
            p + 0.5,
            p - 0.5,
            p + 0.1,
            (i % 1000) as f64,
        );
    }
    bars
}

fn rate(bars: usize, seconds: f64) -> String {
    format!("{:.2} M bars/s", bars as f64 / seconds / 1e6)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();

    // Build the 50 M-bar dataset in-process (1 M-bar appends).
    let store = Store::new(dir.path());
    let dataset = store.dataset("BENCH", Timeframe::M1).unwrap();
    let started = Instant::now();
    for start in (0..BIG).step_by(CHUNK) {
        dataset.write(&minutes(start, CHUNK), "bench").unwrap();
    }
    let build_secs = started.elapsed().as_secs_f64();
    let snapshot = dataset.snapshot();
    let size = snapshot.manifest.bytes();

    // In-process read of the same Parquet files.
    let started = Instant::now();
    let mut in_process = 0usize;
    snapshot
        .read_range(i64::MIN, i64::MAX, 100_000, None, &mut |chunk| {
            in_process += chunk.len();
            true
        })
        .unwrap();
    let in_process_secs = started.elapsed().as_secs_f64();
    drop(snapshot);
    drop(store);

    let process = ServiceProcess::start(
        "ktrdr-data",
        &[("KTRDR_DATA_DIR", dir.path().to_str().unwrap()), QUIET],
    )
    .await;
    let mut client = data_client(process.channel().await);
    let rss_idle = process.peak_rss_bytes().unwrap_or(0);

    let (ipc_bars, ipc_secs) = timed_read(&mut client, "BENCH", "1m", BarEncoding::ArrowIpc).await;
    let rss_after_ipc = process.peak_rss_bytes().unwrap_or(0);
    let (col_bars, col_secs) = timed_read(&mut client, "BENCH", "1m", BarEncoding::Columns).await;
    assert_eq!((ipc_bars, col_bars, in_process), (BIG, BIG, BIG));

    // WriteBars: 2 M new bars in 50 k-bar messages.
    let bars = minutes(BIG + 10_000, WRITE_BARS);
    let messages: Vec<WriteBarsRequest> = (0..WRITE_BARS)
        .step_by(50_000)
        .map(|s| WriteBarsRequest {
            batch: Some(BarBatch {
                symbol: "BENCH2".into(),
                timeframe: "1m".into(),
                payload: Some(bar_batch::Payload::Columns(
                    bars.slice(s..s + 50_000).into_columns(),
                )),
                bar_count: 0,
            }),
            validation_mode: ValidationMode::Reject as i32,
            source: "bench".into(),
        })
        .collect();
    let started = Instant::now();
    client
        .write_bars(tokio_stream::iter(messages))
        .await
        .unwrap();
    let write_secs = started.elapsed().as_secs_f64();

    println!("## Store (`ktrdr-data`, release, loopback)\n");
    println!(
        "Dataset: {} M one-minute bars, {} partitions of 1 M bars, {:.0} MiB of Parquet (Snappy); built in-process in {build_secs:.1} s ({}).\n",
        BIG / 1_000_000,
        BIG / CHUNK,
        size as f64 / 1_048_576.0,
        rate(BIG, build_secs)
    );
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| ReadBars, Arrow IPC, 100 k bars per message, whole dataset | {} ({ipc_secs:.2} s) |",
        rate(ipc_bars, ipc_secs)
    );
    println!(
        "| ReadBars, packed protobuf columns, same | {} ({col_secs:.2} s) |",
        rate(col_bars, col_secs)
    );
    println!(
        "| same Parquet read in-process (no gRPC) | {} ({in_process_secs:.2} s) |",
        rate(in_process, in_process_secs)
    );
    let ipc_ratio = (ipc_bars as f64 / ipc_secs) / (in_process as f64 / in_process_secs);
    println!("| ReadBars Arrow IPC ÷ in-process | {ipc_ratio:.2} |");
    println!(
        "| WriteBars, 2 M new bars in 50 k-bar messages (validate + Parquet + fsync) | {} ({write_secs:.2} s) |",
        rate(WRITE_BARS, write_secs)
    );
    println!(
        "| server peak RSS before reading | {:.0} MiB |",
        rss_idle as f64 / 1_048_576.0
    );
    println!(
        "| server peak RSS after streaming all {} M bars | {:.0} MiB |",
        BIG / 1_000_000,
        rss_after_ipc as f64 / 1_048_576.0
    );
    println!(
        "\nThe client only counts bars (`bar_count`); it does not decode the IPC payloads. Client and server share the 2 cores.\n"
    );
    println!(
        "{}",
        goal_line(
            "ReadBars (Arrow IPC, loopback) ÷ the same Parquet read in-process",
            &format!("{ipc_ratio:.2}×"),
            "≥ 0.8×",
            ipc_ratio >= 0.8
        )
    );
}
