//! The bar store: one dataset per (symbol, timeframe) under the data directory, each a set of
//! immutable Parquet partitions named by a manifest.
//!
//! ```text
//! <data_dir>/<SYMBOL>/<timeframe>/manifest.json
//! <data_dir>/<SYMBOL>/<timeframe>/part-<version>-<n>.parquet
//! ```
//!
//! - **Writes** merge a sorted batch into the partitions it overlaps (newest write wins per
//!   timestamp) and into a small neighbouring partition, so appending to the tail rewrites at most
//!   one small file, never the history. New partitions and the new manifest are written to
//!   temporary files, fsynced and renamed; the manifest rename commits.
//! - **One writer per dataset** (a mutex); **readers** take the current [`Snapshot`] and keep
//!   reading it while writes commit: files a write replaces are deleted only when the last
//!   snapshot naming them is dropped.
//! - All functions here block: call them from `spawn_blocking`.

mod manifest;
mod parquet_io;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use arrow_array::RecordBatch;
use ktrdr_common::error::ServiceError;
use ktrdr_market::Timeframe;

pub use manifest::{Manifest, Partition};

use ktrdr_market::Bars;

/// Bars per partition file.
const PARTITION_ROWS: usize = 1_000_000;
/// A neighbouring partition smaller than this is merged into a write next to it, so many small
/// appends do not leave many small files.
const SMALL_PARTITION_ROWS: u64 = 100_000;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no dataset {symbol} {timeframe} in the store")]
    NotFound { symbol: String, timeframe: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("corrupt store: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound {
                ref symbol,
                ref timeframe,
            } => ServiceError::not_found(
                "DATASET_NOT_FOUND",
                format!("{err}; load or import it first"),
            )
            .with_metadata("symbol", symbol.clone())
            .with_metadata("timeframe", timeframe.clone()),
            other => ServiceError::internal(other.to_string()),
        }
    }
}

/// A consistent view of one dataset. Files retired by later writes are removed when the last
/// holder drops it.
#[derive(Debug)]
pub struct Snapshot {
    pub manifest: Manifest,
    dir: PathBuf,
    retired: Mutex<Vec<PathBuf>>,
}

impl Snapshot {
    fn new(manifest: Manifest, dir: PathBuf) -> Self {
        Self {
            manifest,
            dir,
            retired: Mutex::new(Vec::new()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.manifest.partitions.is_empty()
    }

    fn partition_path(&self, partition: &Partition) -> PathBuf {
        self.dir.join(&partition.file)
    }

    /// Streams the bars in `[start_ms, end_ms)` in time order, in chunks of at most `batch_rows`,
    /// to `emit`, which returns `false` to stop. At most `limit` bars are emitted.
    pub fn read_range(
        &self,
        start_ms: i64,
        end_ms: i64,
        batch_rows: usize,
        limit: Option<u64>,
        emit: &mut dyn FnMut(Bars) -> bool,
    ) -> Result<u64, StoreError> {
        self.read_range_batches(start_ms, end_ms, batch_rows, limit, &mut |batch| {
            match Bars::from_record_batch(&batch) {
                Ok(bars) => emit(bars),
                Err(e) => {
                    tracing::error!("corrupt partition batch: {e}");
                    false
                }
            }
        })
    }

    /// [`Snapshot::read_range`] handing out Arrow record batches as Parquet decoded them (sliced
    /// to the range without copying), for callers that encode Arrow anyway.
    pub fn read_range_batches(
        &self,
        start_ms: i64,
        end_ms: i64,
        batch_rows: usize,
        limit: Option<u64>,
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> Result<u64, StoreError> {
        let mut sent = 0u64;
        for partition in self.overlapping(start_ms, end_ms) {
            let reader = parquet_io::open_range(
                &self.partition_path(partition),
                start_ms,
                end_ms,
                batch_rows,
            )?;
            for batch in reader {
                let batch = batch?;
                let timestamps = parquet_io::timestamps(&batch, &partition.file)?;
                let from = timestamps.partition_point(|&t| t < start_ms);
                let mut to = timestamps.partition_point(|&t| t < end_ms).max(from);
                if let Some(limit) = limit {
                    to = to.min(from + usize::try_from(limit - sent).unwrap_or(usize::MAX));
                }
                if to > from {
                    sent += (to - from) as u64;
                    let chunk = if from == 0 && to == batch.num_rows() {
                        batch
                    } else {
                        batch.slice(from, to - from)
                    };
                    if !emit(chunk) {
                        return Ok(sent);
                    }
                }
                if limit.is_some_and(|l| sent >= l) {
                    return Ok(sent);
                }
            }
        }
        Ok(sent)
    }

    /// The last `limit` bars of `[start_ms, end_ms)`, oldest first. Holds at most `limit` bars
    /// plus one partition in memory.
    pub fn read_tail(&self, start_ms: i64, end_ms: i64, limit: u64) -> Result<Bars, StoreError> {
        let mut chunks: Vec<Bars> = Vec::new();
        let mut held = 0u64;
        for partition in self.overlapping(start_ms, end_ms).rev() {
            let bars = parquet_io::read_all(&self.partition_path(partition))?;
            let range = bars.range_indices(start_ms, end_ms);
            let (from, to) = (range.start, range.end);
            let take = ((to - from) as u64).min(limit - held) as usize;
            if take > 0 {
                chunks.push(bars.slice(to - take..to));
                held += take as u64;
            }
            if held >= limit {
                break;
            }
        }
        let mut out = Bars::with_capacity(held as usize);
        for chunk in chunks.iter().rev() {
            out.extend(chunk);
        }
        Ok(out)
    }

    /// Reads every bar in `[start_ms, end_ms)` into memory.
    pub fn read_all(&self, start_ms: i64, end_ms: i64) -> Result<Bars, StoreError> {
        let mut out = Bars::default();
        self.read_range(start_ms, end_ms, 64 * 1024, None, &mut |chunk| {
            out.extend(&chunk);
            true
        })?;
        Ok(out)
    }

    /// Only the timestamps of `[start_ms, end_ms)` (coverage needs no prices).
    pub fn timestamps(&self, start_ms: i64, end_ms: i64) -> Result<Vec<i64>, StoreError> {
        let mut out = Vec::new();
        for partition in self.overlapping(start_ms, end_ms) {
            let ts = parquet_io::read_timestamps(&self.partition_path(partition))?;
            let from = ts.partition_point(|&t| t < start_ms);
            let to = ts.partition_point(|&t| t < end_ms);
            out.extend_from_slice(&ts[from..to.max(from)]);
        }
        Ok(out)
    }

    /// How many bars `[start_ms, end_ms)` holds; only partitions cut by the range are opened.
    pub fn count_range(&self, start_ms: i64, end_ms: i64) -> Result<u64, StoreError> {
        let mut count = 0;
        for partition in self.overlapping(start_ms, end_ms) {
            if partition.first_ms >= start_ms && partition.last_ms < end_ms {
                count += partition.rows;
            } else {
                let ts = parquet_io::read_timestamps(&self.partition_path(partition))?;
                let from = ts.partition_point(|&t| t < start_ms);
                let to = ts.partition_point(|&t| t < end_ms);
                count += to.saturating_sub(from) as u64;
            }
        }
        Ok(count)
    }

    fn overlapping(
        &self,
        start_ms: i64,
        end_ms: i64,
    ) -> impl DoubleEndedIterator<Item = &Partition> {
        self.manifest
            .partitions
            .iter()
            .filter(move |p| p.last_ms >= start_ms && p.first_ms < end_ms)
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let retired = std::mem::take(
            self.retired
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for path in retired {
            if let Err(e) = fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), "cannot remove retired partition: {e}");
            }
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    pub bars_written: u64,
    /// Stored bars that the write overwrote (same timestamp).
    pub bars_replaced: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub bar_count: u64,
}

/// One (symbol, timeframe) dataset.
#[derive(Debug)]
pub struct Dataset {
    pub symbol: String,
    pub timeframe: Timeframe,
    dir: PathBuf,
    writer: Mutex<()>,
    current: RwLock<Arc<Snapshot>>,
}

impl Dataset {
    fn open(root: &Path, symbol: &str, timeframe: Timeframe) -> Result<Self, StoreError> {
        let dir = root.join(symbol).join(timeframe.as_str());
        let manifest =
            Manifest::load(&dir)?.unwrap_or_else(|| Manifest::empty(symbol, timeframe.as_str()));
        remove_unreferenced_files(&dir, &manifest)?;
        Ok(Self {
            symbol: symbol.to_owned(),
            timeframe,
            current: RwLock::new(Arc::new(Snapshot::new(manifest, dir.clone()))),
            dir,
            writer: Mutex::new(()),
        })
    }

    /// The current state; stays readable whatever writes commit meanwhile.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current state, or `NotFound` if the dataset holds no bars.
    pub fn existing_snapshot(&self) -> Result<Arc<Snapshot>, StoreError> {
        let snapshot = self.snapshot();
        if snapshot.is_empty() {
            return Err(StoreError::NotFound {
                symbol: self.symbol.clone(),
                timeframe: self.timeframe.to_string(),
            });
        }
        Ok(snapshot)
    }

    /// Merges `bars` (sorted, unique, valid) into the dataset: the newest value wins per timestamp.
    pub fn write(&self, bars: &Bars, source: &str) -> Result<WriteOutcome, StoreError> {
        self.commit_bars(bars, source, false)
    }

    /// Replaces the whole dataset with `bars` (sorted, unique, valid) in one commit.
    pub fn replace(&self, bars: &Bars, source: &str) -> Result<WriteOutcome, StoreError> {
        self.commit_bars(bars, source, true)
    }

    /// What [`Dataset::write`] (or, with `replace_all`, [`Dataset::replace`]) of `bars` would
    /// do, without writing: a dry run's answer. Only the stored timestamps the bars overlap are
    /// read.
    pub fn preview(&self, bars: &Bars, replace_all: bool) -> Result<WriteOutcome, StoreError> {
        let old = self.snapshot();
        let m = &old.manifest;
        let (Some(first), Some(last)) = (bars.first_ms(), bars.last_ms()) else {
            return Ok(WriteOutcome {
                bars_written: 0,
                bars_replaced: 0,
                first_ms: if replace_all {
                    0
                } else {
                    m.first_ms().unwrap_or(0)
                },
                last_ms: if replace_all {
                    0
                } else {
                    m.last_ms().unwrap_or(0)
                },
                bar_count: if replace_all { 0 } else { m.rows() },
            });
        };
        if replace_all {
            return Ok(WriteOutcome {
                bars_written: bars.len() as u64,
                bars_replaced: m.rows(),
                first_ms: first,
                last_ms: last,
                bar_count: bars.len() as u64,
            });
        }
        let stored = old.timestamps(first, last.saturating_add(1))?;
        let replaced = count_common(&stored, &bars.timestamp_ms);
        Ok(WriteOutcome {
            bars_written: bars.len() as u64,
            bars_replaced: replaced,
            first_ms: m.first_ms().map_or(first, |f| f.min(first)),
            last_ms: m.last_ms().map_or(last, |l| l.max(last)),
            bar_count: m.rows() + bars.len() as u64 - replaced,
        })
    }

    fn commit_bars(
        &self,
        bars: &Bars,
        source: &str,
        replace_all: bool,
    ) -> Result<WriteOutcome, StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.snapshot();
        let (Some(first), Some(last)) = (bars.first_ms(), bars.last_ms()) else {
            let m = &old.manifest;
            return Ok(WriteOutcome {
                bars_written: 0,
                bars_replaced: 0,
                first_ms: m.first_ms().unwrap_or(0),
                last_ms: m.last_ms().unwrap_or(0),
                bar_count: m.rows(),
            });
        };
        fs::create_dir_all(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
        let parts = &old.manifest.partitions;

        // The contiguous run of partitions to rewrite: those overlapping the new bars, plus a
        // small neighbour on either side. `insert_at` is where the run starts.
        let insert_at = parts.partition_point(|p| p.last_ms < first);
        let mut run_start = insert_at;
        let mut run_end = parts.partition_point(|p| p.first_ms <= last); // exclusive
        if run_start > 0 && parts[run_start - 1].rows < SMALL_PARTITION_ROWS {
            run_start -= 1;
        }
        if run_end < parts.len() && parts[run_end].rows < SMALL_PARTITION_ROWS {
            run_end += 1;
        }
        let (merged, replaced) = if replace_all {
            (run_start, run_end) = (0, parts.len());
            (bars.clone(), old.manifest.rows())
        } else {
            let mut existing = Bars::default();
            for p in &parts[run_start..run_end] {
                existing.extend(&parquet_io::read_all(&old.partition_path(p))?);
            }
            merge(&existing, bars)
        };

        let version = old.manifest.version + 1;
        let mut written = Vec::new();
        for (n, start) in (0..merged.len()).step_by(PARTITION_ROWS).enumerate() {
            let chunk = merged.slice(start..(start + PARTITION_ROWS).min(merged.len()));
            let file = format!("part-{version:010}-{n:04}.parquet");
            let bytes = parquet_io::write_partition(&self.dir, &file, &chunk)?;
            written.push(Partition {
                file,
                first_ms: chunk.timestamp_ms[0],
                last_ms: chunk.timestamp_ms[chunk.len() - 1],
                rows: chunk.len() as u64,
                bytes,
            });
        }

        let written_bytes: u64 = written.iter().map(|p| p.bytes).sum();
        let mut partitions = parts[..run_start].to_vec();
        partitions.extend(written);
        partitions.extend_from_slice(&parts[run_end..]);
        let manifest = Manifest {
            version,
            partitions,
            updated_at_ms: now_ms(),
            source: source.to_owned(),
            ..old.manifest.clone()
        };
        manifest.commit(&self.dir)?;
        crate::metrics::BARS_WRITTEN.inc_by(bars.len() as u64);
        crate::metrics::BYTES_WRITTEN.inc_by(written_bytes);

        let outcome = WriteOutcome {
            bars_written: bars.len() as u64,
            bars_replaced: replaced,
            first_ms: manifest.first_ms().unwrap_or(first),
            last_ms: manifest.last_ms().unwrap_or(last),
            bar_count: manifest.rows(),
        };
        self.publish(manifest, &old, &parts[run_start..run_end]);
        Ok(outcome)
    }

    /// Removes every bar; returns (bars, bytes) deleted.
    pub fn delete(&self) -> Result<(u64, u64), StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.snapshot();
        if old.is_empty() {
            return Ok((0, 0));
        }
        let deleted = (old.manifest.rows(), old.manifest.bytes());
        let manifest = Manifest {
            version: old.manifest.version + 1,
            partitions: Vec::new(),
            updated_at_ms: now_ms(),
            ..old.manifest.clone()
        };
        manifest.commit(&self.dir)?;
        self.publish(manifest, &old, &old.manifest.partitions);
        Ok(deleted)
    }

    /// Makes `manifest` current and hands `replaced` partitions to the old snapshot, which
    /// deletes them once no reader holds it.
    fn publish(&self, manifest: Manifest, old: &Arc<Snapshot>, replaced: &[Partition]) {
        let next = Arc::new(Snapshot::new(manifest, self.dir.clone()));
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
        old.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(replaced.iter().map(|p| old.partition_path(p)));
    }
}

/// How many values two ascending, duplicate-free sequences share.
fn count_common(a: &[i64], b: &[i64]) -> u64 {
    let (mut i, mut j, mut common) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    common
}

/// Merges two sorted, unique bar sequences; on equal timestamps `newer` wins. Returns the merged
/// bars and how many of `older` were replaced.
pub fn merge(older: &Bars, newer: &Bars) -> (Bars, u64) {
    if older.is_empty() {
        return (newer.clone(), 0);
    }
    let mut out = Bars::with_capacity(older.len() + newer.len());
    let (mut i, mut j, mut replaced) = (0, 0, 0u64);
    while i < older.len() || j < newer.len() {
        let take_new =
            j < newer.len() && (i >= older.len() || newer.timestamp_ms[j] <= older.timestamp_ms[i]);
        if take_new {
            if i < older.len() && older.timestamp_ms[i] == newer.timestamp_ms[j] {
                replaced += 1;
                i += 1;
            }
            out.push_from(newer, j);
            j += 1;
        } else {
            out.push_from(older, i);
            i += 1;
        }
    }
    (out, replaced)
}

/// Deletes what a crashed write left behind: temporary files and partitions no manifest names.
fn remove_unreferenced_files(dir: &Path, manifest: &Manifest) -> Result<(), StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let referenced = manifest.partitions.iter().any(|p| p.file == name);
        let leftover = name.ends_with(".tmp") || (name.starts_with("part-") && !referenced);
        if leftover {
            tracing::info!(file = %entry.path().display(), "removing leftover of an interrupted write");
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Summary of one dataset for listings.
#[derive(Debug, Clone)]
pub struct DatasetSummary {
    pub symbol: String,
    pub timeframe: Timeframe,
    pub manifest: Manifest,
}

/// All datasets under one data directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    datasets: Mutex<HashMap<(String, Timeframe), Arc<Dataset>>>,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            datasets: Mutex::new(HashMap::new()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The dataset for a normalised symbol, opened (and cleaned of crash leftovers) on first use.
    pub fn dataset(&self, symbol: &str, timeframe: Timeframe) -> Result<Arc<Dataset>, StoreError> {
        let mut datasets = self.datasets.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (symbol.to_owned(), timeframe);
        if let Some(dataset) = datasets.get(&key) {
            return Ok(dataset.clone());
        }
        let dataset = Arc::new(Dataset::open(&self.root, symbol, timeframe)?);
        datasets.insert(key, dataset.clone());
        Ok(dataset)
    }

    /// Every non-empty dataset, sorted by symbol then timeframe.
    pub fn list(&self) -> Result<Vec<DatasetSummary>, StoreError> {
        let mut out = Vec::new();
        let symbols = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(StoreError::io(&self.root, e)),
        };
        for symbol_dir in symbols.flatten() {
            let symbol = symbol_dir.file_name().to_string_lossy().into_owned();
            for timeframe in Timeframe::ALL {
                if !symbol_dir
                    .path()
                    .join(timeframe.as_str())
                    .join("manifest.json")
                    .is_file()
                {
                    continue;
                }
                let snapshot = self.dataset(&symbol, timeframe)?.snapshot();
                if !snapshot.is_empty() {
                    out.push(DatasetSummary {
                        symbol: symbol.clone(),
                        timeframe,
                        manifest: snapshot.manifest.clone(),
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.symbol, a.timeframe).cmp(&(&b.symbol, b.timeframe)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktrdr_market::fixtures::hourly;

    const T0: i64 = 1_704_067_200_000;
    const H: i64 = 3_600_000;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        (dir, store)
    }

    #[test]
    fn a_preview_tells_exactly_what_the_write_then_does() {
        let (_dir, store) = store();
        let ds = store.dataset("AAPL", Timeframe::H1).unwrap();
        let first = hourly(100, T0);
        let nothing_stored = ds.preview(&first, false).unwrap();
        assert_eq!(ds.snapshot().manifest.rows(), 0, "a preview writes nothing");
        assert_eq!(nothing_stored, ds.write(&first, "test").unwrap());

        // Half over the stored bars, half after them.
        let overlapping = hourly(100, T0 + 50 * H);
        let merged = ds.preview(&overlapping, false).unwrap();
        assert_eq!((merged.bars_replaced, merged.bar_count), (50, 150));
        assert_eq!(
            ds.snapshot().manifest.rows(),
            100,
            "a preview writes nothing"
        );
        assert_eq!(merged, ds.write(&overlapping, "test").unwrap());

        let earlier = hourly(10, T0 - 10 * H);
        let replaced = ds.preview(&earlier, true).unwrap();
        assert_eq!(replaced, ds.replace(&earlier, "test").unwrap());
        let empty = ds.preview(&Bars::default(), false).unwrap();
        assert_eq!(empty, ds.write(&Bars::default(), "test").unwrap());
    }

    #[test]
    fn write_then_read_round_trips_exactly() {
        let (_dir, store) = store();
        let ds = store.dataset("AAPL", Timeframe::H1).unwrap();
        let bars = hourly(5_000, T0);
        let outcome = ds.write(&bars, "test").unwrap();
        assert_eq!(
            (
                outcome.bars_written,
                outcome.bars_replaced,
                outcome.bar_count
            ),
            (5_000, 0, 5_000)
        );
        assert_eq!(ds.snapshot().read_all(i64::MIN, i64::MAX).unwrap(), bars);
        // a fresh store (process restart) reads the same
        let again = Store::new(store.root())
            .dataset("AAPL", Timeframe::H1)
            .unwrap();
        assert_eq!(again.snapshot().read_all(i64::MIN, i64::MAX).unwrap(), bars);
    }

    #[test]
    fn overlapping_writes_merge_and_the_newest_wins() {
        let (_dir, store) = store();
        let ds = store.dataset("AAPL", Timeframe::H1).unwrap();
        ds.write(&hourly(100, T0), "a").unwrap();
        let mut newer = hourly(100, T0 + 50 * H);
        newer.close.iter_mut().for_each(|c| *c += 1000.0);
        newer.high.iter_mut().for_each(|h| *h += 1000.0);
        let outcome = ds.write(&newer, "b").unwrap();
        assert_eq!((outcome.bars_replaced, outcome.bar_count), (50, 150));
        let all = ds.snapshot().read_all(i64::MIN, i64::MAX).unwrap();
        assert_eq!(all.len(), 150);
        assert!(all.is_sorted_unique());
        assert_eq!(all.slice(0..50), hourly(100, T0).slice(0..50));
        assert_eq!(all.slice(50..150), newer);
    }

    #[test]
    fn appends_do_not_rewrite_large_history() {
        let (_dir, store) = store();
        let ds = store.dataset("SPY", Timeframe::M1).unwrap();
        let history = {
            let mut b = hourly(150_000, T0);
            b.timestamp_ms = (0..150_000).map(|i| T0 + i * 60_000).collect();
            b
        };
        ds.write(&history, "h").unwrap();
        let big = ds.snapshot().manifest.partitions[0].clone();
        for k in 0..5 {
            let mut tail = hourly(10, 0);
            tail.timestamp_ms = (0..10)
                .map(|i| T0 + (150_000 + k * 10 + i) * 60_000)
                .collect();
            ds.write(&tail, "tail").unwrap();
        }
        let parts = ds.snapshot().manifest.partitions.clone();
        assert_eq!(parts[0], big, "the large partition is untouched by appends");
        assert_eq!(
            parts.len(),
            2,
            "small appends coalesce into one small partition: {parts:?}"
        );
        assert_eq!(ds.snapshot().manifest.rows(), 150_050);
    }

    #[test]
    fn a_snapshot_stays_readable_while_writes_replace_its_files() {
        let (_dir, store) = store();
        let ds = store.dataset("AAPL", Timeframe::H1).unwrap();
        let bars = hourly(1_000, T0);
        ds.write(&bars, "a").unwrap();
        let before = ds.snapshot();
        let mut newer = bars.clone();
        newer.close.iter_mut().for_each(|c| *c += 1.0);
        newer.high.iter_mut().for_each(|h| *h += 1.0);
        ds.write(&newer, "b").unwrap();
        assert_eq!(
            before.read_all(i64::MIN, i64::MAX).unwrap(),
            bars,
            "old snapshot still reads its state"
        );
        let old_file = before.partition_path(&before.manifest.partitions[0]);
        drop(before);
        assert!(
            !old_file.exists(),
            "retired partition removed once unreferenced"
        );
        assert_eq!(ds.snapshot().read_all(i64::MIN, i64::MAX).unwrap(), newer);
    }

    #[test]
    fn ranges_limits_and_tails() {
        let (_dir, store) = store();
        let ds = store.dataset("AAPL", Timeframe::H1).unwrap();
        let bars = hourly(300, T0);
        ds.write(&bars, "a").unwrap();
        let snap = ds.snapshot();
        assert_eq!(
            snap.read_all(T0 + 10 * H, T0 + 20 * H).unwrap(),
            bars.slice(10..20)
        );
        let mut chunks = Vec::new();
        let sent = snap
            .read_range(T0, i64::MAX, 7, Some(30), &mut |c| {
                chunks.push(c.len());
                true
            })
            .unwrap();
        assert_eq!(sent, 30);
        assert!(chunks.iter().all(|&n| n <= 7), "{chunks:?}");
        assert_eq!(
            snap.read_tail(i64::MIN, T0 + 100 * H, 5).unwrap(),
            bars.slice(95..100)
        );
        assert_eq!(snap.read_tail(i64::MIN, i64::MAX, 1_000).unwrap(), bars);
    }

    #[test]
    fn crash_leftovers_are_removed_and_unknown_datasets_are_not_found() {
        let (dir, store) = store();
        store
            .dataset("AAPL", Timeframe::H1)
            .unwrap()
            .write(&hourly(10, T0), "a")
            .unwrap();
        let ds_dir = dir.path().join("AAPL/1h");
        fs::write(ds_dir.join("part-9999999999-0000.parquet.tmp"), b"half").unwrap();
        fs::write(ds_dir.join("part-9999999999-0000.parquet"), b"orphan").unwrap();
        fs::write(ds_dir.join("manifest.json.tmp"), b"{").unwrap();
        let reopened = Store::new(dir.path());
        let ds = reopened.dataset("AAPL", Timeframe::H1).unwrap();
        assert_eq!(
            ds.snapshot().read_all(i64::MIN, i64::MAX).unwrap(),
            hourly(10, T0)
        );
        let names: Vec<String> = fs::read_dir(&ds_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let err = reopened
            .dataset("MSFT", Timeframe::H1)
            .unwrap()
            .existing_snapshot()
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }));
    }

    #[test]
    fn delete_and_list() {
        let (_dir, store) = store();
        store
            .dataset("AAPL", Timeframe::H1)
            .unwrap()
            .write(&hourly(10, T0), "a")
            .unwrap();
        store
            .dataset("AAPL", Timeframe::D1)
            .unwrap()
            .write(&hourly(1, 1_704_067_200_000), "a")
            .unwrap();
        store
            .dataset("EURUSD", Timeframe::H1)
            .unwrap()
            .write(&hourly(3, T0), "a")
            .unwrap();
        let listed: Vec<(String, Timeframe)> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|d| (d.symbol, d.timeframe))
            .collect();
        assert_eq!(
            listed,
            [
                ("AAPL".into(), Timeframe::H1),
                ("AAPL".into(), Timeframe::D1),
                ("EURUSD".into(), Timeframe::H1)
            ]
        );
        let ds = store.dataset("AAPL", Timeframe::H1).unwrap();
        let (bars, bytes) = ds.delete().unwrap();
        assert_eq!(bars, 10);
        assert!(bytes > 0);
        assert!(ds.existing_snapshot().is_err());
        assert_eq!(store.list().unwrap().len(), 2);
    }

    #[test]
    fn replace_swaps_the_whole_dataset_in_one_commit() {
        let (_dir, store) = store();
        let ds = store.dataset("AAPL", Timeframe::H1).unwrap();
        ds.write(&hourly(500, T0), "a").unwrap();
        let newer = hourly(10, T0 + 1_000 * H);
        let outcome = ds.replace(&newer, "b").unwrap();
        assert_eq!((outcome.bars_replaced, outcome.bar_count), (500, 10));
        assert_eq!(ds.snapshot().read_all(i64::MIN, i64::MAX).unwrap(), newer);
    }

    #[test]
    fn merge_counts_replacements() {
        let older = hourly(4, 0);
        let mut newer = hourly(2, H);
        newer.close = vec![1.0, 2.0];
        let (merged, replaced) = merge(&older, &newer);
        assert_eq!(replaced, 2);
        assert_eq!(merged.close, vec![older.close[0], 1.0, 2.0, older.close[3]]);
    }
}
