//! Training-host load benchmark against the real release binaries: 64 small sessions started
//! at once on one host (all allowed to run concurrently), with GetStatus and health latency
//! measured while they train. Prints a Markdown section; `make bench` puts it into
//! BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ktrdr_proto::common::v1::{BarBatch, BarColumns, bar_batch};
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::data::v1::{ValidationMode, WriteBarsRequest};
use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
use ktrdr_proto::training::v1::{
    GetStatusRequest, GetTrainingRequest, StartTrainingRequest, TrainingState,
    start_training_request::Strategy,
};
use ktrdr_system_tests::bench::{ms, percentile};
use ktrdr_system_tests::stack::{start_data, start_training_host};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const SESSIONS: usize = 64;
const BARS: usize = 2_000;
const EPOCHS: i32 = 5;

/// The shared tiny strategy, made a little bigger: two hidden layers, dropout, two lookback
/// periods, five epochs.
fn strategy() -> String {
    ktrdr_system_tests::fixtures::TINY_STRATEGY
        .replace("name: \"tiny_rsi\"", "name: \"bench_rsi\"")
        .replace(
            "architecture: { hidden_layers: [8], activation: \"relu\", dropout: 0.0 }",
            "architecture: { hidden_layers: [16, 8], activation: \"relu\", dropout: 0.1 }",
        )
        .replace("lookback_periods: 1", "lookback_periods: 2")
        .replace(
            "learning_rate: 0.01, batch_size: 32, epochs: 3",
            "learning_rate: 0.005, batch_size: 32, epochs: 5",
        )
}

fn bars(n: usize, seed: u64) -> BarColumns {
    ktrdr_system_tests::fixtures::trending_hourly_bars(n, seed)
}

#[tokio::main]
async fn main() {
    let (data, _data_dir) = start_data(&[]).await;
    let models = tempfile::tempdir().unwrap();
    DataServiceClient::new(data.channel().await)
        .write_bars(tokio_stream::iter([WriteBarsRequest {
            batch: Some(BarBatch {
                symbol: "EURUSD".into(),
                timeframe: "1h".into(),
                payload: Some(bar_batch::Payload::Columns(bars(BARS, 7))),
                bar_count: 0,
            }),
            validation_mode: ValidationMode::Reject as i32,
            source: "bench".into(),
        }]))
        .await
        .unwrap();
    let max = SESSIONS.to_string();
    let env = [
        ("KTRDR_MAX_CONCURRENT_TRAININGS", max.as_str()),
        ("RUST_LOG", "warn,ktrdr_common::server=info"),
    ];
    let host = start_training_host(&data.url(), models.path(), &env).await;
    let channel = host.channel().await;
    let mut client = TrainingServiceClient::new(channel.clone());

    let started = Instant::now();
    let mut ids = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let response = client
            .start_training(StartTrainingRequest {
                strategy: Some(Strategy::StrategyYaml(strategy())),
                epochs: Some(EPOCHS),
                seed: Some(i as u64),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        ids.push(response.session_id);
    }
    let start_calls = started.elapsed();

    // Poll status and health while the sessions run, until every one has finished.
    let (mut status_times, mut health_times) = (Vec::new(), Vec::new());
    let mut health = HealthClient::new(channel.clone());
    let deadline = Instant::now() + Duration::from_secs(1_800);
    let mut peak_running = 0;
    loop {
        let t = Instant::now();
        let status = client
            .get_status(GetStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        status_times.push(t.elapsed());
        peak_running = peak_running.max(status.running);
        let t = Instant::now();
        health.check(HealthCheckRequest::default()).await.unwrap();
        health_times.push(t.elapsed());
        if status.running == 0 && status.queued == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "sessions did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = started.elapsed();
    let mut completed = 0;
    for id in &ids {
        let session = client
            .get_training(GetTrainingRequest {
                session_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .session
            .unwrap();
        if session.state() == TrainingState::Completed {
            completed += 1;
        }
    }
    status_times.sort();
    health_times.sort();

    println!("## Training host: {SESSIONS} concurrent small sessions");
    println!();
    println!(
        "One `ktrdr-training-host` (CPU, `KTRDR_MAX_CONCURRENT_TRAININGS={SESSIONS}`) reading from one"
    );
    println!(
        "`ktrdr-data`; each session trains a 2-layer MLP (16, 8) on {BARS} hourly bars for {EPOCHS} epochs."
    );
    println!();
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| sessions completed | {completed} / {SESSIONS} |");
    println!("| peak sessions running at once | {peak_running} |");
    println!(
        "| {SESSIONS} StartTraining calls | {} ms |",
        ms(start_calls)
    );
    println!("| all sessions done | {:.1} s |", total.as_secs_f64());
    println!(
        "| GetStatus while training, p50 / p99 ({} calls) | {} / {} ms |",
        status_times.len(),
        ms(percentile(&status_times, 50.0)),
        ms(percentile(&status_times, 99.0))
    );
    println!(
        "| health check while training, p50 / p99 | {} / {} ms |",
        ms(percentile(&health_times, 50.0)),
        ms(percentile(&health_times, 99.0))
    );
    if let Some(rss) = host.peak_rss_bytes() {
        println!(
            "| training host peak RSS | {:.0} MiB |",
            rss as f64 / 1_048_576.0
        );
    }
    assert_eq!(completed, SESSIONS, "every session completes");
}
