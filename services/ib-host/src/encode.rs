//! BarBatch payloads: packed protobuf columns or Arrow IPC stream bytes (the schema of
//! `common.proto` `BarBatch.arrow_ipc`, the same the data service stores).

use std::sync::{Arc, LazyLock};

use arrow_array::{ArrayRef, Float64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use ktrdr_proto::common::v1::{BarColumns, bar_batch::Payload};

use crate::source::RawBar;

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
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

pub fn columns(bars: &[RawBar]) -> Payload {
    Payload::Columns(BarColumns {
        timestamp_ms: bars.iter().map(|b| b.ts_ms).collect(),
        open: bars.iter().map(|b| b.open).collect(),
        high: bars.iter().map(|b| b.high).collect(),
        low: bars.iter().map(|b| b.low).collect(),
        close: bars.iter().map(|b| b.close).collect(),
        volume: bars.iter().map(|b| b.volume).collect(),
    })
}

/// One Arrow IPC stream: schema, one record batch, end-of-stream marker.
pub fn arrow_ipc(bars: &[RawBar]) -> Result<Payload, ArrowError> {
    let f64s = |f: fn(&RawBar) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(bars.iter().map(f)))
    };
    let ts = TimestampMillisecondArray::from_iter_values(bars.iter().map(|b| b.ts_ms))
        .with_timezone("UTC");
    let batch = RecordBatch::try_new(
        Arc::clone(&SCHEMA),
        vec![
            Arc::new(ts),
            f64s(|b| b.open),
            f64s(|b| b.high),
            f64s(|b| b.low),
            f64s(|b| b.close),
            f64s(|b| b.volume),
        ],
    )?;
    let mut out = Vec::with_capacity(bars.len() * 48 + 1024);
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, &SCHEMA)?;
    writer.write(&batch)?;
    writer.finish()?;
    drop(writer);
    Ok(Payload::ArrowIpc(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    #[test]
    fn arrow_ipc_round_trips_the_bars() {
        let bars: Vec<RawBar> = (0..3)
            .map(|i| RawBar {
                ts_ms: 1_700_000_000_000 + i * 60_000,
                open: 1.0 + i as f64,
                high: 2.0,
                low: 0.5,
                close: 1.5,
                volume: -1.0,
            })
            .collect();
        let Ok(Payload::ArrowIpc(bytes)) = arrow_ipc(&bars) else {
            panic!("arrow payload expected")
        };
        let mut reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        let batch = reader.next().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.schema().field(0).name(), "timestamp");
        let open = batch
            .column_by_name("open")
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(open.value(2), 3.0);
        assert_eq!(open.null_count(), 0);
        assert!(reader.next().is_none());
    }
}
