//! From a ktrdr symbol to an IB contract: normalisation, asset-class detection, IB's defaults
//! per class (SMART/USD stocks, IDEALPRO forex as base.quote, CME futures).

use ktrdr_market::{AssetClass, normalize_symbol};
use ktrdr_proto::common::v1::{Instrument, InstrumentType};

/// What ib-host asks IB for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContractSpec {
    /// ktrdr's normalised symbol: "AAPL", "EURUSD", "ES".
    pub symbol: String,
    pub class: AssetClass,
    /// IB's symbol: "AAPL", "EUR" (forex base), "ES".
    pub ib_symbol: String,
    pub sec_type: &'static str,
    pub exchange: String,
    pub currency: String,
    /// IB contract id; 0 = resolve from the fields above.
    pub con_id: i64,
}

impl ContractSpec {
    /// The spec for a symbol (already normalised) of a class, with optional overrides.
    pub fn new(symbol: &str, class: AssetClass, exchange: &str, currency: &str) -> Self {
        let (ib_symbol, sec_type, default_exchange, default_currency) = match class {
            AssetClass::Stock => (symbol.to_owned(), "STK", "SMART", "USD"),
            AssetClass::Forex => {
                let (base, quote) = symbol.split_at(symbol.len().min(3));
                return Self {
                    symbol: symbol.to_owned(),
                    class,
                    ib_symbol: base.to_owned(),
                    sec_type: "CASH",
                    exchange: or(exchange, "IDEALPRO"),
                    currency: or(currency, quote),
                    con_id: 0,
                };
            }
            AssetClass::Future => (symbol.to_owned(), "FUT", "CME", "USD"),
        };
        Self {
            symbol: symbol.to_owned(),
            class,
            ib_symbol,
            sec_type,
            exchange: or(exchange, default_exchange),
            currency: or(currency, default_currency),
            con_id: 0,
        }
    }

    /// Key for pacing rule "same contract, exchange and tick type".
    pub fn pacing_key(&self) -> String {
        if self.con_id > 0 {
            format!("{}@{}", self.con_id, self.exchange)
        } else {
            format!(
                "{}.{}.{}@{}",
                self.ib_symbol, self.sec_type, self.currency, self.exchange
            )
        }
    }
}

fn or(value: &str, default: &str) -> String {
    let v = value.trim();
    if v.is_empty() {
        default.to_owned()
    } else {
        v.to_ascii_uppercase()
    }
}

/// The asset class a request asks for; `None` = detect.
pub fn class_of(t: InstrumentType) -> Option<AssetClass> {
    match t {
        InstrumentType::Stock => Some(AssetClass::Stock),
        InstrumentType::Forex => Some(AssetClass::Forex),
        InstrumentType::Future => Some(AssetClass::Future),
        InstrumentType::Unspecified | InstrumentType::Index => None,
    }
}

pub fn instrument_type(class: AssetClass) -> InstrumentType {
    match class {
        AssetClass::Stock => InstrumentType::Stock,
        AssetClass::Forex => InstrumentType::Forex,
        AssetClass::Future => InstrumentType::Future,
    }
}

/// Classes to try for a symbol, most likely first: the detected class, then the others
/// (a six-letter stock ticker made of currency codes is rare but possible).
pub fn candidate_classes(symbol: &str, requested: Option<AssetClass>) -> Vec<AssetClass> {
    if let Some(class) = requested {
        return vec![class];
    }
    let detected = AssetClass::of(symbol);
    let mut all = vec![detected];
    for c in [AssetClass::Forex, AssetClass::Stock, AssetClass::Future] {
        if c != detected && (c != AssetClass::Forex || symbol.len() == 6) {
            all.push(c);
        }
    }
    all
}

/// Normalises a user's symbol (`eur/usd` → `EURUSD`).
pub fn normalize(raw: &str) -> Result<String, String> {
    normalize_symbol(raw)
}

/// A resolved contract as ktrdr describes it.
pub fn instrument(spec: &ContractSpec, details: &ibapi::contracts::ContractDetails) -> Instrument {
    let c = &details.contract;
    Instrument {
        symbol: spec.symbol.clone(),
        instrument_type: instrument_type(spec.class) as i32,
        exchange: c.exchange.to_string(),
        primary_exchange: c.primary_exchange.to_string(),
        currency: c.currency.to_string(),
        con_id: i64::from(c.contract_id),
        long_name: details.long_name.clone(),
        time_zone_id: details.time_zone_id.clone(),
        trading_hours: details.trading_hours.join(";"),
        liquid_hours: details.liquid_hours.join(";"),
        min_tick: details.min_tick,
        multiplier: c.multiplier.parse().unwrap_or(0.0),
        ib_symbol: c.symbol.to_string(),
        local_symbol: c.local_symbol.clone(),
        sec_type: c.security_type.to_string(),
        trading_class: c.trading_class.clone(),
        last_trade_date: c.last_trade_date_or_contract_month.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forex_spellings_normalise_to_one_pair_on_idealpro() {
        for raw in ["EURUSD", "eur.usd", "EUR/USD", " eur/usd "] {
            let s = normalize(raw).unwrap();
            assert_eq!(s, "EURUSD", "{raw}");
            let spec = ContractSpec::new(&s, AssetClass::of(&s), "", "");
            assert_eq!(
                (
                    spec.ib_symbol.as_str(),
                    spec.sec_type,
                    spec.exchange.as_str(),
                    spec.currency.as_str()
                ),
                ("EUR", "CASH", "IDEALPRO", "USD")
            );
        }
    }

    #[test]
    fn stocks_and_futures_get_ibs_defaults() {
        let aapl = ContractSpec::new("AAPL", AssetClass::of("AAPL"), "", "");
        assert_eq!(
            (
                aapl.sec_type,
                aapl.exchange.as_str(),
                aapl.currency.as_str()
            ),
            ("STK", "SMART", "USD")
        );
        let es = ContractSpec::new("ES", AssetClass::of("ES"), "globex", "");
        assert_eq!((es.sec_type, es.exchange.as_str()), ("FUT", "GLOBEX"));
        assert_eq!(
            candidate_classes("AAPL", None),
            [AssetClass::Stock, AssetClass::Future]
        );
        assert_eq!(candidate_classes("EURUSD", None)[0], AssetClass::Forex);
        assert!(normalize("").is_err());
    }
}
