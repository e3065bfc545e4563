//! The dataset a file name names: the original ktrdr wrote `SYMBOL_tf.csv` (`AAPL_1h.csv`,
//! `BRK_B_5m.csv`), and both the CSV importer and the CLI read the symbol and timeframe back
//! from it with this one rule.
//!
//! Invariant: only a stem ending in `_` and an accepted timeframe names a dataset; anything
//! else (`prices.csv`) names none, so an unrelated file is never imported under a guessed
//! symbol.

use crate::Timeframe;

/// `(symbol as written, timeframe)` of a `SYMBOL_tf.ext` file name (any directory, any
/// extension); `None` when the name does not follow that form.
pub fn dataset_of_file_name(file_name: &str) -> Option<(String, Timeframe)> {
    let stem = std::path::Path::new(file_name).file_stem()?.to_str()?;
    let (symbol, timeframe) = stem.rsplit_once('_')?;
    if symbol.is_empty() {
        return None;
    }
    Some((symbol.to_owned(), Timeframe::parse(timeframe)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_name_the_dataset() {
        assert_eq!(
            dataset_of_file_name("data/AAPL_1h.csv"),
            Some(("AAPL".into(), Timeframe::H1))
        );
        assert_eq!(
            dataset_of_file_name("EURUSD_1d.csv"),
            Some(("EURUSD".into(), Timeframe::D1))
        );
        assert_eq!(
            dataset_of_file_name("BRK_B_5m.csv"),
            Some(("BRK_B".into(), Timeframe::M5))
        );
    }

    #[test]
    fn other_file_names_name_no_dataset() {
        for name in [
            "prices.csv",
            "EURUSD.csv",
            "EURUSD_hourly.csv",
            "_1h.csv",
            "",
        ] {
            assert_eq!(dataset_of_file_name(name), None, "{name}");
        }
    }
}
