//! Bars in columnar form, and their conversions: protobuf columns, Arrow record batches, Arrow
//! IPC stream bytes.

use std::sync::{Arc, LazyLock};

use arrow_array::{Array, Float64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use ktrdr_proto::common::v1 as common;

/// OHLCV bars, one vector per column, all the same length. `timestamp_ms` is the bar's open time
/// in UTC epoch milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bars {
    pub timestamp_ms: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

/// The store's and the IPC encoding's schema; see `common.proto` `BarBatch.arrow_ipc`.
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
    #[error("columns have different lengths: {0}")]
    Ragged(String),
    #[error("column {0:?} is missing or not {1}")]
    Column(&'static str, &'static str),
    #[error("column {0:?} has null values")]
    Nulls(&'static str),
    #[error("invalid Arrow IPC: {0}")]
    Arrow(#[from] ArrowError),
}

impl Bars {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            timestamp_ms: Vec::with_capacity(n),
            open: Vec::with_capacity(n),
            high: Vec::with_capacity(n),
            low: Vec::with_capacity(n),
            close: Vec::with_capacity(n),
            volume: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.timestamp_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamp_ms.is_empty()
    }

    pub fn first_ms(&self) -> Option<i64> {
        self.timestamp_ms.first().copied()
    }

    pub fn last_ms(&self) -> Option<i64> {
        self.timestamp_ms.last().copied()
    }

    /// Appends bar `i` of `other`.
    pub fn push_from(&mut self, other: &Bars, i: usize) {
        self.timestamp_ms.push(other.timestamp_ms[i]);
        self.open.push(other.open[i]);
        self.high.push(other.high[i]);
        self.low.push(other.low[i]);
        self.close.push(other.close[i]);
        self.volume.push(other.volume[i]);
    }

    /// Appends one bar.
    pub fn push(&mut self, ts: i64, open: f64, high: f64, low: f64, close: f64, volume: f64) {
        self.timestamp_ms.push(ts);
        self.open.push(open);
        self.high.push(high);
        self.low.push(low);
        self.close.push(close);
        self.volume.push(volume);
    }

    /// Appends all of `other`.
    pub fn extend(&mut self, other: &Bars) {
        self.timestamp_ms.extend_from_slice(&other.timestamp_ms);
        self.open.extend_from_slice(&other.open);
        self.high.extend_from_slice(&other.high);
        self.low.extend_from_slice(&other.low);
        self.close.extend_from_slice(&other.close);
        self.volume.extend_from_slice(&other.volume);
    }

    /// Bars `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> Bars {
        Bars {
            timestamp_ms: self.timestamp_ms[start..end].to_vec(),
            open: self.open[start..end].to_vec(),
            high: self.high[start..end].to_vec(),
            low: self.low[start..end].to_vec(),
            close: self.close[start..end].to_vec(),
            volume: self.volume[start..end].to_vec(),
        }
    }

    /// The index range of bars with `start_ms <= ts < end_ms`, for sorted bars.
    pub fn range_indices(&self, start_ms: i64, end_ms: i64) -> (usize, usize) {
        let from = self.timestamp_ms.partition_point(|&t| t < start_ms);
        let to = self.timestamp_ms.partition_point(|&t| t < end_ms);
        (from, to.max(from))
    }

    /// Whether timestamps strictly increase.
    pub fn is_sorted_unique(&self) -> bool {
        self.timestamp_ms.windows(2).all(|w| w[0] < w[1])
    }

    /// Decodes protobuf columns, checking that they have the same length.
    pub fn from_columns(columns: common::BarColumns) -> Result<Self, DecodeError> {
        let n = columns.timestamp_ms.len();
        let lengths = [
            ("open", columns.open.len()),
            ("high", columns.high.len()),
            ("low", columns.low.len()),
            ("close", columns.close.len()),
            ("volume", columns.volume.len()),
        ];
        if let Some((name, len)) = lengths.iter().find(|(_, len)| *len != n) {
            return Err(DecodeError::Ragged(format!(
                "timestamp_ms has {n} values but {name} has {len}"
            )));
        }
        Ok(Self {
            timestamp_ms: columns.timestamp_ms,
            open: columns.open,
            high: columns.high,
            low: columns.low,
            close: columns.close,
            volume: columns.volume,
        })
    }

    pub fn into_columns(self) -> common::BarColumns {
        common::BarColumns {
            timestamp_ms: self.timestamp_ms,
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume,
        }
    }

    /// Decodes a `BarBatch` payload (either encoding); an unset payload is zero bars.
    pub fn from_batch_payload(
        payload: Option<common::bar_batch::Payload>,
    ) -> Result<Self, DecodeError> {
        match payload {
            None => Ok(Self::default()),
            Some(common::bar_batch::Payload::Columns(columns)) => Self::from_columns(columns),
            Some(common::bar_batch::Payload::ArrowIpc(bytes)) => Self::from_ipc(&bytes),
        }
    }

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

    /// Reads the columns by name (extra columns are ignored, as the contract says).
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
        Self::record_batch_to_ipc(&self.to_record_batch()?)
    }

    /// Encodes a record batch with the bar schema as an Arrow IPC stream, without copying it
    /// into [`Bars`] first.
    pub fn record_batch_to_ipc(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
        let mut out = Vec::with_capacity(batch.get_array_memory_size() + 1024);
        let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())?;
        writer.write(batch)?;
        writer.finish()?;
        drop(writer);
        Ok(out)
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

    /// The bars as a `BarBatch` payload in the requested encoding.
    pub fn into_payload(
        self,
        encoding: common::BarEncoding,
    ) -> Result<common::bar_batch::Payload, ArrowError> {
        Ok(match encoding {
            common::BarEncoding::ArrowIpc => common::bar_batch::Payload::ArrowIpc(self.to_ipc()?),
            common::BarEncoding::Columns | common::BarEncoding::Unspecified => {
                common::bar_batch::Payload::Columns(self.into_columns())
            }
        })
    }

    /// Wraps the bars as a `BarBatch` in the requested encoding.
    pub fn into_batch(
        self,
        symbol: &str,
        timeframe: &str,
        encoding: common::BarEncoding,
    ) -> Result<common::BarBatch, ArrowError> {
        let bar_count = self.len() as i64;
        Ok(common::BarBatch {
            symbol: symbol.to_owned(),
            timeframe: timeframe.to_owned(),
            payload: Some(self.into_payload(encoding)?),
            bar_count,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` hourly bars from 2024-01-01 00:00 UTC with a simple deterministic price path.
    pub(crate) fn hourly(n: usize, start_ms: i64) -> Bars {
        let mut bars = Bars::with_capacity(n);
        for i in 0..n {
            let base = 100.0 + (i as f64 * 0.7).sin() * 5.0 + i as f64 * 0.01;
            bars.push(
                start_ms + i as i64 * 3_600_000,
                base,
                base + 1.0,
                base - 1.0,
                base + 0.25,
                1_000.0 + i as f64,
            );
        }
        bars
    }

    #[test]
    fn ipc_round_trip_is_exact() {
        let bars = hourly(1000, 1_704_067_200_000);
        assert_eq!(Bars::from_ipc(&bars.to_ipc().unwrap()).unwrap(), bars);
    }

    #[test]
    fn ragged_columns_are_rejected() {
        let mut columns = hourly(3, 0).into_columns();
        columns.close.pop();
        let err = Bars::from_columns(columns).unwrap_err();
        assert_eq!(
            err.to_string(),
            "columns have different lengths: timestamp_ms has 3 values but close has 2"
        );
    }

    #[test]
    fn range_indices_are_half_open() {
        let bars = hourly(10, 0);
        assert_eq!(bars.range_indices(3_600_000, 3 * 3_600_000), (1, 3));
        assert_eq!(bars.range_indices(-5, 1), (0, 1));
        assert_eq!(
            bars.range_indices(100 * 3_600_000, 200 * 3_600_000),
            (10, 10)
        );
        assert_eq!(bars.range_indices(5 * 3_600_000, 2 * 3_600_000), (5, 5));
    }
}
