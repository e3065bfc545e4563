//! `ktrdr-training-host` as a real process next to a real `ktrdr-data`: sessions trained from
//! stored bars, watched, cancelled, queued, killed and restarted; the model registry,
//! evaluation and prediction.
//!
//! Training runs in the dev profile here, so datasets and epochs are tiny; long sessions (for
//! cancel and kill) use many small batches and are stopped long before they finish.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use ktrdr_proto::common::v1::{BarBatch, BarColumns, DatasetRef, bar_batch};
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::data::v1::{ValidationMode, WriteBarsRequest};
use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
use ktrdr_proto::training::v1::{
    self as pb, CancelTrainingRequest, EvaluateModelRequest, GetModelRequest, GetTrainingRequest,
    ListModelsRequest, ListTrainingsRequest, PredictRequest, StartTrainingRequest, TrainingState,
    WatchTrainingRequest, start_training_request::Strategy, training_event::Event,
};
use ktrdr_system_tests::ServiceProcess;
use ktrdr_system_tests::stack::{start_data, start_training_host};
use ktrdr_system_tests::training::{
    Client, cancel, get, get_status, list, list_models, start, states, watch_all,
};
use tonic::Code;
use tonic_types::StatusExt;

/// 2024-01-01 00:00 UTC
const T0: i64 = 1_704_067_200_000;
const HOUR: i64 = 3_600_000;
/// Longest a whole session or a wait may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(240);

use ktrdr_system_tests::fixtures::TINY_STRATEGY as STRATEGY;

fn bars(n: usize, seed: u64) -> BarColumns {
    ktrdr_system_tests::fixtures::trending_hourly_bars(n, seed)
}

struct Stack {
    data: ServiceProcess,
    host: ServiceProcess,
    client: Client,
    models: tempfile::TempDir,
    _data_dir: tempfile::TempDir,
}

async fn start_host(data_url: &str, models: &Path, max: &str) -> (ServiceProcess, Client) {
    start_host_with(data_url, models, max, &[]).await
}

async fn start_host_with(
    data_url: &str,
    models: &Path,
    max: &str,
    extra: &[(&str, &str)],
) -> (ServiceProcess, Client) {
    let mut env = vec![("KTRDR_MAX_CONCURRENT_TRAININGS", max)];
    env.extend_from_slice(extra);
    let host = start_training_host(data_url, models, &env).await;
    let client = TrainingServiceClient::new(host.channel().await);
    (host, client)
}

/// data + training host, with `n` hourly EURUSD bars stored.
async fn stack(n: usize, max: &str) -> Stack {
    let (data, data_dir) = start_data(&[]).await;
    write_bars(&data, "EURUSD", bars(n, 7)).await;
    let models = tempfile::tempdir().unwrap();
    let (host, client) = start_host(&data.url(), models.path(), max).await;
    Stack {
        data,
        host,
        client,
        models,
        _data_dir: data_dir,
    }
}

async fn write_bars(data: &ServiceProcess, symbol: &str, columns: BarColumns) {
    let mut client = DataServiceClient::new(data.channel().await);
    client
        .write_bars(tokio_stream::iter([WriteBarsRequest {
            batch: Some(BarBatch {
                symbol: symbol.into(),
                timeframe: "1h".into(),
                payload: Some(bar_batch::Payload::Columns(columns)),
                bar_count: 0,
            }),
            validation_mode: ValidationMode::Reject as i32,
            source: "test".into(),
        }]))
        .await
        .unwrap();
}

fn request(epochs: i32, batch_size: i32) -> StartTrainingRequest {
    StartTrainingRequest {
        strategy: Some(Strategy::StrategyYaml(STRATEGY.into())),
        epochs: Some(epochs),
        batch_size: Some(batch_size),
        seed: Some(11),
        ..Default::default()
    }
}

/// The fields an INVALID_ARGUMENT status names, in order.
fn bad_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// Predict over the stored EURUSD bars of `range` (`None`: all of them).
async fn predict_stored(
    client: &mut Client,
    model_id: &str,
    range: Option<ktrdr_proto::common::v1::TimeRange>,
) -> pb::PredictResponse {
    client
        .predict(PredictRequest {
            model_id: model_id.to_owned(),
            input: Some(pb::predict_request::Input::Dataset(DatasetRef {
                symbol: "EURUSD".into(),
                timeframe: String::new(),
                range,
            })),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Waits until the session reports RUNNING with at least one batch done.
async fn wait_running(client: &mut Client, id: &str) {
    first_event(client, id, "training starts", |e| {
        matches!(e, Event::BatchProgress(_) | Event::EpochProgress(_)).then_some(())
    })
    .await
}

/// Waits for the session's first checkpoint; returns its epoch.
async fn wait_for_checkpoint(client: &mut Client, id: &str) -> i32 {
    first_event(client, id, "a checkpoint is written", |e| match e {
        Event::CheckpointSaved(c) => Some(c.epoch),
        _ => None,
    })
    .await
}

/// The epoch of the session's first EpochProgress event.
async fn first_epoch_of(client: &mut Client, id: &str) -> i32 {
    first_event(client, id, "an epoch finishes", |e| match e {
        Event::EpochProgress(p) => Some(p.epoch),
        _ => None,
    })
    .await
}

/// Watches the session from its start until `pick` accepts an event; panics with `what` if the
/// stream ends (or the wait runs out) first.
async fn first_event<T>(
    client: &mut Client,
    id: &str,
    what: &str,
    pick: impl Fn(Event) -> Option<T>,
) -> T {
    let mut stream = client
        .watch_training(WatchTrainingRequest {
            session_id: id.into(),
            after_sequence: None,
        })
        .await
        .unwrap()
        .into_inner();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(item) = stream.message().await.unwrap() {
            if let Some(found) = item.event.unwrap().event.and_then(&pick) {
                return Some(found);
            }
        }
        None
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting: {what}"));
    found.unwrap_or_else(|| panic!("the session ended first: {what}"))
}

#[tokio::test]
async fn a_session_trains_to_completion_and_evaluate_reproduces_its_test_metrics() {
    let mut s = stack(700, "2").await;
    let started = start(&mut s.client, request(3, 32)).await;
    assert!(!started.session_id.is_empty());
    assert_eq!(
        (started.state(), started.queue_position),
        (TrainingState::LoadingData, 0),
        "a free slot starts the session at once"
    );

    let events = watch_all(&mut s.client, &started.session_id, None).await;
    let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences.first(), Some(&1));
    assert!(
        sequences.windows(2).all(|w| w[1] == w[0] + 1),
        "{sequences:?}"
    );
    assert_eq!(
        states(&events),
        [
            TrainingState::Queued,
            TrainingState::LoadingData,
            TrainingState::Running,
            TrainingState::Completed
        ]
    );
    let epochs: Vec<&pb::EpochProgress> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::EpochProgress(p)) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(epochs.len(), 3, "the requested epoch count is honoured");
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.event, Some(Event::DataLoaded(d)) if d.bars == 700))
    );
    let final_metrics = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::FinalMetrics(m)) => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    let model_id = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::ModelSaved(m)) => Some(m.model_id.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(model_id, "tiny_rsi/EURUSD_1h_v1");
    assert_eq!(final_metrics.epochs_run, 3);
    assert_eq!(final_metrics.confusion_matrix.len(), 9);

    let dir = s.models.path().join(&model_id);
    for file in [
        "model.mpk",
        "config.json",
        "metrics.json",
        "features.json",
        "metadata.json",
        "session.json",
        "strategy.yaml",
    ] {
        assert!(
            dir.join(file).is_file(),
            "{file} missing in {}",
            dir.display()
        );
    }
    assert!(
        s.models
            .path()
            .join("_sessions")
            .join(format!("{}.json", started.session_id))
            .is_file()
    );

    let session = get(&mut s.client, &started.session_id).await;
    assert_eq!(session.state(), TrainingState::Completed);
    assert_eq!(session.model_id, model_id);
    assert_eq!(session.epochs, 3);
    assert_eq!(session.seed, 11);
    assert_eq!(session.last_sequence, *sequences.last().unwrap());

    // A watcher resuming after sequence 3 gets exactly the rest, less the batch progress that
    // a finished session no longer keeps.
    let rest = watch_all(&mut s.client, &started.session_id, Some(3)).await;
    let expected: Vec<i64> = events
        .iter()
        .filter(|e| e.sequence > 3 && !matches!(e.event, Some(Event::BatchProgress(_))))
        .map(|e| e.sequence)
        .collect();
    assert_eq!(
        rest.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        expected
    );

    // The model's own test split, re-read from the data service: the same metrics.
    let evaluated = s
        .client
        .evaluate_model(EvaluateModelRequest {
            model_id: model_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let m = evaluated.metrics.unwrap();
    assert_eq!(m.test_accuracy, final_metrics.test_accuracy);
    assert_eq!(m.confusion_matrix, final_metrics.confusion_matrix);
    assert!((m.test_loss.unwrap() - final_metrics.test_loss.unwrap()).abs() < 1e-9);
    assert_eq!(evaluated.bars_evaluated, final_metrics.test_samples);

    let models = list_models(&mut s.client, ListModelsRequest::default()).await;
    assert_eq!(models.total_size, 1);
    let model = &models.models[0];
    assert_eq!(model.model_id, model_id);
    assert_eq!(model.training_session_id, started.session_id);
    assert_eq!(model.symbols, ["EURUSD"]);
    assert!(model.parameter_count > 0 && model.size_bytes > 0);
    let got = s
        .client
        .get_model(GetModelRequest {
            model_id: model_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.strategy_yaml, STRATEGY);
    assert!(got.config_json.contains("tiny_rsi") && got.metadata_json.contains("EURUSD"));

    let predicted = predict_stored(&mut s.client, &model_id, None).await;
    assert!(!predicted.timestamp_ms.is_empty());
    assert_eq!(predicted.signals.len(), predicted.timestamp_ms.len());
    assert_eq!(predicted.prob_sell.len(), predicted.timestamp_ms.len());

    // The same bars sent with the request give the same predictions as the stored ones.
    let sent = s
        .client
        .predict(PredictRequest {
            model_id: model_id.clone(),
            input: Some(pb::predict_request::Input::Bars(pb::PredictBars {
                batches: vec![BarBatch {
                    symbol: "EURUSD".into(),
                    timeframe: "1h".into(),
                    payload: Some(bar_batch::Payload::Columns(bars(700, 7))),
                    bar_count: 0,
                }],
            })),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.timestamp_ms, predicted.timestamp_ms);
    assert_eq!(sent.signals, predicted.signals);

    // A range needs its warm-up before it: none is stored before the first bar.
    let range = |start_ms, end_ms| Some(ktrdr_proto::common::v1::TimeRange { start_ms, end_ms });
    let refused = s
        .client
        .evaluate_model(EvaluateModelRequest {
            model_id: model_id.clone(),
            symbols: vec![],
            range: range(T0, T0 + 700 * HOUR),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("EURUSD 1h") && refused.message().contains("warm-up"),
        "{}",
        refused.message()
    );
    let info = refused.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, "DATA_NOT_COVERED");
    assert_eq!(
        (
            info.metadata["symbol"].as_str(),
            info.metadata["timeframe"].as_str()
        ),
        ("EURUSD", "1h")
    );

    // Predict over a range: exactly one prediction per stored bar of it.
    let ranged = predict_stored(
        &mut s.client,
        &model_id,
        range(T0 + 300 * HOUR, T0 + 400 * HOUR),
    )
    .await;
    let expected: Vec<i64> = (300..400).map(|h| T0 + h * HOUR).collect();
    assert_eq!(ranged.timestamp_ms, expected);
    // The warm-up makes them the predictions of the whole history for those bars.
    let of_whole: Vec<(i64, f32)> = predicted
        .timestamp_ms
        .iter()
        .copied()
        .zip(predicted.prob_buy.iter().copied())
        .filter(|(t, _)| expected.contains(t))
        .collect();
    for ((t, p), (u, q)) in ranged
        .timestamp_ms
        .iter()
        .zip(&ranged.prob_buy)
        .zip(&of_whole)
    {
        assert_eq!(t, u);
        assert!((p - q).abs() < 1e-4, "{t}: {p} vs {q}");
    }

    // An explicit range labels and scores every bar in it: more rows than the test split.
    let whole = s
        .client
        .evaluate_model(EvaluateModelRequest {
            model_id: model_id.clone(),
            symbols: vec![],
            range: range(T0 + 300 * HOUR, T0 + 700 * HOUR),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        whole.bars_evaluated > final_metrics.test_samples,
        "{whole:?}"
    );
    let unknown = s
        .client
        .evaluate_model(EvaluateModelRequest {
            model_id: "tiny_rsi/EURUSD_1h_v9".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let filtered = list_models(
        &mut s.client,
        ListModelsRequest {
            symbol: "AAPL".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(filtered.total_size, 0);

    let status = get_status(&mut s.client).await;
    assert_eq!(status.device.unwrap().id, "cpu");
    assert_eq!(
        (
            status.running,
            status.queued,
            status.max_concurrent_sessions
        ),
        (0, 0, 2)
    );
    assert_eq!(status.model_count, 1);
    drop(s.data);
}

#[tokio::test]
async fn cancel_stops_a_running_session_promptly() {
    let mut s = stack(700, "1").await;
    // Thousands of batches of 2 rows: far longer than the test runs.
    let id = start(&mut s.client, request(500, 2)).await.session_id;
    wait_running(&mut s.client, &id).await;

    // With the one slot taken, the next session queues; cancelling it ends it at once.
    let queued = start(&mut s.client, request(1, 32)).await;
    assert_eq!(
        (queued.state(), queued.queue_position),
        (TrainingState::Queued, 1)
    );
    let listed = list(
        &mut s.client,
        ListTrainingsRequest {
            states: vec![TrainingState::Queued as i32],
            strategy_name: "tiny_rsi".into(),
            symbol: "EURUSD".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(listed.sessions.len(), 1);
    assert_eq!(listed.sessions[0].queue_position, 1);
    let other = list(
        &mut s.client,
        ListTrainingsRequest {
            strategy_name: "other".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(other.total_size, 0);
    let dequeued = cancel(&mut s.client, &queued.session_id, "").await;
    assert_eq!(dequeued.state(), TrainingState::Cancelled);
    let events = watch_all(&mut s.client, &queued.session_id, None).await;
    assert_eq!(
        states(&events),
        [TrainingState::Queued, TrainingState::Cancelled]
    );

    let asked = Instant::now();
    let cancelled = tokio::time::timeout(
        WAIT,
        s.client.cancel_training(CancelTrainingRequest {
            session_id: id.clone(),
            reason: "enough".into(),
        }),
    )
    .await
    .expect("cancel answers")
    .unwrap()
    .into_inner();
    eprintln!("cancel took {:?}", asked.elapsed());
    assert_eq!(cancelled.state(), TrainingState::Cancelled);
    let events = watch_all(&mut s.client, &id, None).await;
    assert_eq!(states(&events).last(), Some(&TrainingState::Cancelled));
    let reason = events.iter().rev().find_map(|e| match &e.event {
        Some(Event::StateChanged(c)) => Some(c.reason.clone()),
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("cancelled by user: enough"));
    // Idempotent on a terminal session.
    let again = cancel(&mut s.client, &id, "").await;
    assert_eq!(again.state(), TrainingState::Cancelled);
    let status = get_status(&mut s.client).await;
    assert_eq!(status.running, 0);
}

#[tokio::test]
async fn sixteen_sessions_with_a_limit_of_four_all_complete_in_order() {
    let mut s = stack(400, "4").await;
    let mut ids = Vec::new();
    for _ in 0..16 {
        let r = start(&mut s.client, request(1, 64)).await;
        ids.push((r.session_id, r.queue_position));
    }
    assert!(
        ids.iter().any(|(_, position)| *position > 0),
        "some sessions queued: {ids:?}"
    );
    // Status stays answerable while every slot trains (measured, not asserted: shared CI).
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let asked = Instant::now();
        let status = get_status(&mut s.client).await;
        slowest = slowest.max(asked.elapsed());
        assert!(status.running <= 4, "{status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("slowest GetStatus under load: {slowest:?}");
    let mut sessions = Vec::new();
    for (id, _) in &ids {
        let events = watch_all(&mut s.client, id, None).await;
        assert_eq!(
            states(&events).last(),
            Some(&TrainingState::Completed),
            "{id}"
        );
        sessions.push(get(&mut s.client, id).await);
    }
    // FIFO: slots are handed out in creation order.
    let starts: Vec<i64> = sessions.iter().map(|s| s.started_at_ms).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
    let versions: std::collections::BTreeSet<String> =
        sessions.iter().map(|s| s.model_id.clone()).collect();
    assert_eq!(
        versions.len(),
        16,
        "every session saved its own model version"
    );
    let listed = list(
        &mut s.client,
        ListTrainingsRequest {
            page_size: 4,
            ..Default::default()
        },
    )
    .await;
    assert_eq!((listed.sessions.len(), listed.total_size), (4, 16));
    let second = list(
        &mut s.client,
        ListTrainingsRequest {
            page_size: 20,
            page_token: listed.next_page_token,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(second.sessions.len(), 12);
    assert!(second.next_page_token.is_empty());
    // Newest first; sessions created in the same millisecond may tie.
    let created: Vec<i64> = listed
        .sessions
        .iter()
        .chain(&second.sessions)
        .map(|s| s.created_at_ms)
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");
}

#[tokio::test]
async fn a_session_running_when_the_host_is_killed_is_interrupted_after_restart() {
    let mut s = stack(700, "1").await;
    let id = start(&mut s.client, request(500, 2)).await.session_id;
    let checkpoint_epoch = wait_for_checkpoint(&mut s.client, &id).await;
    s.host.signal("KILL");
    s.host.wait().await;

    let (mut host, mut client) = start_host(&s.data.url(), s.models.path(), "1").await;
    let session = get(&mut client, &id).await;
    assert_eq!(session.state(), TrainingState::Interrupted);
    assert!(
        session.last_checkpoint_epoch >= checkpoint_epoch,
        "{session:?}"
    );
    let events = watch_all(&mut client, &id, None).await;
    assert_eq!(states(&events).last(), Some(&TrainingState::Interrupted));
    let listed = list(
        &mut client,
        ListTrainingsRequest {
            states: vec![TrainingState::Interrupted as i32],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(listed.total_size, 1);

    // Resumable: a new session reruns the interrupted one's request from its checkpoint.
    let resumed = client
        .start_training(StartTrainingRequest {
            resume_from_session_id: Some(id.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let again = get(&mut client, &resumed.session_id).await;
    assert_eq!(again.resumed_from_session_id, id);
    assert_eq!(again.epochs, 500);
    let first_epoch = first_epoch_of(&mut client, &resumed.session_id).await;
    assert_eq!(
        first_epoch,
        session.last_checkpoint_epoch + 1,
        "training continues after the checkpoint"
    );
    let cancelled = cancel(&mut client, &resumed.session_id, "").await;
    assert_eq!(cancelled.state(), TrainingState::Cancelled);
    assert!(
        cancelled.checkpoint_epoch >= first_epoch,
        "cancel keeps the checkpoint: {cancelled:?}"
    );
    host.signal("TERM");
    host.wait().await;
}

/// The prod overlay: two hosts on one models volume, each with its own KTRDR_SESSIONS_DIR (the
/// StatefulSet's pod name). A host starting next to a running one leaves its session RUNNING
/// and does not list it; the restarted host finds its own session again, INTERRUPTED, with the
/// checkpoint beside it.
#[tokio::test]
async fn hosts_sharing_a_models_dir_keep_their_sessions_apart() {
    let (data, _data_dir) = start_data(&[]).await;
    write_bars(&data, "EURUSD", bars(700, 7)).await;
    let models = tempfile::tempdir().unwrap();
    let dir_a = models.path().join("_sessions").join("host-0");
    let dir_b = models.path().join("_sessions").join("host-1");
    let env_a = [("KTRDR_SESSIONS_DIR", dir_a.to_str().unwrap())];
    let env_b = [("KTRDR_SESSIONS_DIR", dir_b.to_str().unwrap())];
    let (mut host_a, mut a) = start_host_with(&data.url(), models.path(), "1", &env_a).await;
    let id = start(&mut a, request(500, 2)).await.session_id;
    wait_for_checkpoint(&mut a, &id).await;
    let checkpoint = dir_a.join("checkpoints").join(&id).join("checkpoint.mpk");
    assert!(checkpoint.is_file(), "{}", checkpoint.display());

    let (mut host_b, mut b) = start_host_with(&data.url(), models.path(), "1", &env_b).await;
    assert_eq!(get(&mut a, &id).await.state(), TrainingState::Running);
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir_a.join(format!("{id}.json"))).unwrap()).unwrap();
    assert_eq!(on_disk["record"]["state"], "RUNNING", "{on_disk}");
    let err = b
        .get_training(GetTrainingRequest {
            session_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let listed = list(&mut b, ListTrainingsRequest::default()).await;
    assert_eq!(listed.total_size, 0, "{listed:?}");

    // Host A's pod restarts under the same name: its session is found again, interrupted.
    host_a.signal("KILL");
    host_a.wait().await;
    let (mut host_a, mut a) = start_host_with(&data.url(), models.path(), "1", &env_a).await;
    let session = get(&mut a, &id).await;
    assert_eq!(session.state(), TrainingState::Interrupted);
    assert!(session.last_checkpoint_epoch >= 1, "{session:?}");
    // B, still up, was not disturbed and still lists nothing.
    let listed = list(&mut b, ListTrainingsRequest::default()).await;
    assert_eq!(listed.total_size, 0);
    for host in [&mut host_a, &mut host_b] {
        host.signal("TERM");
        host.wait().await;
    }
}

#[tokio::test]
async fn bad_requests_fail_fast_with_the_right_codes() {
    let mut s = stack(300, "1").await;
    for call in ["get", "watch", "cancel"] {
        let id = "00000000-0000-4000-8000-000000000000".to_owned();
        let status = match call {
            "get" => s
                .client
                .get_training(GetTrainingRequest { session_id: id })
                .await
                .map(|_| ()),
            "watch" => s
                .client
                .watch_training(WatchTrainingRequest {
                    session_id: id,
                    after_sequence: None,
                })
                .await
                .map(|_| ()),
            _ => s
                .client
                .cancel_training(CancelTrainingRequest {
                    session_id: id,
                    reason: String::new(),
                })
                .await
                .map(|_| ()),
        }
        .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{call}: {status:?}");
    }

    let bad_yaml = STRATEGY.replace("period: 14", "period: -3");
    let status = s
        .client
        .start_training(StartTrainingRequest {
            strategy: Some(Strategy::StrategyYaml(bad_yaml)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields = bad_fields(&status);
    assert!(
        fields[0].starts_with("strategy_yaml.indicators[0]"),
        "{fields:?}"
    );

    let status = s
        .client
        .start_training(StartTrainingRequest {
            strategy: Some(Strategy::StrategyName("nowhere".into())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let mut bad_tf = request(1, 32);
    bad_tf.timeframes = vec!["2h".into()];
    let status = s.client.start_training(bad_tf).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("timeframes[0]"),
        "{}",
        status.message()
    );

    // No bars stored for the symbol: the session fails and says what is missing.
    let mut missing = request(1, 32);
    missing.symbols = vec!["GBPUSD".into()];
    let id = start(&mut s.client, missing).await.session_id;
    let events = watch_all(&mut s.client, &id, None).await;
    assert_eq!(states(&events).last(), Some(&TrainingState::Failed));
    let session = get(&mut s.client, &id).await;
    assert!(session.error.contains("GBPUSD 1h"), "{}", session.error);

    // The data service down: UNAVAILABLE naming it and its URL.
    let url = s.data.url();
    s.data.signal("KILL");
    s.data.wait().await;
    let status = s.client.start_training(request(1, 32)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("data service") && status.message().contains(&url),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_host_without_cuda_refuses_to_start_on_it_saying_what_it_has() {
    for (value, says) in [
        ("cuda", "this host has cpu"),
        ("cuda:0,1", "--features cuda"),
        ("gpu", "auto, cpu, cuda or cuda:N"),
    ] {
        let (status, _, stderr) = ktrdr_system_tests::run_to_exit(
            "ktrdr-training-host",
            &[],
            &[("KTRDR_TRAINING_DEVICE", value)],
        )
        .await;
        assert_eq!(status.code(), Some(2), "{value}: {stderr}");
        assert!(
            stderr.contains("KTRDR_TRAINING_DEVICE"),
            "{value}: {stderr}"
        );
        assert!(stderr.contains(says), "{value}: {stderr}");
    }
}

#[tokio::test]
async fn sessions_are_placed_per_device_and_devices_the_host_lacks_are_refused() {
    let (data, _data_dir) = start_data(&[]).await;
    write_bars(&data, "EURUSD", bars(700, 7)).await;
    let models = tempfile::tempdir().unwrap();
    let (host, mut client) = start_host_with(
        &data.url(),
        models.path(),
        "2",
        &[
            ("KTRDR_TRAINING_DEVICE", "cpu"),
            ("KTRDR_TRAINING_SESSIONS_PER_DEVICE", "1"),
        ],
    )
    .await;

    let status = get_status(&mut client).await;
    assert_eq!(status.devices.len(), 1, "{status:?}");
    let cpu = &status.devices[0];
    assert_eq!((cpu.id.as_str(), cpu.kind()), ("cpu", pb::DeviceKind::Cpu));
    assert!(cpu.name.contains("threads"), "{cpu:?}");
    assert!(
        cpu.memory_total_bytes > 0 && cpu.memory_used_bytes > 0,
        "{cpu:?}"
    );
    assert!(cpu.memory_used_bytes <= cpu.memory_total_bytes, "{cpu:?}");
    assert_eq!((cpu.sessions, cpu.max_sessions), (0, 1));
    assert_eq!(status.device.as_ref().map(|d| d.id.as_str()), Some("cpu"));

    // A device this host does not have: FAILED_PRECONDITION naming the ones it has.
    let mut on_gpu = request(1, 32);
    on_gpu.device = Some("cuda:1".into());
    let refused = client.start_training(on_gpu).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let info = refused.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, "DEVICE_UNAVAILABLE");
    assert!(refused.message().contains("cuda:1"), "{refused:?}");
    assert!(refused.message().contains(&cpu.name), "{refused:?}");
    // A device that is no device at all is a bad argument.
    let mut nonsense = request(1, 32);
    nonsense.device = Some("tpu".into());
    let refused = client.start_training(nonsense).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let fields = bad_fields(&refused);
    assert_eq!(fields, ["device"]);

    // Thousands of small batches: still running when the second session comes.
    let mut long = request(500, 2);
    long.device = Some("cpu".into());
    let first = start(&mut client, long).await.session_id;
    wait_running(&mut client, &first).await;
    assert_eq!(get(&mut client, &first).await.device, "cpu");
    // Two sessions may run, but the one device takes one: the second waits.
    let second = start(&mut client, request(1, 32)).await;
    assert_eq!(
        (second.state(), second.queue_position),
        (TrainingState::Queued, 1)
    );
    assert_eq!(get(&mut client, &second.session_id).await.device, "");
    let status = get_status(&mut client).await;
    assert_eq!((status.running, status.queued), (1, 1));
    assert_eq!(status.devices[0].sessions, 1);

    let scraped = ktrdr_system_tests::scrape(host.metrics_addr.unwrap()).await;
    assert_eq!(
        ktrdr_system_tests::sample(&scraped, "training_device_sessions{device=\"cpu\"}"),
        1.0,
        "{scraped}"
    );
    assert!(
        ktrdr_system_tests::sample(
            &scraped,
            "training_device_memory_used_bytes{device=\"cpu\"}"
        ) > 0.0,
        "{scraped}"
    );
    let total = scraped
        .lines()
        .find(|l| l.starts_with("training_device_memory_total_bytes{device=\"cpu\",name=\""))
        .unwrap_or_else(|| panic!("no memory total for the CPU: {scraped}"));
    assert!(total.contains(&cpu.name), "{total}");

    cancel(&mut client, &second.session_id, "").await;
    cancel(&mut client, &first, "").await;
    // The device is given back once the session's task has ended, just after it is CANCELLED.
    tokio::time::timeout(WAIT, async {
        while get_status(&mut client).await.devices[0].sessions != 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the device is free again");
    drop(data);
}
