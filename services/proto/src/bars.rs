//! [`ktrdr_market::Bars`] to and from the wire: `BarColumns` (packed protobuf columns) and the
//! `BarBatch` payload in either encoding (columns or Arrow IPC of the one bar schema).
//!
//! Decoding checks that the columns have the same length; it never panics on a client's bytes.

use arrow_schema::ArrowError;
use ktrdr_market::arrow::DecodeError;
use ktrdr_market::{Bars, BarsError};

use crate::common::v1::{BarBatch, BarColumns, BarEncoding, bar_batch::Payload};

/// Protobuf conversions of [`Bars`]; `use ktrdr_proto::bars::BarsProto` to call them.
pub trait BarsProto: Sized {
    /// Decodes protobuf columns, checking that they have the same length.
    fn from_columns(columns: BarColumns) -> Result<Self, BarsError>;
    /// The bars as protobuf columns (moves the vectors, no copy).
    fn into_columns(self) -> BarColumns;
    /// Decodes a `BarBatch` payload (either encoding); an unset payload is zero bars.
    fn from_batch_payload(payload: Option<Payload>) -> Result<Self, DecodeError>;
    /// The bars as a `BarBatch` payload in the requested encoding.
    fn into_payload(self, encoding: BarEncoding) -> Result<Payload, ArrowError>;
    /// Wraps the bars as a `BarBatch` in the requested encoding.
    fn into_batch(
        self,
        symbol: &str,
        timeframe: &str,
        encoding: BarEncoding,
    ) -> Result<BarBatch, ArrowError>;
}

impl BarsProto for Bars {
    fn from_columns(columns: BarColumns) -> Result<Self, BarsError> {
        let bars = Bars {
            timestamp_ms: columns.timestamp_ms,
            open: columns.open,
            high: columns.high,
            low: columns.low,
            close: columns.close,
            volume: columns.volume,
        };
        bars.check_lengths()?;
        Ok(bars)
    }

    fn into_columns(self) -> BarColumns {
        BarColumns {
            timestamp_ms: self.timestamp_ms,
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume,
        }
    }

    fn from_batch_payload(payload: Option<Payload>) -> Result<Self, DecodeError> {
        match payload {
            None => Ok(Self::default()),
            Some(Payload::Columns(columns)) => Ok(Self::from_columns(columns)?),
            Some(Payload::ArrowIpc(bytes)) => Self::from_ipc(&bytes),
        }
    }

    fn into_payload(self, encoding: BarEncoding) -> Result<Payload, ArrowError> {
        Ok(match encoding {
            BarEncoding::ArrowIpc => Payload::ArrowIpc(self.to_ipc()?.into()),
            BarEncoding::Columns | BarEncoding::Unspecified => {
                Payload::Columns(self.into_columns())
            }
        })
    }

    fn into_batch(
        self,
        symbol: &str,
        timeframe: &str,
        encoding: BarEncoding,
    ) -> Result<BarBatch, ArrowError> {
        let bar_count = self.len() as i64;
        Ok(BarBatch {
            symbol: symbol.to_owned(),
            timeframe: timeframe.to_owned(),
            payload: Some(self.into_payload(encoding)?),
            bar_count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Bars {
        let mut bars = Bars::default();
        for i in 0..3 {
            bars.push(i * 60_000, 1.0, 2.0, 0.5, 1.5, -1.0);
        }
        bars
    }

    #[test]
    fn ragged_columns_are_rejected_naming_the_short_column() {
        let mut columns = three().into_columns();
        columns.close.pop();
        let err = Bars::from_columns(columns).unwrap_err();
        assert_eq!(
            err.to_string(),
            "columns have different lengths: timestamp_ms has 3 values but close has 2"
        );
    }

    #[test]
    fn both_payload_encodings_decode_to_the_same_bars() {
        for encoding in [BarEncoding::Columns, BarEncoding::ArrowIpc] {
            let payload = three().into_payload(encoding).unwrap();
            assert_eq!(Bars::from_batch_payload(Some(payload)).unwrap(), three());
        }
        assert_eq!(Bars::from_batch_payload(None).unwrap(), Bars::default());
    }
}
