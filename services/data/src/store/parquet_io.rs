//! Reading and writing one partition file.

use std::fs;
use std::path::Path;

use arrow_array::{Array, RecordBatch, TimestampMillisecondArray};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::file::statistics::Statistics;

use super::StoreError;
use super::manifest::sync_dir;
use ktrdr_market::Bars;
use ktrdr_market::arrow::SCHEMA;

/// Rows per Parquet row group: the unit a range read can skip.
const ROW_GROUP_ROWS: usize = 64 * 1024;

fn properties() -> WriterProperties {
    WriterProperties::builder()
        // Snappy: the cheapest decode, which matters more for reads than the last 15 % of size.
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // Prices are nearly unique floats: dictionaries only cost time.
        .set_dictionary_enabled(false)
        .build()
}

/// Writes `bars` as `dir/name` (temporary file, fsync, rename). Returns the file size.
pub fn write_partition(dir: &Path, name: &str, bars: &Bars) -> Result<u64, StoreError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let file = fs::File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    let mut writer = ArrowWriter::try_new(file, SCHEMA.clone(), Some(properties()))?;
    for start in (0..bars.len()).step_by(ROW_GROUP_ROWS) {
        let chunk = bars.slice(start..(start + ROW_GROUP_ROWS).min(bars.len()));
        writer.write(&chunk.to_record_batch()?)?;
    }
    let file = writer.into_inner()?;
    file.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
    let bytes = file.metadata().map_err(|e| StoreError::io(&tmp, e))?.len();
    drop(file);
    fs::rename(&tmp, &target).map_err(|e| StoreError::io(&target, e))?;
    sync_dir(dir)?;
    Ok(bytes)
}

/// A reader over the row groups of `path` that may hold bars in `[start_ms, end_ms)`, in
/// batches of `batch_rows`.
pub fn open_range(
    path: &Path,
    start_ms: i64,
    end_ms: i64,
    batch_rows: usize,
) -> Result<ParquetRecordBatchReader, StoreError> {
    let file = fs::File::open(path).map_err(|e| StoreError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let groups: Vec<usize> = builder
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, group)| match group.column(0).statistics() {
            Some(Statistics::Int64(stats)) => match (stats.min_opt(), stats.max_opt()) {
                (Some(&min), Some(&max)) => max >= start_ms && min < end_ms,
                _ => true,
            },
            _ => true,
        })
        .map(|(i, _)| i)
        .collect();
    Ok(builder
        .with_row_groups(groups)
        .with_batch_size(batch_rows.max(1))
        .build()?)
}

/// The timestamp column (the first) of a batch read from `file`.
pub fn timestamps<'a>(
    batch: &'a RecordBatch,
    file: &dyn std::fmt::Display,
) -> Result<&'a [i64], StoreError> {
    let column = batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .ok_or_else(|| {
            StoreError::Corrupt(format!("{file}: timestamp column has the wrong type"))
        })?;
    let values: &[i64] = column.values();
    Ok(values)
}

/// Only the timestamps of `path` (a projection: the price columns are not decoded).
pub fn read_timestamps(path: &Path) -> Result<Vec<i64>, StoreError> {
    let file = fs::File::open(path).map_err(|e| StoreError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [0]);
    let mut out = Vec::new();
    for batch in builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()?
    {
        let batch = batch?;
        out.extend_from_slice(timestamps(&batch, &path.display())?);
    }
    Ok(out)
}

/// Reads a whole partition.
pub fn read_all(path: &Path) -> Result<Bars, StoreError> {
    let mut bars = Bars::default();
    for batch in open_range(path, i64::MIN, i64::MAX, 64 * 1024)? {
        let batch: RecordBatch = batch?;
        bars.extend(
            &Bars::from_record_batch(&batch)
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?,
        );
    }
    Ok(bars)
}
