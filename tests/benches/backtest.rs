//! Backtest end to end against the real release binaries: stored bars → features → batched
//! inference → simulation → metrics → saved tables, one `RunBacktest` call on the training host
//! reading from the data service. Prints a Markdown section; `make bench` puts it into
//! BENCHMARKS.md. The engine alone (and backtesting.py beside it) is the `simulate` bench of
//! `ktrdr-backtest`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ktrdr_proto::common::v1::{BarBatch, bar_batch};
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::data::v1::{ValidationMode, WriteBarsRequest};
use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
use ktrdr_proto::training::v1::{
    RunBacktestRequest, StartTrainingRequest, TrainingState, run_backtest_response,
    start_training_request::Strategy,
};
use ktrdr_system_tests::bench::goal_line;
use ktrdr_system_tests::fixtures::{
    HOUR, T0, TINY_STRATEGY, time_range, trending_hourly_bars, utc_ms,
};
use ktrdr_system_tests::stack::{start_data, start_training_host};

/// Hourly bars stored (from 1990, so the last is in the past).
const BARS: usize = 300_000;
/// The first bars train the model; the backtest runs over the rest.
const TRAINING_BARS: usize = 3_000;
const WRITE_CHUNK: usize = 50_000;
const RUNS: usize = 3;

#[tokio::main]
async fn main() {
    let start = utc_ms(1990, 1, 1);
    let mut columns = trending_hourly_bars(BARS, 11);
    for t in &mut columns.timestamp_ms {
        *t += start - T0;
    }
    let end = start + BARS as i64 * HOUR;

    let (data, _data_dir) = start_data(&[]).await;
    let models = tempfile::tempdir().unwrap();
    let requests: Vec<WriteBarsRequest> = (0..BARS)
        .step_by(WRITE_CHUNK)
        .map(|from| {
            let to = (from + WRITE_CHUNK).min(BARS);
            let mut chunk = columns.clone();
            chunk.timestamp_ms = chunk.timestamp_ms[from..to].to_vec();
            chunk.open = chunk.open[from..to].to_vec();
            chunk.high = chunk.high[from..to].to_vec();
            chunk.low = chunk.low[from..to].to_vec();
            chunk.close = chunk.close[from..to].to_vec();
            chunk.volume = chunk.volume[from..to].to_vec();
            WriteBarsRequest {
                batch: Some(BarBatch {
                    symbol: "EURUSD".into(),
                    timeframe: "1h".into(),
                    payload: Some(bar_batch::Payload::Columns(chunk)),
                    bar_count: 0,
                }),
                validation_mode: ValidationMode::Reject as i32,
                source: "bench".into(),
            }
        })
        .collect();
    DataServiceClient::new(data.channel().await)
        .max_encoding_message_size(usize::MAX)
        .write_bars(tokio_stream::iter(requests))
        .await
        .unwrap();
    let host = start_training_host(
        &data.url(),
        models.path(),
        &[("RUST_LOG", "warn,ktrdr_common::server=info")],
    )
    .await;
    let mut client =
        TrainingServiceClient::new(host.channel().await).max_decoding_message_size(usize::MAX);
    let training_end = start + TRAINING_BARS as i64 * HOUR;
    let session_id = client
        .start_training(StartTrainingRequest {
            strategy: Some(Strategy::StrategyYaml(TINY_STRATEGY.into())),
            range: time_range(start, training_end),
            epochs: Some(1),
            seed: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .session_id;
    let deadline = Instant::now() + Duration::from_secs(600);
    let model_id = loop {
        let session = ktrdr_system_tests::training::get(&mut client, &session_id).await;
        match session.state() {
            TrainingState::Completed => break session.model_id,
            TrainingState::Failed | TrainingState::Cancelled => {
                panic!("training failed: {}", session.error)
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "training did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let (mut best, mut bars, mut host_ms, mut trades) = (f64::INFINITY, 0, 0, 0);
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut stream = client
            .run_backtest(RunBacktestRequest {
                model_id: model_id.clone(),
                symbol: "EURUSD".into(),
                range: time_range(training_end, end),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut run = None;
        while let Some(item) = stream.message().await.unwrap() {
            if let Some(run_backtest_response::Event::Result(result)) = item.event {
                run = Some(result);
            }
        }
        let wall = started.elapsed().as_secs_f64();
        let result = run.expect("the backtest ends with its result");
        if wall < best {
            best = wall;
            bars = result.bars;
            host_ms = result.elapsed_ms;
            trades = result.metrics.map_or(0, |m| m.trades);
        }
    }
    let rate = bars as f64 / best;
    println!("## Backtest end to end (release, one training host, one data service)");
    println!();
    println!(
        "`TrainingService.RunBacktest` of a small model (RSI + EMA, fuzzy sets, MLP 8) over \
         {bars} stored hourly bars: the call reads them (and the warm-up) from `ktrdr-data`, \
         computes indicators, fuzzy memberships and features, predicts every bar in batches, \
         simulates with the default costs and filters, computes every metric and saves the \
         result with its trade list and equity curve. Best of {RUNS} calls, wall clock at the \
         client."
    );
    println!();
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| bars backtested | {bars} |");
    println!("| trades | {trades} |");
    println!("| call, wall | {:.0} ms |", best * 1e3);
    println!("| of which on the host after the read (predict, simulate, save) | {host_ms} ms |");
    println!(
        "| **bars per second, end to end** | **{:.0} k** (goal ≥ 500 k) |",
        rate / 1e3
    );
    println!();
    println!(
        "{}",
        goal_line(
            "RunBacktest end to end",
            &format!("{:.0} k bars/s", rate / 1e3),
            "≥ 500 k bars/s",
            rate >= 500_000.0
        )
    );
    assert!(bars > 0, "the backtest traded bars");
}
