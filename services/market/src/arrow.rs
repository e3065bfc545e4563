//! The one Arrow schema for bars (`timestamp` as Timestamp(ms, "UTC"), then `open high low
//! close volume` as non-null Float64) and its IPC stream codec. The store writes Parquet with
//! this schema, `BarBatch.arrow_ipc` carries it on the wire, clients read it with pyarrow.
//!
//! Decoding reads columns by name and ignores extra ones, as the contract allows.

use std::sync::{Arc, LazyLock};

use arrow_array::{Array, Float64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::bars::{Bars, BarsError};

/// The bar schema of the store and of `BarBatch.arrow_ipc`.
pub static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let price = |name: &str| Field::new(name, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        price("open"),
        price("high"),
        price("low"),
        price("close"),
        price("volume"),
    ]))
});

/// Why bars could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Bars(#[from] BarsError),
    #[error("column {0:?} is missing or not {1}")]
    Column(&'static str, &'static str),
    #[error("column {0:?} has null values")]
    Nulls(&'static str),
    #[error("invalid Arrow IPC: {0}")]
    Arrow(#[from] ArrowError),
}

impl Bars {
    /// The bars as one record batch of [`SCHEMA`].
    pub fn to_record_batch(&self) -> Result<RecordBatch, ArrowError> {
        RecordBatch::try_new(
            SCHEMA.clone(),
            vec![
                Arc::new(
                    TimestampMillisecondArray::from(self.timestamp_ms.clone()).with_timezone("UTC"),
                ),
                Arc::new(Float64Array::from(self.open.clone())),
                Arc::new(Float64Array::from(self.high.clone())),
                Arc::new(Float64Array::from(self.low.clone())),
                Arc::new(Float64Array::from(self.close.clone())),
                Arc::new(Float64Array::from(self.volume.clone())),
            ],
        )
    }

    /// Reads the columns by name (extra columns are ignored).
    pub fn from_record_batch(batch: &RecordBatch) -> Result<Self, DecodeError> {
        let ts = batch
            .column_by_name("timestamp")
            .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
            .ok_or(DecodeError::Column("timestamp", "Timestamp(Millisecond)"))?;
        if ts.null_count() > 0 {
            return Err(DecodeError::Nulls("timestamp"));
        }
        let f64_column = |name: &'static str| -> Result<Vec<f64>, DecodeError> {
            let array = batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
                .ok_or(DecodeError::Column(name, "Float64"))?;
            if array.null_count() > 0 {
                return Err(DecodeError::Nulls(name));
            }
            Ok(array.values().to_vec())
        };
        Ok(Self {
            timestamp_ms: ts.values().to_vec(),
            open: f64_column("open")?,
            high: f64_column("high")?,
            low: f64_column("low")?,
            close: f64_column("close")?,
            volume: f64_column("volume")?,
        })
    }

    /// Encodes as an Arrow IPC stream: schema, one record batch, end-of-stream.
    pub fn to_ipc(&self) -> Result<Vec<u8>, ArrowError> {
        record_batch_to_ipc(&self.to_record_batch()?)
    }

    /// Decodes an Arrow IPC stream of one or more record batches.
    pub fn from_ipc(bytes: &[u8]) -> Result<Self, DecodeError> {
        let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
        let mut bars = Bars::default();
        for batch in reader {
            bars.extend(&Self::from_record_batch(&batch?)?);
        }
        Ok(bars)
    }
}

/// Encodes a record batch of the bar schema as an Arrow IPC stream, without copying it into
/// [`Bars`] first.
pub fn record_batch_to_ipc(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() + 1024);
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// Decodes an Arrow IPC stream into its record batches, whatever their schema.
pub fn ipc_to_record_batches(bytes: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
    arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::hourly;

    #[test]
    fn ipc_round_trip_is_exact() {
        let bars = hourly(1000, 1_704_067_200_000);
        assert_eq!(Bars::from_ipc(&bars.to_ipc().unwrap()).unwrap(), bars);
    }

    #[test]
    fn no_volume_markers_survive_the_round_trip() {
        let mut bars = hourly(3, 0);
        bars.volume = vec![-1.0; 3];
        assert_eq!(Bars::from_ipc(&bars.to_ipc().unwrap()).unwrap(), bars);
    }

    #[test]
    fn garbage_is_an_arrow_error_not_a_panic() {
        let err = Bars::from_ipc(b"not arrow").unwrap_err();
        assert!(err.to_string().starts_with("invalid Arrow IPC"), "{err}");
    }
}
