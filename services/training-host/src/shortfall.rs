//! What an inference call lacks: [`Shortfall`]s (dataset and range), reported all at once as
//! `FAILED_PRECONDITION` with reason [`NOT_COVERED_REASON`] and read back from that error's
//! `ErrorInfo` metadata (the gateway does, to load them and retry).

use std::collections::HashMap;

use ktrdr_common::market::iso_ms;
use ktrdr_market::Timeframe;

/// `ErrorInfo.reason` of the `FAILED_PRECONDITION` that reports [`Shortfall`]s.
pub const NOT_COVERED_REASON: &str = "DATA_NOT_COVERED";

/// `ErrorInfo` metadata key listing every shortfall, `;`-separated, each
/// `SYMBOL TIMEFRAME START_MS END_MS`.
const MISSING_KEY: &str = "missing";

/// Bars one dataset lacks for an inference call: `[start_ms, end_ms)` by open time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    pub symbol: String,
    pub timeframe: Timeframe,
    pub start_ms: i64,
    pub end_ms: i64,
    /// What was expected, for the message, e.g. "60 1d bars of warm-up before …".
    pub why: String,
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} lacks bars in [{}, {}) ({})",
            self.symbol,
            self.timeframe,
            iso_ms(self.start_ms),
            iso_ms(self.end_ms),
            self.why
        )
    }
}

/// The `ErrorInfo` metadata of a [`Shortfall`] report: the first dataset and range as
/// `symbol`, `timeframe`, `start_ms`, `end_ms`, and every one under `missing`.
pub fn shortfall_metadata(shortfalls: &[Shortfall]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(first) = shortfalls.first() {
        out.push(("symbol", first.symbol.clone()));
        out.push(("timeframe", first.timeframe.to_string()));
        out.push(("start_ms", first.start_ms.to_string()));
        out.push(("end_ms", first.end_ms.to_string()));
    }
    let all: Vec<String> = shortfalls
        .iter()
        .map(|s| format!("{} {} {} {}", s.symbol, s.timeframe, s.start_ms, s.end_ms))
        .collect();
    out.push((MISSING_KEY, all.join(";")));
    out
}

/// The shortfalls of a `DATA_NOT_COVERED` error's `ErrorInfo` metadata (`why` is empty); `None`
/// when the metadata holds none.
pub fn shortfalls_from_metadata(metadata: &HashMap<String, String>) -> Option<Vec<Shortfall>> {
    let all = metadata.get(MISSING_KEY)?;
    let parsed: Option<Vec<Shortfall>> = all
        .split(';')
        .map(|item| {
            let mut parts = item.split_whitespace();
            let symbol = parts.next()?.to_owned();
            let timeframe = parts.next()?.parse().ok()?;
            let start_ms = parts.next()?.parse().ok()?;
            let end_ms = parts.next()?.parse().ok()?;
            Some(Shortfall {
                symbol,
                timeframe,
                start_ms,
                end_ms,
                why: String::new(),
            })
        })
        .collect();
    parsed.filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tonic::Code;

    use super::*;
    use crate::error::TrainingError;

    fn shortfall(symbol: &str, timeframe: Timeframe, start_ms: i64, end_ms: i64) -> Shortfall {
        Shortfall {
            symbol: symbol.to_owned(),
            timeframe,
            start_ms,
            end_ms,
            why: "stale".to_owned(),
        }
    }

    #[test]
    fn shortfalls_round_trip_through_error_info_metadata() {
        let all = vec![
            shortfall(
                "EURUSD",
                Timeframe::D1,
                1_709_164_800_000,
                1_719_792_000_000,
            ),
            shortfall(
                "EURUSD",
                Timeframe::H4,
                1_709_164_800_000,
                1_719_792_000_000,
            ),
        ];
        let metadata: HashMap<String, String> = shortfall_metadata(&all)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(metadata["symbol"], "EURUSD");
        assert_eq!(metadata["timeframe"], "1d");
        assert_eq!(metadata["start_ms"], "1709164800000");
        let read = shortfalls_from_metadata(&metadata).unwrap();
        assert_eq!(read.len(), 2);
        for (got, sent) in read.iter().zip(&all) {
            assert_eq!(
                (&got.symbol, got.timeframe, got.start_ms, got.end_ms),
                (&sent.symbol, sent.timeframe, sent.start_ms, sent.end_ms)
            );
        }
        assert!(shortfalls_from_metadata(&HashMap::new()).is_none());
        let garbled = HashMap::from([(MISSING_KEY.to_owned(), "EURUSD 2h 1 2".to_owned())]);
        assert!(shortfalls_from_metadata(&garbled).is_none());
    }

    #[test]
    fn not_covered_is_failed_precondition_naming_each_dataset_and_range() {
        let error = TrainingError::NotCovered {
            shortfalls: vec![shortfall(
                "EURUSD",
                Timeframe::D1,
                1_709_164_800_000,
                1_719_792_000_000,
            )],
            url: "http://data".to_owned(),
        };
        let message = error.to_string();
        assert!(
            message.starts_with(
                "EURUSD 1d lacks bars in [2024-02-29T00:00:00Z, 2024-07-01T00:00:00Z) (stale)"
            ),
            "{message}"
        );
        let status = tonic::Status::from(error);
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), message);
    }
}
