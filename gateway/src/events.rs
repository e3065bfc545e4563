//! A job's events as its watchers receive them, for every kind of gateway job that streams
//! events (loads and backtests).
//!
//! Invariants:
//! - A watcher that starts at any time receives the job's events in the order they were
//!   published, each at most once, up to and including the last one (the job's summary); a
//!   failed job's watchers then get its failure status.
//! - An event leaves the log only when a later one supersedes it ([`JobEvent::supersedes`]: a
//!   newer progress snapshot of the same thing, or a summary that repeats what it carried). A
//!   late or slow watcher therefore skips stale progress only, never a start, a result or the
//!   summary, and the log of a long job stays as small as the things it reports on.
//! - A watcher's task ends when its caller goes away, even while the job is quiet; the watcher
//!   count follows.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ktrdr_common::server::ResponseStream;
use tokio::sync::{mpsc, watch};
use tonic::Status;

/// Watcher events buffered per caller before the job's log waits for the caller to read.
const WATCHER_BUFFER: usize = 64;

/// An event of a job's stream.
pub trait JobEvent: Clone + Send + Sync + 'static {
    /// Whether this event is the job's last (its summary).
    fn is_last(&self) -> bool;
    /// Whether this event makes `earlier` useless to a watcher that has not received it yet.
    fn supersedes(&self, earlier: &Self) -> bool;
}

struct Log<E> {
    /// Published events not superseded, each with its sequence number, oldest first.
    events: Vec<(u64, E)>,
    next: u64,
    /// The status a failed job's watchers get after its last event.
    failure: Option<Status>,
}

/// The events of one job.
pub struct EventLog<E> {
    log: Mutex<Log<E>>,
    /// The sequence number after the newest event; watchers wait on it.
    published: watch::Sender<u64>,
    watchers: AtomicI32,
}

impl<E: JobEvent> Default for EventLog<E> {
    fn default() -> Self {
        Self {
            log: Mutex::new(Log {
                events: Vec::new(),
                next: 0,
                failure: None,
            }),
            published: watch::Sender::new(0),
            watchers: AtomicI32::new(0),
        }
    }
}

/// Keeps the watcher count while a watcher's task runs.
struct Watching<E>(Arc<EventLog<E>>);

impl<E> Drop for Watching<E> {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<E: JobEvent> EventLog<E> {
    fn lock(&self) -> MutexGuard<'_, Log<E>> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `event`, dropping the events it supersedes, and wakes every watcher.
    pub fn publish(&self, event: E) {
        let mut log = self.lock();
        log.events.retain(|(_, earlier)| !event.supersedes(earlier));
        let seq = log.next;
        log.next += 1;
        log.events.push((seq, event));
        drop(log);
        self.published.send_replace(seq + 1);
    }

    /// Records the status that ends the watchers' streams of a failed job; set it before the
    /// last event is published.
    pub fn set_failure(&self, status: Status) {
        self.lock().failure = Some(status);
    }

    /// Callers watching the job now.
    pub fn watchers(&self) -> i32 {
        self.watchers.load(Ordering::Relaxed)
    }

    /// The events from the first still in the log, then each new one, up to the last (then the
    /// failure, if any). A task forwards them and stops when the caller goes.
    pub fn follow(self: &Arc<Self>) -> ResponseStream<E> {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        let watching = Watching(Arc::clone(self));
        let mut published = self.published.subscribe();
        let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
        tokio::spawn(async move {
            let log = &watching.0;
            let mut next = 0;
            loop {
                let (batch, failure) = {
                    let log = log.lock();
                    let batch: Vec<(u64, E)> = log
                        .events
                        .iter()
                        .filter(|(seq, _)| *seq >= next)
                        .cloned()
                        .collect();
                    (batch, log.failure.clone())
                };
                for (seq, event) in batch {
                    next = seq + 1;
                    let last = event.is_last();
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                    if last {
                        if let Some(status) = failure {
                            let _ = tx.send(Err(status)).await;
                        }
                        return;
                    }
                }
                tokio::select! {
                    changed = published.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;

    /// A progress value, a milestone, or the last event.
    #[derive(Debug, Clone, PartialEq)]
    enum Ev {
        Progress(u32),
        Milestone(&'static str),
        Last,
    }

    impl JobEvent for Ev {
        fn is_last(&self) -> bool {
            *self == Ev::Last
        }

        fn supersedes(&self, earlier: &Self) -> bool {
            matches!((self, earlier), (Ev::Progress(_), Ev::Progress(_)))
        }
    }

    async fn all(log: &Arc<EventLog<Ev>>) -> Vec<Result<Ev, String>> {
        log.follow()
            .map(|r| r.map_err(|s| s.message().to_owned()))
            .collect()
            .await
    }

    #[tokio::test]
    async fn a_late_watcher_gets_every_milestone_and_only_the_latest_progress() {
        let log = Arc::new(EventLog::default());
        for event in [
            Ev::Milestone("started"),
            Ev::Progress(1),
            Ev::Progress(2),
            Ev::Milestone("half"),
            Ev::Progress(3),
            Ev::Last,
        ] {
            log.publish(event);
        }
        let got = all(&log).await;
        assert_eq!(
            got,
            [
                Ok(Ev::Milestone("started")),
                Ok(Ev::Milestone("half")),
                Ok(Ev::Progress(3)),
                Ok(Ev::Last)
            ]
        );
        assert_eq!(log.watchers(), 0, "the finished watcher is gone");
    }

    #[tokio::test]
    async fn a_live_watcher_follows_new_events_and_a_failure_ends_its_stream() {
        let log = Arc::new(EventLog::default());
        log.publish(Ev::Milestone("started"));
        let mut stream = log.follow();
        assert_eq!(
            stream.next().await.unwrap().unwrap(),
            Ev::Milestone("started")
        );
        assert_eq!(log.watchers(), 1);
        log.publish(Ev::Progress(1));
        assert_eq!(stream.next().await.unwrap().unwrap(), Ev::Progress(1));
        log.set_failure(Status::unavailable("the data service went away"));
        log.publish(Ev::Last);
        assert_eq!(stream.next().await.unwrap().unwrap(), Ev::Last);
        let failure = stream.next().await.unwrap().unwrap_err();
        assert_eq!(failure.message(), "the data service went away");
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn a_watcher_that_goes_away_while_the_job_is_quiet_is_no_longer_counted() {
        let log = Arc::new(EventLog::<Ev>::default());
        let stream = log.follow();
        assert_eq!(log.watchers(), 1);
        drop(stream);
        for _ in 0..100 {
            if log.watchers() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the watcher was still counted after its caller went");
    }
}
