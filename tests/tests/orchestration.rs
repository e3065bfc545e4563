//! The gateway's orchestrated flows end to end, with every real binary (ib-sim, ib-host, data,
//! training-host, gateway): tail, backfill and full loads, training, the same flows with the
//! gateway running each capability in process, backends killed mid-flow, joins and cancels;
//! predictions on stored bars, with the warm-up and stale timeframes the gateway loads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ktrdr_proto::common::v1::{BarColumns, DatasetRef, JobState, bar_batch};
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::data::v1::{DeleteDatasetRequest, GetCoverageRequest};
use ktrdr_proto::gateway::v1::LoadMode::{Backfill, Full, Tail};
use ktrdr_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use ktrdr_proto::gateway::v1::{
    LoadDataRequest, LoadMode, LoadProgress, LoadStarted, LoadSummary, TrainStrategyRequest,
    load_event, train_strategy_request, train_strategy_response,
};
use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
use ktrdr_proto::training::v1::{
    EvaluateModelRequest, ListModelsRequest, PredictRequest, PredictResponse, TrainingState,
    predict_request, training_event,
};
use ktrdr_system_tests::fixtures::{
    TINY_STRATEGY, time_range, tiny_multi_timeframe_strategy, utc_ms,
};
use ktrdr_system_tests::read_bars;
use ktrdr_system_tests::stack::{FAST_PACING, InProcess, Stack};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

const HOUR: i64 = 3_600_000;
/// Bound on any one flow in these tests; generous for a loaded 2-core machine.
const FLOW: Duration = Duration::from_secs(300);

/// Everything one LoadData call streamed.
#[derive(Debug)]
struct LoadRun {
    started: LoadStarted,
    progress: Vec<LoadProgress>,
    summary: Option<LoadSummary>,
    error: Option<Status>,
}

fn request(symbol: &str, timeframe: &str, mode: LoadMode, start: i64, end: i64) -> LoadDataRequest {
    LoadDataRequest {
        symbol: symbol.into(),
        timeframe: timeframe.into(),
        mode: mode as i32,
        range: time_range(start, end),
        ..Default::default()
    }
}

async fn load(channel: &Channel, request: LoadDataRequest) -> LoadRun {
    let mut stream = GatewayServiceClient::new(channel.clone())
        .load_data(request)
        .await
        .expect("LoadData accepted")
        .into_inner();
    collect(&mut stream).await
}

/// [`load`] of a load that must complete; its summary.
async fn load_completed(channel: &Channel, request: LoadDataRequest) -> LoadSummary {
    completed(&load(channel, request).await).clone()
}

async fn collect(
    stream: &mut tonic::Streaming<ktrdr_proto::gateway::v1::LoadDataResponse>,
) -> LoadRun {
    let mut run = LoadRun {
        started: LoadStarted::default(),
        progress: Vec::new(),
        summary: None,
        error: None,
    };
    tokio::time::timeout(FLOW, async {
        loop {
            match stream.message().await {
                Ok(Some(item)) => match item.event.and_then(|e| e.event) {
                    Some(load_event::Event::Started(s)) => run.started = s,
                    Some(load_event::Event::Progress(p)) => run.progress.push(p),
                    Some(load_event::Event::Summary(s)) => run.summary = Some(s),
                    None => {}
                },
                Ok(None) => break,
                Err(status) => {
                    run.error = Some(status);
                    break;
                }
            }
        }
    })
    .await
    .expect("the load ends");
    run
}

fn completed(run: &LoadRun) -> &LoadSummary {
    let summary = run.summary.as_ref().expect("a summary");
    assert_eq!(summary.state(), JobState::Completed, "{run:#?}");
    assert!(run.error.is_none(), "{run:#?}");
    summary
}

fn bars_within(bars: &BarColumns, start: i64, end: i64) -> usize {
    bars.timestamp_ms
        .iter()
        .filter(|t| (start..end).contains(*t))
        .count()
}

/// Trains `strategy` (EURUSD, `timeframes`) on `[start, end)` through TrainStrategy; returns
/// the final training state and reason, the data load events seen, and whether it started.
async fn train(
    channel: &Channel,
    strategy: &str,
    timeframes: &[&str],
    (start, end): (i64, i64),
) -> (TrainingState, String, usize, bool) {
    let mut stream = GatewayServiceClient::new(channel.clone())
        .train_strategy(TrainStrategyRequest {
            strategy: Some(train_strategy_request::Strategy::StrategyYaml(
                strategy.into(),
            )),
            range: time_range(start, end),
            epochs: Some(2),
            seed: Some(3),
            ..Default::default()
        })
        .await
        .expect("TrainStrategy accepted")
        .into_inner();
    let (mut state, mut reason, mut load_events, mut started) =
        (TrainingState::Unspecified, String::new(), 0, false);
    tokio::time::timeout(FLOW, async {
        while let Some(item) = stream.message().await.expect("the flow succeeds") {
            match item.event.unwrap() {
                train_strategy_response::Event::DataLoad(e) => {
                    assert_eq!(e.symbol, "EURUSD");
                    assert!(timeframes.contains(&e.timeframe.as_str()), "{e:?}");
                    load_events += 1;
                }
                train_strategy_response::Event::TrainingStarted(s) => {
                    assert!(!s.session_id.is_empty());
                    started = true;
                }
                train_strategy_response::Event::Training(e) => {
                    if let Some(training_event::Event::StateChanged(c)) = e.event {
                        state = c.to_state();
                        reason = c.reason;
                    }
                }
                sweep => panic!("a sweep's event without a sweep: {sweep:?}"),
            }
        }
    })
    .await
    .expect("the training ends");
    (state, reason, load_events, started)
}

/// Runs every flow on `stack`; returns the bars each left in the store.
async fn flows(stack: &Stack) -> Vec<BarColumns> {
    let ch = stack.gateway_channel().await;

    // A tail load into an empty store, then a tail that continues after the last bar.
    let first = load(
        &ch,
        request("AAPL", "1h", Tail, utc_ms(2024, 3, 4), utc_ms(2024, 3, 16)),
    )
    .await;
    let first_summary = completed(&first);
    assert_eq!(first.started.bars_cached_before, 0);
    assert!(first_summary.bars_written > 50, "{first:#?}");
    assert_eq!(first.started.segments.len(), 1);
    let tail = load(&ch, request("AAPL", "1h", Tail, 0, utc_ms(2024, 3, 23))).await;
    let tail_summary = completed(&tail);
    assert_eq!(tail.started.bars_cached_before, first_summary.bar_count);
    assert!(
        tail.started.segments[0].start_ms > first_summary.last_ms,
        "{tail:#?}"
    );
    assert!(tail_summary.bar_count > first_summary.bar_count);
    assert!(tail.progress.iter().any(|p| p.segments_done == 1));
    let listed = DataServiceClient::new(ch.clone())
        .list_datasets(ktrdr_proto::data::v1::ListDatasetsRequest {
            symbol: "AAPL".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.datasets[0].source, "ib", "provenance of loaded bars");

    // A backfill (with fill_gaps) that fills a gap left between two loads.
    let (gap_start, gap_end) = (utc_ms(2024, 1, 16), utc_ms(2024, 1, 20));
    load_completed(
        &ch,
        request("MSFT", "1h", Tail, utc_ms(2024, 1, 8), utc_ms(2024, 1, 13)),
    )
    .await;
    load_completed(
        &ch,
        request("MSFT", "1h", Tail, utc_ms(2024, 1, 22), utc_ms(2024, 1, 27)),
    )
    .await;
    assert_eq!(
        bars_within(
            &read_bars(ch.clone(), "MSFT", "1h").await,
            gap_start,
            gap_end
        ),
        0
    );
    let coverage = DataServiceClient::new(ch.clone())
        .get_coverage(GetCoverageRequest {
            symbol: "MSFT".into(),
            timeframe: "1h".into(),
            unexpected_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        coverage
            .gaps
            .iter()
            .any(|g| g.range.unwrap().start_ms < gap_end),
        "the gap is unexpected: {coverage:#?}"
    );
    let mut backfill = request(
        "MSFT",
        "1h",
        Backfill,
        utc_ms(2024, 1, 8),
        utc_ms(2024, 1, 27),
    );
    backfill.fill_gaps = true;
    let backfill = load(&ch, backfill).await;
    completed(&backfill);
    assert!(
        backfill
            .started
            .segments
            .iter()
            .any(|s| s.start_ms <= gap_start && s.end_ms >= gap_end - 8 * HOUR),
        "{backfill:#?}"
    );
    assert!(
        bars_within(
            &read_bars(ch.clone(), "MSFT", "1h").await,
            gap_start,
            gap_end
        ) > 30
    );

    // A full load from the head timestamp.
    let full = load(&ch, request("ES", "1d", Full, 0, 0)).await;
    let full_summary = completed(&full);
    let head = full.started.head_timestamp_ms;
    assert!(head > 0);
    let range = full.started.range.unwrap();
    assert_eq!(range.start_ms, head - head.rem_euclid(86_400_000));
    assert!(full_summary.first_ms >= range.start_ms);
    assert!(full_summary.bar_count > 100, "{full_summary:#?}");
    assert_eq!(
        full.started.segments.len(),
        full_summary.segments_fetched as usize
    );

    // A training run: data loaded first, then a session that completes with a model.
    let (state, reason, load_events, started) = train(
        &ch,
        TINY_STRATEGY,
        &["1h"],
        (utc_ms(2023, 9, 1), utc_ms(2024, 3, 1)),
    )
    .await;
    assert!(load_events >= 2 && started);
    assert_eq!(state, TrainingState::Completed, "{reason}");
    let models = TrainingServiceClient::new(ch.clone())
        .list_models(ListModelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(models.models.len(), 1);

    let mut stored = Vec::new();
    for (symbol, timeframe) in [
        ("AAPL", "1h"),
        ("MSFT", "1h"),
        ("ES", "1d"),
        ("EURUSD", "1h"),
    ] {
        stored.push(read_bars(ch.clone(), symbol, timeframe).await);
    }
    stored
}

#[tokio::test]
async fn every_flow_gives_the_same_bars_through_host_services_and_in_process() {
    let remote = Stack::start(InProcess::NONE, 1, FAST_PACING).await;
    let through_services = flows(&remote).await;
    drop(remote);
    let local = Stack::start(InProcess::ALL, 0, FAST_PACING).await;
    let in_process = flows(&local).await;
    assert_eq!(through_services, in_process);
}

/// ib-sim answers slowly, so a load of many segments is still running when a backend dies.
const SLOW_SIM: &[(&str, &str)] = &[
    ("IB_SIM_PACING", "false"),
    ("IB_PACING", "false"),
    ("IB_SIM_REPLY_DELAY_MS", "150"),
];

/// Waits until the load has finished `segments` segments; returns the stream to drain later.
async fn until_segments_done(
    channel: &Channel,
    request: LoadDataRequest,
    segments: i32,
) -> tonic::Streaming<ktrdr_proto::gateway::v1::LoadDataResponse> {
    let mut stream = GatewayServiceClient::new(channel.clone())
        .load_data(request)
        .await
        .unwrap()
        .into_inner();
    tokio::time::timeout(FLOW, async {
        loop {
            let item = stream.message().await.unwrap().expect("still running");
            if let Some(load_event::Event::Progress(p)) = item.event.and_then(|e| e.event)
                && p.segments_done >= segments
            {
                return;
            }
        }
    })
    .await
    .expect("segments done");
    stream
}

/// Asserts that the load failed UNAVAILABLE saying `naming`; returns its summary.
fn unavailable(run: LoadRun, naming: &str) -> Option<LoadSummary> {
    let error = run.error.expect("the load fails");
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert!(error.message().contains(naming), "{error:?}");
    run.summary
}

#[tokio::test]
async fn a_killed_backend_is_unavailable_by_name_and_the_rerun_fetches_only_what_is_missing() {
    let mut stack = Stack::start(InProcess::NONE, 0, SLOW_SIM).await;
    let ch = stack.gateway_channel().await;
    let (start, end) = (utc_ms(2023, 1, 1), utc_ms(2024, 1, 1));
    let year = || request("SPY", "1h", Tail, start, end);

    // The data service dies mid-load: the load fails UNAVAILABLE naming it.
    let mut stream = until_segments_done(&ch, year(), 3).await;
    let data = stack.data.take().unwrap();
    let (data_addr, data_url) = (data.addr, data.url());
    data.signal("KILL");
    let failed = collect(&mut stream).await;
    let summary = unavailable(failed, &format!("Data service unavailable at {data_url}"));
    assert_eq!(summary.unwrap().state(), JobState::Failed);

    // Restarted on its address and directory: what was stored is intact and contiguous.
    let data = ktrdr_system_tests::ServiceProcess::start(
        "ktrdr-data",
        &[
            ("KTRDR_LISTEN_ADDR", data_addr.to_string().as_str()),
            ("KTRDR_DATA_DIR", stack.data_dir.path().to_str().unwrap()),
        ],
    )
    .await;
    stack.data = Some(data);
    let kept = read_bars(ch.clone(), "SPY", "1h").await;
    assert!(
        !kept.timestamp_ms.is_empty(),
        "segments stored before the kill are kept"
    );
    let last_kept = *kept.timestamp_ms.last().unwrap();

    // The re-run fetches only after what is stored, and IB sees only those requests.
    let before = stack.sim_historical_requests().await;
    let rerun = load(&ch, year()).await;
    let summary = completed(&rerun);
    assert!(
        rerun
            .started
            .segments
            .iter()
            .all(|s| s.start_ms > last_kept),
        "{rerun:#?}"
    );
    assert!(rerun.started.segments.len() < 13, "{rerun:#?}");
    // At most the planned IB requests reach IB (ib-host answers a request identical to one it
    // made seconds ago, the segment whose write failed, from its cache).
    let sent = stack.sim_historical_requests().await - before;
    assert!(
        sent > 0 && sent <= i64::from(summary.ib_requests),
        "{sent} {summary:#?}"
    );
    let all = read_bars(ch.clone(), "SPY", "1h").await;
    assert!(all.timestamp_ms.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        &all.timestamp_ms[..kept.timestamp_ms.len()],
        &kept.timestamp_ms[..]
    );

    // ib-host dies mid-load: UNAVAILABLE naming it; the store still reads.
    let mut stream = until_segments_done(
        &ch,
        request("SPY", "1h", Backfill, utc_ms(2021, 1, 1), 0),
        1,
    )
    .await;
    let ib_host = stack.ib_host.take().unwrap();
    let ib_url = ib_host.url();
    ib_host.signal("KILL");
    let failed = collect(&mut stream).await;
    unavailable(failed, &format!("IB host service unavailable at {ib_url}"));
    let after = read_bars(ch.clone(), "SPY", "1h").await;
    assert!(after.timestamp_ms.len() >= all.timestamp_ms.len());
    assert!(after.timestamp_ms.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn a_second_load_of_a_dataset_joins_the_first_and_cancel_stops_it_for_everyone() {
    let stack = Stack::start(InProcess::NONE, 0, SLOW_SIM).await;
    let ch = stack.gateway_channel().await;
    let year = || request("AAPL", "1h", Tail, utc_ms(2022, 1, 1), utc_ms(2024, 1, 1));
    let mut first = until_segments_done(&ch, year(), 1).await;
    let mut gateway = GatewayServiceClient::new(ch.clone());
    let mut second = gateway.load_data(year()).await.unwrap().into_inner();
    let joined = match second
        .message()
        .await
        .unwrap()
        .unwrap()
        .event
        .unwrap()
        .event
        .unwrap()
    {
        load_event::Event::Started(s) => s,
        other => panic!("first event {other:?}"),
    };
    assert!(joined.joined);

    // Another dataset runs in parallel.
    let other = load(
        &ch,
        request("MSFT", "1d", Tail, utc_ms(2023, 1, 1), utc_ms(2023, 6, 1)),
    )
    .await;
    completed(&other);

    let listed = gateway
        .list_loads(ktrdr_proto::gateway::v1::ListLoadsRequest {
            states: vec![JobState::Running as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.jobs.len(), 1);
    assert_eq!(listed.jobs[0].job_id, joined.job_id);
    assert!(listed.jobs[0].watchers >= 2);

    let cancelled = gateway
        .cancel_load(ktrdr_proto::gateway::v1::CancelLoadRequest {
            job_id: joined.job_id.clone(),
            reason: "test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state(), JobState::Cancelled);
    for stream in [&mut first, &mut second] {
        let run = collect(stream).await;
        assert_eq!(run.summary.unwrap().state(), JobState::Cancelled);
        assert!(run.error.is_none());
    }
    let job = gateway
        .get_load(ktrdr_proto::gateway::v1::GetLoadRequest {
            job_id: joined.job_id,
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.state(), JobState::Cancelled);
    let summary = job.summary.unwrap();
    assert!(summary.segments_fetched >= 1);
    // What was fetched before the cancel is kept.
    assert_eq!(
        read_bars(ch.clone(), "AAPL", "1h").await.timestamp_ms.len() as i64,
        summary.bar_count
    );

    let unknown = gateway
        .get_load(ktrdr_proto::gateway::v1::GetLoadRequest {
            job_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = gateway
        .load_data(request("AAPL", "2h", Tail, 0, 0))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let unknown_symbol = gateway
        .load_data(request("NOPE", "1h", Tail, 0, 0))
        .await
        .unwrap_err();
    assert_eq!(unknown_symbol.code(), Code::NotFound, "{unknown_symbol:?}");
}

/// Adds the bearer token to every call.
fn bearer(
    token: &'static str,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, Status> + Clone {
    move |mut request: tonic::Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        Ok(request)
    }
}

#[tokio::test]
async fn configuration_reflects_the_environment_sessions_spread_over_two_hosts_and_auth_is_enforced()
 {
    use ktrdr_proto::common::v1::BarBatch;
    use ktrdr_proto::data::v1::WriteBarsRequest;
    use ktrdr_proto::gateway::v1::{GetConfigurationRequest, ManagerMode};
    use ktrdr_proto::training::v1::{
        GetTrainingRequest, ListTrainingsRequest, StartTrainingRequest, WatchTrainingRequest,
        start_training_request::Strategy,
    };
    use ktrdr_system_tests::fixtures::trending_hourly_bars;
    use tonic_types::StatusExt;

    let stack = Stack::start(InProcess::NONE, 2, &[("KTRDR_AUTH_TOKEN", "s3cret")]).await;
    let ch = stack.gateway_channel().await;

    // Without the token (or with a wrong one): UNAUTHENTICATED, saying what to send.
    let denied = GatewayServiceClient::new(ch.clone())
        .get_configuration(GetConfigurationRequest {})
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated);
    assert!(
        denied.message().contains("authorization: Bearer"),
        "{denied:?}"
    );
    assert_eq!(
        denied.get_error_details().error_info().unwrap().reason,
        "MISSING_TOKEN"
    );
    let wrong = GatewayServiceClient::with_interceptor(ch.clone(), bearer("guess"))
        .get_configuration(GetConfigurationRequest {})
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let no_token_data = DataServiceClient::new(ch.clone())
        .get_coverage(GetCoverageRequest::default())
        .await
        .unwrap_err();
    assert_eq!(no_token_data.code(), Code::Unauthenticated);
    // Health needs no token.
    let health = tonic_health::pb::health_client::HealthClient::new(ch.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "ktrdr.training.v1.TrainingService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    // The configuration reflects the environment.
    let config = GatewayServiceClient::with_interceptor(ch.clone(), bearer("s3cret"))
        .get_configuration(GetConfigurationRequest {})
        .await
        .unwrap()
        .into_inner();
    let managers: Vec<&str> = config.managers.iter().map(|m| m.manager.as_str()).collect();
    assert_eq!(managers, ["data", "training", "ib"]);
    let hosts: Vec<String> = stack.training_hosts.iter().map(|h| h.url()).collect();
    let training = &config.managers[1];
    assert_eq!(training.mode(), ManagerMode::HostService);
    assert_eq!(training.urls, hosts);
    assert_eq!(training.env["TRAINING_HOST_SERVICE_URL"], hosts.join(","));
    assert_eq!(training.env["USE_TRAINING_HOST_SERVICE"], "true");
    assert!(training.healthy, "{training:#?}");
    let data = &config.managers[0];
    assert_eq!(data.url, stack.data.as_ref().unwrap().url());
    assert!(config.managers.iter().all(|m| m.healthy), "{config:#?}");
    // The two hosts keep their models in directories of their own: said, naming both.
    let warning = &training.warnings[0];
    assert_eq!(warning.code, "MODELS_NOT_SHARED", "{warning:?}");
    assert!(
        hosts.iter().all(|h| warning.message.contains(h.as_str())),
        "{}",
        warning.message
    );
    assert!(config.managers[0].warnings.is_empty());
    let url = stack.gateway.url();
    let cli =
        ktrdr_system_tests::ktrdr_with_env(&url, &["config"], &[("KTRDR_AUTH_TOKEN", "s3cret")])
            .await;
    assert!(
        cli.stdout.contains("warning (training): MODELS_NOT_SHARED"),
        "{cli}"
    );

    // Two sessions through one gateway land on both hosts, and each is followed on its host.
    let batch = BarBatch {
        symbol: "EURUSD".into(),
        timeframe: "1h".into(),
        payload: Some(bar_batch::Payload::Columns(trending_hourly_bars(600, 7))),
        bar_count: 0,
    };
    DataServiceClient::with_interceptor(ch.clone(), bearer("s3cret"))
        .write_bars(tokio_stream::iter([WriteBarsRequest {
            batch: Some(batch),
            ..Default::default()
        }]))
        .await
        .unwrap();
    let mut gateway_training =
        TrainingServiceClient::with_interceptor(ch.clone(), bearer("s3cret"));
    let mut sessions = Vec::new();
    for seed in [1, 2] {
        let started = gateway_training
            .start_training(StartTrainingRequest {
                strategy: Some(Strategy::StrategyYaml(TINY_STRATEGY.into())),
                epochs: Some(1),
                seed: Some(seed),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        sessions.push(started.session_id);
    }
    for host in &stack.training_hosts {
        let listed = TrainingServiceClient::new(host.channel().await)
            .list_trainings(ListTrainingsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.sessions.len(), 1, "each host runs one session");
    }
    for session_id in &sessions {
        let mut events = gateway_training
            .watch_training(WatchTrainingRequest {
                session_id: session_id.clone(),
                after_sequence: None,
            })
            .await
            .unwrap()
            .into_inner();
        tokio::time::timeout(FLOW, async {
            while events.message().await.unwrap().is_some() {}
        })
        .await
        .expect("the session ends");
        let session = gateway_training
            .get_training(GetTrainingRequest {
                session_id: session_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .session
            .unwrap();
        assert_eq!(session.state(), TrainingState::Completed, "{session:#?}");
    }
    let merged = gateway_training
        .list_trainings(ListTrainingsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(merged.total_size, 2);

    // GetStatistics lists each training host with the calls it received.
    let stats = GatewayServiceClient::with_interceptor(ch.clone(), bearer("s3cret"))
        .get_statistics(ktrdr_proto::gateway::v1::GetStatisticsRequest {})
        .await
        .unwrap()
        .into_inner();
    let training: Vec<_> = stats
        .backends
        .iter()
        .filter(|b| b.backend == "training")
        .collect();
    let urls: Vec<&str> = training.iter().map(|b| b.url.as_str()).collect();
    assert_eq!(urls, hosts.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        training.iter().all(|b| b.calls >= 2 && b.healthy),
        "{training:#?}"
    );
}

/// The multi-timeframe tiny strategy trained on September 2023 to February 2024 through the
/// gateway (which loads its 1h, 4h and 1d bars); returns the model id.
async fn multi_timeframe_model(ch: &Channel) -> String {
    let (state, reason, _, _) = train(
        ch,
        &tiny_multi_timeframe_strategy(),
        &["1h", "4h", "1d"],
        (utc_ms(2023, 9, 1), utc_ms(2024, 3, 1)),
    )
    .await;
    assert_eq!(state, TrainingState::Completed, "{reason}");
    TrainingServiceClient::new(ch.clone())
        .list_models(ListModelsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .models[0]
        .model_id
        .clone()
}

/// Predict on the stored EURUSD bars of `[start, end)`.
async fn predict(
    ch: &Channel,
    model_id: &str,
    (start, end): (i64, i64),
) -> Result<PredictResponse, Status> {
    TrainingServiceClient::new(ch.clone())
        .predict(PredictRequest {
            model_id: model_id.into(),
            input: Some(predict_request::Input::Dataset(DatasetRef {
                symbol: "EURUSD".into(),
                timeframe: String::new(),
                range: time_range(start, end),
            })),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The `ErrorInfo` of a DATA_NOT_COVERED answer: its `missing` list.
fn missing_datasets(status: &Status) -> String {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .unwrap_or_else(|| panic!("no ErrorInfo: {status:?}"));
    assert_eq!(info.reason, "DATA_NOT_COVERED", "{status:?}");
    info.metadata["missing"].clone()
}

#[tokio::test]
async fn predict_over_a_range_takes_its_warm_up_from_before_it_and_gives_one_prediction_per_bar() {
    let stack = Stack::start(InProcess::NONE, 1, FAST_PACING).await;
    let ch = stack.gateway_channel().await;
    let model_id = multi_timeframe_model(&ch).await;
    let june = (utc_ms(2024, 6, 1), utc_ms(2024, 7, 1));

    // The training host alone refuses: nothing of June, nor the warm-up before it, is stored.
    let host = stack.training_hosts[0].channel().await;
    let refused = predict(&host, &model_id, june).await.unwrap_err();
    let missing = missing_datasets(&refused);
    for dataset in ["EURUSD 1h", "EURUSD 4h", "EURUSD 1d"] {
        assert!(missing.contains(dataset), "{dataset}: {missing}");
        assert!(refused.message().contains(dataset), "{}", refused.message());
    }
    assert!(
        refused.message().contains("warm-up"),
        "{}",
        refused.message()
    );

    // Through the gateway the bars are loaded, and every hourly bar of June gets a prediction.
    let predicted = predict(&ch, &model_id, june).await.unwrap();
    let stored = read_bars(ch.clone(), "EURUSD", "1h").await;
    let june_bars: Vec<i64> = stored
        .timestamp_ms
        .iter()
        .copied()
        .filter(|t| (june.0..june.1).contains(t))
        .collect();
    assert!(june_bars.len() > 400, "{}", june_bars.len());
    assert_eq!(predicted.timestamp_ms, june_bars);
    assert_eq!(predicted.prob_buy.len(), june_bars.len());

    // Evaluation over the same range scores bars of June only.
    let evaluated = TrainingServiceClient::new(ch.clone())
        .evaluate_model(EvaluateModelRequest {
            model_id: model_id.clone(),
            symbols: vec![],
            range: time_range(june.0, june.1),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(evaluated.bars_evaluated > 0);
    assert!(evaluated.bars_evaluated <= june_bars.len() as i64);
}

#[tokio::test]
async fn stale_higher_timeframes_are_loaded_and_predict_as_with_every_bar_stored() {
    let stack = Stack::start(InProcess::NONE, 1, FAST_PACING).await;
    let ch = stack.gateway_channel().await;
    let model_id = multi_timeframe_model(&ch).await;
    let june = (utc_ms(2024, 6, 1), utc_ms(2024, 7, 1));
    // Newer hourly bars only: the 4h and 1d bars stop at the end of February.
    load_completed(
        &ch,
        request("EURUSD", "1h", Tail, utc_ms(2024, 3, 1), june.1),
    )
    .await;

    // The training host alone refuses, naming the stale datasets, not the complete one.
    let host = stack.training_hosts[0].channel().await;
    let refused = predict(&host, &model_id, june).await.unwrap_err();
    let missing = missing_datasets(&refused);
    assert!(missing.contains("EURUSD 4h"), "{missing}");
    assert!(missing.contains("EURUSD 1d"), "{missing}");
    assert!(!missing.contains("EURUSD 1h"), "{missing}");
    assert!(
        refused.message().contains("EURUSD 1d"),
        "{}",
        refused.message()
    );

    // Through the gateway the missing bars are loaded first.
    let auto = predict(&ch, &model_id, june).await.unwrap();
    assert_eq!(
        auto.timestamp_ms.len(),
        bars_within(&read_bars(ch.clone(), "EURUSD", "1h").await, june.0, june.1)
    );

    // Every bar stored by hand instead, over a longer history: the same predictions.
    let mut data = DataServiceClient::new(ch.clone());
    for timeframe in ["4h", "1d"] {
        data.delete_dataset(DeleteDatasetRequest {
            symbol: "EURUSD".into(),
            timeframe: timeframe.into(),
        })
        .await
        .unwrap();
        load_completed(
            &ch,
            request("EURUSD", timeframe, Full, utc_ms(2022, 6, 1), june.1),
        )
        .await;
    }
    let by_hand = predict(&host, &model_id, june).await.unwrap();
    assert_eq!(by_hand.timestamp_ms, auto.timestamp_ms);
    assert_eq!(by_hand.prob_buy, auto.prob_buy);
    assert_eq!(by_hand.prob_hold, auto.prob_hold);
    assert_eq!(by_hand.prob_sell, auto.prob_sell);
    assert_eq!(by_hand.signals, auto.signals);
}

/// Everything one TrainStrategy sweep streamed, by kind.
#[derive(Debug, Default)]
struct SweepRun {
    started: Option<ktrdr_proto::gateway::v1::SweepStarted>,
    /// (point, session, host) of each TrainingStarted.
    sessions: Vec<(i32, String, String)>,
    /// Training events relayed, each with its point.
    training_events: Vec<i32>,
    progress: Vec<ktrdr_proto::gateway::v1::SweepPoint>,
    summary: Option<ktrdr_proto::gateway::v1::SweepSummary>,
}

/// Reads a sweep's stream to its end; `on_start` runs once, at the first TrainingStarted.
async fn follow_sweep<F: std::future::Future<Output = ()>>(
    stream: &mut tonic::Streaming<ktrdr_proto::gateway::v1::TrainStrategyResponse>,
    on_start: impl FnOnce(String) -> F,
) -> SweepRun {
    let mut run = SweepRun::default();
    let mut on_start = Some(on_start);
    tokio::time::timeout(FLOW, async {
        while let Some(item) = stream.message().await.expect("the sweep streams") {
            match item.event.unwrap() {
                train_strategy_response::Event::SweepStarted(s) => run.started = Some(s),
                train_strategy_response::Event::TrainingStarted(s) => {
                    assert!(item.point > 0, "a sweep's session names its point");
                    run.sessions
                        .push((item.point, s.session_id, s.training_host_url));
                    if let (Some(f), Some(started)) = (on_start.take(), &run.started) {
                        f(started.sweep_id.clone()).await;
                    }
                }
                train_strategy_response::Event::Training(_) => run.training_events.push(item.point),
                train_strategy_response::Event::SweepProgress(p) => {
                    run.progress.push(p.point.unwrap())
                }
                train_strategy_response::Event::SweepSummary(s) => run.summary = Some(s),
                train_strategy_response::Event::DataLoad(_) => {}
            }
        }
    })
    .await
    .expect("the sweep ends");
    run
}

#[tokio::test]
async fn a_sweep_over_two_training_hosts_is_ranked_each_point_has_its_model_and_cancel_stops_every_session()
 {
    use ktrdr_proto::gateway::v1::{HiddenLayers, TrainingSweep};
    use ktrdr_proto::training::v1::{CancelTrainingRequest, GetModelRequest, GetTrainingRequest};

    let stack = Stack::start(InProcess::NONE, 2, FAST_PACING).await;
    let ch = stack.gateway_channel().await;
    stack.store_training_bars().await;
    let sweep_request = |sweep: TrainingSweep, epochs: i32| TrainStrategyRequest {
        strategy: Some(train_strategy_request::Strategy::StrategyYaml(
            TINY_STRATEGY.into(),
        )),
        epochs: Some(epochs),
        seed: Some(3),
        data_mode: LoadMode::Local as i32,
        sweep: Some(sweep),
        ..Default::default()
    };
    let mut gateway = GatewayServiceClient::new(ch.clone());
    let mut training = TrainingServiceClient::new(ch.clone());

    // 2 hidden layer shapes × 2 seeds, two sessions at a time (one per host).
    let grid = TrainingSweep {
        hidden_layers: vec![
            HiddenLayers { sizes: vec![8, 4] },
            HiddenLayers { sizes: vec![16] },
        ],
        seeds: 2,
        ..Default::default()
    };
    let mut stream = gateway
        .train_strategy(sweep_request(grid, 1))
        .await
        .expect("the sweep is accepted")
        .into_inner();
    let run = follow_sweep(&mut stream, |_| async {}).await;
    let started = run.started.expect("SweepStarted");
    assert_eq!((started.points.len(), started.parallel), (4, 2));
    let summary = run.summary.expect("SweepSummary");
    assert_eq!(summary.state(), JobState::Completed, "{summary:#?}");
    assert_eq!(summary.completed, 4);
    assert_eq!(run.progress.len(), 4);
    let hosts: std::collections::BTreeSet<&str> =
        run.sessions.iter().map(|(_, _, h)| h.as_str()).collect();
    let expected: std::collections::BTreeSet<String> =
        stack.training_hosts.iter().map(|h| h.url()).collect();
    assert_eq!(
        hosts,
        expected.iter().map(String::as_str).collect(),
        "the points spread over both hosts"
    );
    for point in 1..=4 {
        assert!(
            run.training_events.contains(&point),
            "point {point}'s training events are relayed"
        );
    }
    let ranks: Vec<i32> = summary.points.iter().map(|p| p.rank).collect();
    assert_eq!(ranks, [1, 2, 3, 4]);
    let losses: Vec<f64> = summary
        .points
        .iter()
        .map(|p| p.metrics.as_ref().unwrap().val_loss.unwrap())
        .collect();
    assert!(losses.windows(2).all(|w| w[0] <= w[1]), "{losses:?}");
    assert_eq!(summary.best_model_id, summary.points[0].model_id);
    assert_eq!(summary.best_point, summary.points[0].point);
    // Each point's model exists on the host that trained it (hosts with models directories of
    // their own number their versions each), made by its session with its hidden layers and
    // labelled with its sweep and point.
    let mut parameters = std::collections::BTreeMap::new();
    for point in &summary.points {
        let host = stack
            .training_hosts
            .iter()
            .find(|h| h.url() == point.training_host_url)
            .expect("the point's host is one of the stack's");
        let model = TrainingServiceClient::new(host.channel().await)
            .get_model(GetModelRequest {
                model_id: point.model_id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("point {}'s model: {e}", point.point))
            .into_inner()
            .model
            .unwrap();
        assert_eq!(model.training_session_id, point.session_id);
        assert_eq!(model.labels["sweep_id"], summary.sweep_id);
        assert_eq!(model.labels["sweep_point"], point.point.to_string());
        let sizes = point.hidden_layers.as_ref().unwrap().sizes.clone();
        parameters
            .entry(sizes)
            .or_insert_with(std::collections::BTreeSet::new)
            .insert(model.parameter_count);
    }
    assert_eq!(parameters.len(), 2, "{parameters:?}");
    assert!(
        parameters.values().all(|counts| counts.len() == 1),
        "one parameter count per shape: {parameters:?}"
    );
    assert_ne!(parameters[&vec![8, 4]], parameters[&vec![16]]);
    let (small, large): (Vec<_>, Vec<_>) = summary
        .points
        .iter()
        .partition(|p| p.hidden_layers.as_ref().unwrap().sizes == [8, 4]);
    assert_eq!((small.len(), large.len()), (2, 2));
    let seeds: std::collections::BTreeSet<u64> = small.iter().map(|p| p.seed).collect();
    assert_eq!(
        seeds,
        [3, 4].into(),
        "every shape trains with the same seeds"
    );

    // Cancelling the sweep by its id cancels its running sessions and starts no more.
    let grid = TrainingSweep {
        learning_rates: vec![0.01, 0.02, 0.03],
        parallel: 1,
        ..Default::default()
    };
    let mut stream = gateway
        .train_strategy(sweep_request(grid, 100_000))
        .await
        .unwrap()
        .into_inner();
    let cancel_with = training.clone();
    let run = follow_sweep(&mut stream, |sweep_id| async move {
        let cancelled = cancel_with
            .clone()
            .cancel_training(CancelTrainingRequest {
                session_id: sweep_id,
                reason: "enough".into(),
            })
            .await
            .expect("CancelTraining takes a sweep id")
            .into_inner();
        assert_eq!(cancelled.state(), TrainingState::Cancelled);
    })
    .await;
    let summary = run.summary.expect("SweepSummary");
    assert_eq!(summary.state(), JobState::Cancelled, "{summary:#?}");
    assert_eq!(summary.cancelled, 3);
    assert_eq!(run.sessions.len(), 1, "only the first point started");
    let session = training
        .get_training(GetTrainingRequest {
            session_id: run.sessions[0].1.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(session.state(), TrainingState::Cancelled);
    assert!(summary.best_model_id.is_empty());

    // A bad grid is refused before anything starts, naming the value.
    let bad = gateway
        .train_strategy(sweep_request(
            TrainingSweep {
                learning_rates: vec![0.01, 20.0],
                ..Default::default()
            },
            1,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let violations = bad
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .clone();
    assert_eq!(violations[0].field, "sweep.learning_rates[1]", "{bad:?}");
}

#[tokio::test]
async fn a_list_merged_over_two_training_hosts_holds_every_item_of_each_beyond_a_hosts_largest_page()
 {
    use ktrdr_proto::training::v1::{BacktestResult, ListBacktestsRequest};
    use prost::Message;

    let stack = Stack::start(InProcess::NONE, 2, FAST_PACING).await;
    // Saved backtests as a training host keeps them (`<models>/_backtests/<id>/result.pb`):
    // more on each host than the 500 a host gives in one page, and one id on both hosts (hosts
    // sharing a models volume), which is listed once.
    const PER_HOST: i64 = 520;
    let save = |host: usize, id: &str, created_at_ms: i64| {
        let dir = stack
            .models_dir
            .path()
            .join(format!("host{host}"))
            .join("_backtests")
            .join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let result = BacktestResult {
            backtest_id: id.to_owned(),
            symbol: "EURUSD".into(),
            created_at_ms,
            ..Default::default()
        };
        std::fs::write(dir.join("result.pb"), result.encode_to_vec()).unwrap();
    };
    for host in 0..2_usize {
        for i in 0..PER_HOST {
            // Interleaved creation times: the merged order alternates between the hosts.
            save(
                host,
                &format!("bt-{host}-{i:04}"),
                1_000_000 + 2 * i + host as i64,
            );
        }
        save(host, "bt-shared", 1);
    }

    let mut training = TrainingServiceClient::new(stack.gateway_channel().await);
    let (mut listed, mut token) = (Vec::new(), String::new());
    let mut total;
    loop {
        let page = training
            .list_backtests(ListBacktestsRequest {
                page_size: 300,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.results.len() <= 300);
        total = page.total_size;
        listed.extend(
            page.results
                .into_iter()
                .map(|r| (r.created_at_ms, r.backtest_id)),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected = 2 * PER_HOST as usize + 1;
    assert_eq!(total as usize, expected);
    assert_eq!(
        listed.len(),
        expected,
        "every page together holds every item once"
    );
    assert!(
        listed.windows(2).all(|w| w[0].0 > w[1].0),
        "newest first, no id twice"
    );
    assert_eq!(listed[0].1, format!("bt-1-{:04}", PER_HOST - 1));
    assert_eq!(listed[expected - 1].1, "bt-shared");
    for host in 0..2 {
        // The oldest of each host's own items: past its first page of 500.
        assert!(
            listed
                .iter()
                .any(|(_, id)| *id == format!("bt-{host}-0000"))
        );
    }
}
