//! Batch loads: every symbol × timeframe of a `LoadBatchRequest` as one batch whose children are
//! ordinary load jobs ([`LoadManager::start`]). A child therefore joins a running load of its
//! dataset, and all children go through the one ib-host, under its one IB pacing budget. The
//! batch forwards each child's events, reports progress each time a dataset ends, and ends with
//! one summary row per dataset.
//!
//! Invariants: a dataset that cannot start (an unknown symbol) is a FAILED row and never stops
//! the others; the summary is sent once every child has ended; cancelling the batch cancels
//! every child job it started or joined and keeps the rest from starting.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ktrdr_common::error::ServiceError;
use ktrdr_common::market::{symbol_field, time_range, timeframe_field};
use ktrdr_common::server::ResponseStream;
use ktrdr_common::status::now_ms;
use ktrdr_proto::common::v1::{JobState, Progress};
use ktrdr_proto::gateway::v1::{
    BatchDataset, LoadBatchChildEvent, LoadBatchProgress, LoadBatchRequest, LoadBatchResponse,
    LoadBatchStarted, LoadBatchSummary, LoadDataRequest, LoadEvent, LoadMode, load_batch_response,
    load_event,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::Status;

use super::LoadManager;
use super::job::Job;
use crate::events::JobEvent;
use crate::jobs::{Lifecycle, Tracked};

/// The most datasets one batch may load.
pub const MAX_BATCH_DATASETS: usize = 200;
/// Finished batches kept so CancelLoad still answers for them.
pub(super) const FINISHED_BATCHES_KEPT: usize = 100;

/// One running or finished batch.
pub struct Batch {
    pub life: Lifecycle,
    /// The child jobs started (or joined) so far.
    jobs: Mutex<Vec<Arc<Job>>>,
}

impl Batch {
    fn jobs(&self) -> MutexGuard<'_, Vec<Arc<Job>>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Cancels every child and waits (briefly) for the batch to end; its state after that.
    pub async fn cancel(&self) -> JobState {
        // The batch first: a child that starts after this sees it and cancels itself.
        self.life.cancel.cancel();
        for job in self.jobs().iter() {
            job.life.cancel.cancel();
        }
        self.life.cancel_and_wait().await
    }
}

impl Tracked for Batch {
    fn lifecycle(&self) -> &Lifecycle {
        &self.life
    }
}

/// The datasets of a request: symbols × timeframes in request order, duplicates dropped. The
/// options every child shares are checked here too, so a bad one refuses the batch rather than
/// failing every dataset.
pub fn datasets_of(request: &LoadBatchRequest) -> Result<Vec<(String, String)>, ServiceError> {
    time_range("range", request.range.as_ref())?;
    if LoadMode::try_from(request.mode).is_err() {
        return Err(ServiceError::invalid_argument(
            "mode",
            format!(
                "unknown mode {}; use LOAD_MODE_LOCAL, LOAD_MODE_TAIL, LOAD_MODE_BACKFILL or LOAD_MODE_FULL",
                request.mode
            ),
        ));
    }
    if request.symbols.is_empty() || request.timeframes.is_empty() {
        return Err(ServiceError::invalid_argument(
            if request.symbols.is_empty() {
                "symbols"
            } else {
                "timeframes"
            },
            "give at least one symbol and one timeframe",
        ));
    }
    let mut symbols: Vec<String> = Vec::new();
    for (i, raw) in request.symbols.iter().enumerate() {
        let symbol = symbol_field(&format!("symbols[{i}]"), raw)?;
        if !symbols.contains(&symbol) {
            symbols.push(symbol);
        }
    }
    let mut timeframes: Vec<String> = Vec::new();
    for (i, raw) in request.timeframes.iter().enumerate() {
        let timeframe = timeframe_field(&format!("timeframes[{i}]"), raw)?.to_string();
        if !timeframes.contains(&timeframe) {
            timeframes.push(timeframe);
        }
    }
    if symbols.len() * timeframes.len() > MAX_BATCH_DATASETS {
        return Err(ServiceError::invalid_argument(
            "symbols",
            format!(
                "{} symbols × {} timeframes is more than {MAX_BATCH_DATASETS} datasets; split the batch",
                symbols.len(),
                timeframes.len()
            ),
        ));
    }
    Ok(symbols
        .iter()
        .flat_map(|s| timeframes.iter().map(move |tf| (s.clone(), tf.clone())))
        .collect())
}

/// What a child task reports to the batch.
enum ChildUpdate {
    /// An event of the child's job (boxed: events are large, endings small).
    Event(Box<LoadEvent>),
    /// The dataset ended without a job summary: it could not start, or was cancelled first.
    Ended(JobState, String),
}

impl LoadManager {
    /// Starts a batch; its events stream until the summary.
    pub fn start_batch(
        self: &Arc<Self>,
        request: LoadBatchRequest,
    ) -> Result<ResponseStream<LoadBatchResponse>, Status> {
        let datasets = datasets_of(&request)?;
        let batch = Arc::new(Batch {
            life: Lifecycle::new(ktrdr_training_host::spec::new_session_id()),
            jobs: Mutex::new(Vec::new()),
        });
        batch.life.set_state(JobState::Running);
        self.batches.insert(Arc::clone(&batch));
        let (tx, rx) = mpsc::channel(256);
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(
            run_batch(Arc::clone(self), batch, request, datasets, tx),
            span,
        ));
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    /// The batch `id`, if this gateway ran it recently.
    pub fn batch(&self, id: &str) -> Option<Arc<Batch>> {
        self.batches.get(id)
    }
}

async fn run_batch(
    manager: Arc<LoadManager>,
    batch: Arc<Batch>,
    request: LoadBatchRequest,
    datasets: Vec<(String, String)>,
    tx: mpsc::Sender<Result<LoadBatchResponse, Status>>,
) {
    let started_ms = now_ms();
    // The caller may go away; the batch still runs to its end (closing does not cancel).
    let send = |event: load_batch_response::Event| {
        let tx = tx.clone();
        let batch_id = batch.life.id.clone();
        async move {
            let _ = tx
                .send(Ok(LoadBatchResponse {
                    batch_id,
                    event: Some(event),
                }))
                .await;
        }
    };
    let mut rows: Vec<BatchDataset> = datasets
        .iter()
        .map(|(symbol, timeframe)| BatchDataset {
            symbol: symbol.clone(),
            timeframe: timeframe.clone(),
            state: JobState::Queued as i32,
            ..Default::default()
        })
        .collect();
    send(load_batch_response::Event::Started(LoadBatchStarted {
        datasets: rows.clone(),
    }))
    .await;

    let (child_tx, mut child_rx) = mpsc::channel(256);
    for (i, (symbol, timeframe)) in datasets.into_iter().enumerate() {
        let child_request = LoadDataRequest {
            symbol,
            timeframe,
            mode: request.mode,
            range: request.range,
            fill_gaps: request.fill_gaps,
            what_to_show: request.what_to_show,
            use_rth: request.use_rth,
            ..Default::default()
        };
        tokio::spawn(run_child(
            Arc::clone(&manager),
            Arc::clone(&batch),
            i,
            child_request,
            child_tx.clone(),
        ));
    }
    drop(child_tx);

    let total = rows.len();
    let mut ended = 0;
    while let Some((i, update)) = child_rx.recv().await {
        let row: &mut BatchDataset = &mut rows[i];
        let ended_now = match update {
            ChildUpdate::Event(event) => {
                let event = *event;
                row.job_id.clone_from(&event.job_id);
                let summary = match &event.event {
                    Some(load_event::Event::Summary(summary)) => Some(summary.clone()),
                    _ => None,
                };
                match &summary {
                    Some(s) => {
                        row.state = s.state;
                        row.error.clone_from(&s.error);
                    }
                    None => row.state = JobState::Running as i32,
                }
                row.summary = summary;
                let child = LoadBatchChildEvent {
                    symbol: row.symbol.clone(),
                    timeframe: row.timeframe.clone(),
                    event: Some(event),
                };
                send(load_batch_response::Event::Child(child)).await;
                row.summary.is_some()
            }
            ChildUpdate::Ended(state, error) => {
                row.state = state as i32;
                row.error = error;
                true
            }
        };
        if ended_now {
            ended += 1;
            let dataset = rows[i].clone();
            send(load_batch_response::Event::Progress(LoadBatchProgress {
                progress: Some(Progress {
                    percent: ended as f64 * 100.0 / total as f64,
                    step: format!(
                        "{} {} {}",
                        dataset.symbol,
                        dataset.timeframe,
                        dataset.state().as_str_name()
                    ),
                    items_done: ended as i64,
                    items_total: total as i64,
                    unit: "datasets".to_owned(),
                    elapsed_ms: now_ms() - started_ms,
                    ..Default::default()
                }),
                dataset: Some(dataset),
            }))
            .await;
        }
    }

    // Every child task has ended; a row still open lost its job's stream.
    for row in &mut rows {
        if !row.state().is_terminal() {
            row.state = JobState::Failed as i32;
            row.error = "the load job's events ended without a summary".to_owned();
        }
    }
    let count = |state: JobState| rows.iter().filter(|r| r.state() == state).count() as i32;
    let (completed, failed, cancelled) = (
        count(JobState::Completed),
        count(JobState::Failed),
        count(JobState::Cancelled),
    );
    let state = if batch.life.cancel.is_cancelled() {
        JobState::Cancelled
    } else if completed as usize == rows.len() {
        JobState::Completed
    } else {
        JobState::Failed
    };
    send(load_batch_response::Event::Summary(LoadBatchSummary {
        state: state as i32,
        datasets: rows,
        completed,
        failed,
        cancelled,
        elapsed_ms: now_ms() - started_ms,
    }))
    .await;
    batch.life.set_state(state);
}

/// One dataset of a batch: starts (or joins) its load job and forwards the job's events.
async fn run_child(
    manager: Arc<LoadManager>,
    batch: Arc<Batch>,
    index: usize,
    request: LoadDataRequest,
    tx: mpsc::Sender<(usize, ChildUpdate)>,
) {
    let cancelled = || {
        ChildUpdate::Ended(
            JobState::Cancelled,
            "the batch was cancelled before this load started".to_owned(),
        )
    };
    let started = tokio::select! {
        started = manager.start(&request) => started,
        () = batch.life.cancel.cancelled() => {
            let _ = tx.send((index, cancelled())).await;
            return;
        }
    };
    let (job, joined) = match started {
        Ok(started) => started,
        Err(status) => {
            let _ = tx
                .send((
                    index,
                    ChildUpdate::Ended(JobState::Failed, status.message().to_owned()),
                ))
                .await;
            return;
        }
    };
    batch.jobs().push(Arc::clone(&job));
    // Cancelled while this child started: Batch::cancel did not see its job.
    if batch.life.cancel.is_cancelled() {
        job.life.cancel.cancel();
    }
    let mut events = job.events(joined);
    while let Some(Ok(event)) = events.next().await {
        let last = event.is_last();
        if tx
            .send((index, ChildUpdate::Event(Box::new(event))))
            .await
            .is_err()
            || last
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(symbols: &[&str], timeframes: &[&str]) -> LoadBatchRequest {
        LoadBatchRequest {
            symbols: symbols.iter().map(|s| (*s).to_owned()).collect(),
            timeframes: timeframes.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_is_every_symbol_times_every_timeframe_once() {
        let datasets =
            datasets_of(&request(&["aapl", "eur/usd", "AAPL"], &["1h", "1d", "1H"])).unwrap();
        let pairs: Vec<(&str, &str)> = datasets
            .iter()
            .map(|(s, tf)| (s.as_str(), tf.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("AAPL", "1h"),
                ("AAPL", "1d"),
                ("EURUSD", "1h"),
                ("EURUSD", "1d")
            ]
        );
    }

    #[test]
    fn a_bad_symbol_or_timeframe_names_its_position() {
        let err = datasets_of(&request(&["AAPL", "a/b/c"], &["1h"])).unwrap_err();
        assert!(err.to_string().starts_with("invalid symbols[1]"), "{err}");
        let err = datasets_of(&request(&["AAPL"], &["1h", "2h"])).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid timeframes[1]"),
            "{err}"
        );
        let err = datasets_of(&request(&[], &["1h"])).unwrap_err();
        assert!(err.to_string().starts_with("invalid symbols"), "{err}");
        let mut bad_range = request(&["AAPL"], &["1h"]);
        bad_range.range = Some(ktrdr_proto::common::v1::TimeRange {
            start_ms: 20,
            end_ms: 10,
        });
        let err = datasets_of(&bad_range).unwrap_err();
        assert!(err.to_string().starts_with("invalid range"), "{err}");
        let mut bad_mode = request(&["AAPL"], &["1h"]);
        bad_mode.mode = 99;
        let err = datasets_of(&bad_mode).unwrap_err();
        assert!(err.to_string().starts_with("invalid mode"), "{err}");
        let many: Vec<String> = (0..=MAX_BATCH_DATASETS).map(|i| format!("S{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(datasets_of(&request(&many, &["1h"])).is_err());
    }
}
