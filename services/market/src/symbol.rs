//! Symbols: normalisation (the one spelling every service stores and asks IB for) and the
//! asset class that decides an instrument's trading calendar.
//!
//! Invariant: a normalised symbol is a safe single path component — `A–Z 0–9 . _ -`, starting
//! with a letter or digit, at most 32 characters (the rule of [`crate::path`]) — so it can name
//! a directory of the store or the model registry.

pub use crate::shown::shown;

/// ISO codes of the currencies IB trades as forex pairs.
const CURRENCIES: &[&str] = &[
    "USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "HKD", "SGD",
    "MXN", "ZAR", "CNH", "PLN", "CZK", "HUF", "TRY", "ILS", "KRW",
];

/// Futures roots ktrdr recognises without a contract lookup.
const FUTURE_ROOTS: &[&str] = &[
    "ES", "MES", "NQ", "MNQ", "YM", "RTY", "CL", "NG", "GC", "SI", "HG", "ZB", "ZN", "ZF", "ZT",
    "ZC", "ZS", "ZW", "6E", "6J", "6B", "VX",
];

/// The longest symbol accepted.
pub const MAX_SYMBOL_LEN: usize = 32;

/// The broad kind of instrument a symbol names; decides its trading calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssetClass {
    Stock,
    Forex,
    Future,
}

impl AssetClass {
    /// Detects the class from a normalised symbol: six letters made of two known currencies
    /// are forex, known futures roots are futures, anything else is a stock.
    pub fn of(symbol: &str) -> Self {
        if is_currency_pair(symbol) {
            Self::Forex
        } else if FUTURE_ROOTS.contains(&symbol) {
            Self::Future
        } else {
            Self::Stock
        }
    }
}

fn is_currency_pair(symbol: &str) -> bool {
    symbol.len() == 6
        && symbol.is_char_boundary(3)
        && CURRENCIES.contains(&&symbol[..3])
        && CURRENCIES.contains(&&symbol[3..])
        && symbol[..3] != symbol[3..]
}

/// Normalises a symbol the way every ktrdr service does: trimmed, upper case, and forex pairs
/// written without separator (`eur.usd`, `EUR/USD`, `EUR-USD`, `EUR USD` → `EURUSD`; the
/// separator only between the two currencies). Anything else must already be a safe path
/// component (see the module doc): `BRK.B` stays `BRK.B`, `/EURUSD` and `EU/RUSD` are refused.
pub fn normalize_symbol(raw: &str) -> Result<String, String> {
    let upper = raw.trim().to_ascii_uppercase();
    if upper.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if upper.len() == 7 && upper.is_char_boundary(3) && upper.is_char_boundary(4) {
        let (base, rest) = upper.split_at(3);
        let (separator, quote) = rest.split_at(1);
        let pair = format!("{base}{quote}");
        if matches!(separator, "." | "/" | "-" | " ") && is_currency_pair(&pair) {
            return Ok(pair);
        }
    }
    match crate::path::fault(&upper, MAX_SYMBOL_LEN) {
        None => Ok(upper),
        Some(bad @ crate::path::Fault::Char(_)) => Err(format!(
            "{} {bad}; allowed are letters, digits, '.', '_' and '-' (forex pairs as EURUSD or EUR.USD)",
            shown(raw)
        )),
        Some(fault) => Err(format!("{} {fault}", shown(raw))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_normalise_like_ib_host() {
        for (raw, want) in [
            ("aapl", "AAPL"),
            (" EUR.USD ", "EURUSD"),
            ("eur/usd", "EURUSD"),
            ("EUR-USD", "EURUSD"),
            ("EUR USD", "EURUSD"),
            ("EURUSD", "EURUSD"),
            ("BRK.B", "BRK.B"),
            ("ES", "ES"),
        ] {
            assert_eq!(normalize_symbol(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn separators_anywhere_but_between_two_currencies_are_refused() {
        for bad in [
            "",
            "  ",
            "../etc",
            "A/B/C",
            "AAPL US",
            "_X",
            "/EURUSD",
            "EURUSD/",
            "EU/RUSD",
            "EUR//USD",
            ".hidden",
            "...",
            &"X".repeat(33),
        ] {
            assert!(normalize_symbol(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn long_input_is_cut_in_messages() {
        let long = "A".repeat(100_000);
        let err = normalize_symbol(&long).unwrap_err();
        assert!(err.len() < 120, "{err}");
        assert!(err.contains("(100000 bytes)"), "{err}");
    }

    #[test]
    fn asset_classes() {
        assert_eq!(AssetClass::of("EURUSD"), AssetClass::Forex);
        assert_eq!(AssetClass::of("USDJPY"), AssetClass::Forex);
        assert_eq!(AssetClass::of("ES"), AssetClass::Future);
        assert_eq!(AssetClass::of("AAPL"), AssetClass::Stock);
        assert_eq!(AssetClass::of("USDUSD"), AssetClass::Stock);
    }
}
