//! Backtests through the real binaries: a model trained through the gateway, then backtested
//! as a gateway job (bars loaded from ib-sim as needed), its saved result read back through the
//! training host's API, bad requests refused before anything is written, cancel, several
//! symbols at once, and a walk-forward.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ktrdr_proto::common::v1::{JobState, TimeRange};
use ktrdr_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use ktrdr_proto::gateway::v1::{
    BacktestEvent, BacktestStrategyRequest, CancelBacktestJobRequest, GetBacktestJobRequest,
    ListBacktestJobsRequest, LoadMode, TrainStrategyRequest, WalkForward, backtest_event,
    backtest_strategy_request, train_strategy_request, train_strategy_response,
};
use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
use ktrdr_proto::training::v1::{
    BacktestResult, BacktestSettings, BacktestTable, GetBacktestRequest, ListBacktestsRequest,
    ReadBacktestTableRequest, TableFormat, training_event,
};
use ktrdr_system_tests::fixtures::{TINY_STRATEGY, utc_ms};
use ktrdr_system_tests::stack::{FAST_PACING, InProcess, Stack};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

const FLOW: Duration = Duration::from_secs(300);

fn range(start: i64, end: i64) -> Option<TimeRange> {
    Some(TimeRange {
        start_ms: start,
        end_ms: end,
    })
}

/// Trains `strategy` through the gateway over `[start, end)`; the saved model's id.
async fn train_model(ch: &Channel, strategy: &str, start: i64, end: i64) -> String {
    let mut stream = GatewayServiceClient::new(ch.clone())
        .train_strategy(TrainStrategyRequest {
            strategy: Some(train_strategy_request::Strategy::StrategyYaml(
                strategy.into(),
            )),
            range: range(start, end),
            epochs: Some(2),
            seed: Some(3),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut model_id = String::new();
    tokio::time::timeout(FLOW, async {
        while let Some(item) = stream.message().await.unwrap() {
            if let Some(train_strategy_response::Event::Training(e)) = item.event
                && let Some(training_event::Event::ModelSaved(saved)) = e.event
            {
                model_id = saved.model_id;
            }
        }
    })
    .await
    .expect("training ends");
    assert!(!model_id.is_empty(), "a model was saved");
    model_id
}

/// Runs a backtest job to its end; its events.
async fn backtest(
    ch: &Channel,
    request: BacktestStrategyRequest,
) -> Result<Vec<BacktestEvent>, Status> {
    let mut stream = GatewayServiceClient::new(ch.clone())
        .backtest_strategy(request)
        .await?
        .into_inner();
    let mut events = Vec::new();
    tokio::time::timeout(FLOW, async {
        while let Some(item) = stream.message().await? {
            events.push(item.event.unwrap());
        }
        Ok::<_, Status>(())
    })
    .await
    .expect("the backtest ends")?;
    Ok(events)
}

fn summary(events: &[BacktestEvent]) -> &ktrdr_proto::gateway::v1::BacktestSummary {
    match events.last().and_then(|e| e.event.as_ref()) {
        Some(backtest_event::Event::Summary(s)) => s,
        other => panic!("the last event is not the summary: {other:?}"),
    }
}

fn model_request(model_id: &str, start: i64, end: i64) -> BacktestStrategyRequest {
    BacktestStrategyRequest {
        model: Some(backtest_strategy_request::Model::ModelId(model_id.into())),
        range: range(start, end),
        ..Default::default()
    }
}

async fn table(ch: &Channel, id: &str, table: BacktestTable, format: TableFormat) -> Vec<u8> {
    let mut stream = TrainingServiceClient::new(ch.clone())
        .read_backtest_table(ReadBacktestTableRequest {
            backtest_id: id.into(),
            table: table as i32,
            format: format as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        bytes.extend(chunk.chunk);
    }
    bytes
}

fn field_of(status: &Status) -> String {
    status
        .get_error_details()
        .bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

/// Every saved backtest directory (staging ones included) of the stack's first training host.
fn saved_backtests(stack: &Stack) -> Vec<String> {
    std::fs::read_dir(stack.models_dir.path().join("host0").join("_backtests"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn a_backtest_job_loads_what_it_lacks_and_saves_a_result_readable_as_arrow_and_csv() {
    let stack = Stack::start(InProcess::NONE, 1, FAST_PACING).await;
    let ch = stack.gateway_channel().await;
    let model_id = train_model(&ch, TINY_STRATEGY, utc_ms(2023, 9, 1), utc_ms(2024, 3, 1)).await;
    // April and May are not stored yet: the job loads them (and the warm-up) from ib-sim.
    let (start, end) = (utc_ms(2024, 4, 1), utc_ms(2024, 6, 1));
    let events = backtest(&ch, model_request(&model_id, start, end))
        .await
        .unwrap();
    assert!(matches!(
        events[0].event,
        Some(backtest_event::Event::Started(_))
    ));
    assert!(
        events
            .iter()
            .any(|e| matches!(e.event, Some(backtest_event::Event::DataLoad(_)))),
        "the missing bars were loaded"
    );
    let stages: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(backtest_event::Event::Progress(p)) => {
                p.progress.as_ref().map(|p| p.stage.clone())
            }
            _ => None,
        })
        .collect();
    for stage in ["predicting", "simulating", "saving"] {
        assert!(stages.iter().any(|s| s == stage), "{stages:?}");
    }
    let ended = summary(&events);
    assert_eq!(ended.state(), JobState::Completed, "{}", ended.error);
    let result: &BacktestResult = &ended.results[0];
    assert_eq!(result.symbol, "EURUSD");
    assert_eq!(result.timeframe, "1h");
    assert!(!result.overlaps_training);
    assert!(result.bars > 900, "{}", result.bars);
    let metrics = result.metrics.as_ref().unwrap();
    assert_eq!(metrics.start_ms, start.max(metrics.start_ms));
    assert!(metrics.end_ms < end);
    let signals = result.signals.as_ref().unwrap();
    assert_eq!(
        signals.raw_buy + signals.raw_sell,
        signals.executed
            + signals.dropped_low_confidence
            + signals.dropped_too_soon
            + signals.dropped_already_positioned
            + signals.dropped_shorts_disabled
            + signals.dropped_last_bar
            + signals.dropped_unaffordable
    );

    // Saved, and read back through the gateway's TrainingService.
    let mut training = TrainingServiceClient::new(ch.clone());
    let saved = training
        .get_backtest(GetBacktestRequest {
            backtest_id: result.backtest_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    // NaN fields (a side without trades) compare unequal; the rendering does not.
    assert_eq!(format!("{saved:?}"), format!("{result:?}"));
    let listed = training
        .list_backtests(ListBacktestsRequest {
            model_id: model_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(format!("{:?}", listed.results), format!("{:?}", [saved]));

    let equity = table(
        &ch,
        &result.backtest_id,
        BacktestTable::Equity,
        TableFormat::ArrowIpc,
    )
    .await;
    let batches = ktrdr_market::arrow::ipc_to_record_batches(&equity).unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as i64, result.bars);
    assert_eq!(
        batches[0].schema(),
        ktrdr_backtest::tables::EQUITY_SCHEMA.clone()
    );
    let trades = table(
        &ch,
        &result.backtest_id,
        BacktestTable::Trades,
        TableFormat::Csv,
    )
    .await;
    let csv = String::from_utf8(trades).unwrap();
    assert!(
        csv.starts_with("side,units,signal_time,entry_time"),
        "{csv}"
    );
    assert_eq!(csv.lines().count() as i64, metrics.trades + 1);

    // The job is listed and can be read again.
    let mut gateway = GatewayServiceClient::new(ch.clone());
    let job = gateway
        .get_backtest_job(GetBacktestJobRequest {
            job_id: events[0].job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.state(), JobState::Completed);
    assert_eq!(job.progress.unwrap().items_done, 1);
    let jobs = gateway
        .list_backtest_jobs(ListBacktestJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(jobs.jobs.len(), 1);

    // The same request again: identical metrics (deterministic), a new id.
    let again = backtest(&ch, model_request(&model_id, start, end))
        .await
        .unwrap();
    let second = &summary(&again).results[0];
    assert_ne!(second.backtest_id, result.backtest_id);
    assert_eq!(
        format!("{:?}", second.metrics),
        format!("{:?}", result.metrics)
    );
}

#[tokio::test]
async fn bad_backtest_requests_are_refused_naming_the_field_and_write_nothing() {
    let stack = Stack::start(InProcess::NONE, 1, FAST_PACING).await;
    let ch = stack.gateway_channel().await;
    let (train_start, train_end) = (utc_ms(2023, 9, 1), utc_ms(2024, 3, 1));
    let model_id = train_model(&ch, TINY_STRATEGY, train_start, train_end).await;
    let (start, end) = (utc_ms(2024, 3, 1), utc_ms(2024, 4, 1));

    let negative = BacktestStrategyRequest {
        settings: Some(BacktestSettings {
            commission_rate: Some(-0.001),
            ..Default::default()
        }),
        ..model_request(&model_id, start, end)
    };
    let refused = backtest(&ch, negative).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(field_of(&refused), "settings.commission_rate");

    let empty = backtest(&ch, model_request(&model_id, start, start))
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument, "{empty:?}");
    assert_eq!(field_of(&empty), "range.end_ms");

    let unknown = backtest(&ch, model_request("tiny_rsi/EURUSD_1h_v99", start, end))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument, "{unknown:?}");
    assert_eq!(field_of(&unknown), "model_id");
    assert!(unknown.message().contains("v99"), "{}", unknown.message());

    let other_symbol = BacktestStrategyRequest {
        symbols: vec!["GBPUSD".into()],
        ..model_request(&model_id, start, end)
    };
    let refused = backtest(&ch, other_symbol).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(field_of(&refused), "symbols[0]");
    assert!(
        refused.message().contains("EURUSD"),
        "{}",
        refused.message()
    );

    // In sample: the job runs, its symbol fails with the reason; with the override it runs,
    // flagged.
    let in_sample = backtest(
        &ch,
        model_request(&model_id, utc_ms(2023, 10, 1), utc_ms(2023, 11, 1)),
    )
    .await
    .unwrap();
    let s = summary(&in_sample);
    assert_eq!(s.state(), JobState::Failed);
    assert_eq!(s.failures[0].code, "FAILED_PRECONDITION");
    assert!(
        s.failures[0].message.contains("allow_training_overlap"),
        "{}",
        s.failures[0].message
    );
    assert!(saved_backtests(&stack).is_empty(), "nothing saved");
    let flagged = backtest(
        &ch,
        BacktestStrategyRequest {
            allow_training_overlap: true,
            ..model_request(&model_id, utc_ms(2023, 10, 1), utc_ms(2023, 11, 1))
        },
    )
    .await
    .unwrap();
    let result = &summary(&flagged).results[0];
    assert!(result.overlaps_training);
    let training_range = result.training_range.unwrap();
    assert!(training_range.start_ms >= train_start && training_range.end_ms <= train_end);
    assert_eq!(
        saved_backtests(&stack),
        std::slice::from_ref(&result.backtest_id)
    );
}

#[tokio::test]
async fn a_backtest_job_is_cancelled_within_a_second() {
    let stack = Stack::start(InProcess::NONE, 1, FAST_PACING).await;
    let ch = stack.gateway_channel().await;
    let model_id = train_model(&ch, TINY_STRATEGY, utc_ms(2023, 9, 1), utc_ms(2024, 3, 1)).await;
    // Years of bars to load first: the job is still loading when it is cancelled.
    let mut stream = GatewayServiceClient::new(ch.clone())
        .backtest_strategy(model_request(
            &model_id,
            utc_ms(2015, 1, 1),
            utc_ms(2023, 1, 1),
        ))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap().event.unwrap();
    let cancelled = tokio::time::timeout(
        Duration::from_secs(1),
        GatewayServiceClient::new(ch.clone()).cancel_backtest_job(CancelBacktestJobRequest {
            job_id: first.job_id.clone(),
            reason: "test".into(),
        }),
    )
    .await
    .expect("cancelled within a second")
    .unwrap()
    .into_inner()
    .job
    .unwrap();
    assert_eq!(cancelled.state(), JobState::Cancelled);
    assert!(cancelled.error.contains("test"), "{}", cancelled.error);
    let mut last = None;
    while let Some(item) = stream.message().await.unwrap() {
        last = item.event;
    }
    let Some(BacktestEvent {
        event: Some(backtest_event::Event::Summary(s)),
        ..
    }) = last
    else {
        panic!("the stream ends with the summary: {last:?}");
    };
    assert_eq!(s.state(), JobState::Cancelled);
    assert!(saved_backtests(&stack).is_empty());
}

#[tokio::test]
async fn several_symbols_are_backtested_in_one_job_and_a_walk_forward_trains_each_window() {
    let stack = Stack::start(InProcess::NONE, 1, FAST_PACING).await;
    let ch = stack.gateway_channel().await;
    let two_symbols = TINY_STRATEGY.replace(
        "symbols: { mode: \"single\", symbol: \"EURUSD\" }",
        "symbols: { mode: \"multi_symbol\", list: [\"EURUSD\", \"GBPUSD\"] }",
    );
    let model_id = train_model(&ch, &two_symbols, utc_ms(2023, 9, 1), utc_ms(2024, 3, 1)).await;
    let events = backtest(
        &ch,
        BacktestStrategyRequest {
            data_mode: LoadMode::Unspecified as i32,
            ..model_request(&model_id, utc_ms(2024, 3, 1), utc_ms(2024, 4, 1))
        },
    )
    .await
    .unwrap();
    let s = summary(&events);
    assert_eq!(s.state(), JobState::Completed, "{}", s.error);
    let mut symbols: Vec<&str> = s.results.iter().map(|r| r.symbol.as_str()).collect();
    symbols.sort_unstable();
    assert_eq!(symbols, ["EURUSD", "GBPUSD"]);

    // Walk-forward: 5-month training windows, 1-month out-of-sample windows.
    let events = backtest(
        &ch,
        BacktestStrategyRequest {
            model: Some(backtest_strategy_request::Model::StrategyYaml(
                TINY_STRATEGY.replace("zigzag_threshold: 0.01", "zigzag_threshold: 0.005"),
            )),
            range: range(utc_ms(2023, 7, 1), utc_ms(2024, 2, 1)),
            walk_forward: Some(WalkForward {
                train_ms: utc_ms(2023, 12, 1) - utc_ms(2023, 7, 1),
                test_ms: 31 * 86_400_000,
                epochs: Some(1),
                seed: Some(5),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let trained: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(backtest_event::Event::FoldTrained(f)) => Some(f.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(trained.len(), 2, "{:?}", summary(&events));
    for fold in &trained {
        let (train, test) = (fold.train_range.unwrap(), fold.test_range.unwrap());
        assert_eq!(train.end_ms, test.start_ms);
    }
    assert_ne!(trained[0].model_id, trained[1].model_id);
    let s = summary(&events);
    assert_eq!(s.state(), JobState::Completed, "{}", s.error);
    let result = &s.results[0];
    assert_eq!(result.folds.len(), 2);
    assert_eq!(
        result.folds.iter().map(|f| f.bars).sum::<i64>(),
        result.bars
    );
    assert!(!result.overlaps_training);
}
