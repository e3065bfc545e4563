//! The simulated market: a contract table, trading sessions per contract, and a deterministic
//! bar generator.
//!
//! Every price is a closed-form function of (symbol, time): a drift plus octaves of hashed
//! value noise (months to minutes), the short octaves scaled by a slowly varying volatility
//! regime. A bar is computed only from its own (symbol, bar size, start, end), so the same bar
//! comes back whatever window a request asks for, and any range can be served without state.

use time::{Date, Duration, Month, Weekday};

use crate::calendar::{self, DAY, HOUR, MINUTE};

/// When a contract trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// NYSE/Nasdaq: 09:30–16:00 New York (04:00–20:00 with extended hours), Mon–Fri, minus
    /// exchange holidays.
    UsStock,
    /// IDEALPRO: Sunday 17:00 to Friday 17:00 New York, continuously.
    Forex,
    /// CME Globex: Sunday 18:00 to Friday 17:00 New York with a daily 17:00–18:00 break;
    /// regular hours 09:30–16:00; closed on exchange holidays.
    CmeFuture,
}

/// One contract the simulator knows.
#[derive(Debug, Clone)]
pub struct SimContract {
    pub con_id: i32,
    /// IB's symbol: "AAPL", "EUR" (forex base currency), "ES".
    pub symbol: &'static str,
    pub sec_type: &'static str,
    pub exchange: &'static str,
    pub primary_exchange: &'static str,
    pub currency: &'static str,
    pub local_symbol: &'static str,
    pub trading_class: &'static str,
    pub long_name: &'static str,
    pub min_tick: f64,
    pub multiplier: Option<f64>,
    pub last_trade_date: Option<&'static str>,
    pub schedule: Schedule,
    /// Earliest data, UTC unix seconds.
    pub head_timestamp: i64,
    /// Price level and annualised volatility of the path.
    pub base_price: f64,
    pub annual_vol: f64,
    pub annual_drift: f64,
    /// Traded volume per open minute on an average day (TRADES only).
    pub volume_per_minute: f64,
}

impl SimContract {
    /// Key for pacing rule 2 ("same contract and exchange").
    pub fn pacing_key(&self) -> String {
        format!("{}@{}", self.con_id, self.exchange)
    }

    /// "EUR.USD" for forex, the symbol otherwise.
    pub fn display(&self) -> &'static str {
        self.local_symbol
    }
}

const fn utc(days_since_epoch: i64, secs: i64) -> i64 {
    days_since_epoch * DAY + secs
}

/// The contracts the simulator serves.
pub fn contracts() -> Vec<SimContract> {
    vec![
        SimContract {
            con_id: 265_598,
            symbol: "AAPL",
            sec_type: "STK",
            exchange: "SMART",
            primary_exchange: "NASDAQ",
            currency: "USD",
            local_symbol: "AAPL",
            trading_class: "NMS",
            long_name: "APPLE INC",
            min_tick: 0.01,
            multiplier: None,
            last_trade_date: None,
            schedule: Schedule::UsStock,
            // 1980-12-12 14:30 UTC
            head_timestamp: utc(3_998, 14 * HOUR + 30 * MINUTE),
            base_price: 180.0,
            annual_vol: 0.28,
            annual_drift: 0.12,
            volume_per_minute: 150_000.0,
        },
        SimContract {
            con_id: 272_093,
            symbol: "MSFT",
            sec_type: "STK",
            exchange: "SMART",
            primary_exchange: "NASDAQ",
            currency: "USD",
            local_symbol: "MSFT",
            trading_class: "NMS",
            long_name: "MICROSOFT CORP",
            min_tick: 0.01,
            multiplier: None,
            last_trade_date: None,
            schedule: Schedule::UsStock,
            // 1986-03-13 14:30 UTC
            head_timestamp: utc(5_915, 14 * HOUR + 30 * MINUTE),
            base_price: 380.0,
            annual_vol: 0.25,
            annual_drift: 0.10,
            volume_per_minute: 60_000.0,
        },
        SimContract {
            con_id: 756_733,
            symbol: "SPY",
            sec_type: "STK",
            exchange: "SMART",
            primary_exchange: "ARCA",
            currency: "USD",
            local_symbol: "SPY",
            trading_class: "SPY",
            long_name: "SPDR S&P 500 ETF TRUST",
            min_tick: 0.01,
            multiplier: None,
            last_trade_date: None,
            schedule: Schedule::UsStock,
            // 1993-01-29 14:30 UTC
            head_timestamp: utc(8_429, 14 * HOUR + 30 * MINUTE),
            base_price: 470.0,
            annual_vol: 0.16,
            annual_drift: 0.08,
            volume_per_minute: 200_000.0,
        },
        forex(
            12_087_792,
            "EUR",
            "USD",
            "EUR.USD",
            "European Monetary Union Euro",
            1.09,
            0.07,
        ),
        forex(
            12_087_797,
            "GBP",
            "USD",
            "GBP.USD",
            "British pound",
            1.27,
            0.08,
        ),
        forex(
            15_016_059,
            "USD",
            "JPY",
            "USD.JPY",
            "US dollar",
            148.0,
            0.09,
        ),
        SimContract {
            con_id: 649_180_695,
            symbol: "ES",
            sec_type: "FUT",
            exchange: "CME",
            primary_exchange: "CME",
            currency: "USD",
            local_symbol: "ESZ6",
            trading_class: "ES",
            long_name: "E-mini S&P 500",
            min_tick: 0.25,
            multiplier: Some(50.0),
            last_trade_date: Some("20261218"),
            schedule: Schedule::CmeFuture,
            // 2025-09-19 22:00 UTC (listed about 15 months before expiry)
            head_timestamp: utc(20_350, 22 * HOUR),
            base_price: 5_900.0,
            annual_vol: 0.17,
            annual_drift: 0.07,
            volume_per_minute: 1_500.0,
        },
    ]
}

fn forex(
    con_id: i32,
    symbol: &'static str,
    currency: &'static str,
    local_symbol: &'static str,
    long_name: &'static str,
    base_price: f64,
    annual_vol: f64,
) -> SimContract {
    SimContract {
        con_id,
        symbol,
        sec_type: "CASH",
        exchange: "IDEALPRO",
        primary_exchange: "",
        currency,
        local_symbol,
        trading_class: local_symbol,
        long_name,
        min_tick: if currency == "JPY" { 0.005 } else { 0.00005 },
        multiplier: None,
        last_trade_date: None,
        schedule: Schedule::Forex,
        // 2005-02-28 22:00 UTC
        head_timestamp: utc(12_842, 22 * HOUR),
        base_price,
        annual_vol,
        annual_drift: 0.0,
        volume_per_minute: 0.0,
    }
}

/// What a contract lookup asks for (any empty field matches everything).
#[derive(Debug, Clone, Default)]
pub struct ContractQuery {
    pub con_id: i32,
    pub symbol: String,
    pub sec_type: String,
    pub exchange: String,
    pub currency: String,
    pub local_symbol: String,
    pub contract_month: String,
}

/// The contracts matching a query, as IB's reqContractDetails resolves them.
pub fn find<'a>(table: &'a [SimContract], q: &ContractQuery) -> Vec<&'a SimContract> {
    let eq = |want: &str, have: &str| want.is_empty() || want.eq_ignore_ascii_case(have);
    table
        .iter()
        .filter(|c| {
            if q.con_id > 0 {
                return c.con_id == q.con_id;
            }
            let exchange_ok = q.exchange.is_empty()
                || q.exchange.eq_ignore_ascii_case(c.exchange)
                || (c.sec_type == "STK" && q.exchange.eq_ignore_ascii_case(c.primary_exchange))
                || (c.sec_type == "FUT" && q.exchange.eq_ignore_ascii_case("GLOBEX"));
            let month_ok = q.contract_month.is_empty()
                || c.last_trade_date
                    .is_some_and(|d| d.starts_with(q.contract_month.as_str()));
            let named = (!q.symbol.is_empty() && q.symbol.eq_ignore_ascii_case(c.symbol))
                || (!q.local_symbol.is_empty()
                    && q.local_symbol.eq_ignore_ascii_case(c.local_symbol));
            named
                && (q.symbol.is_empty() || q.symbol.eq_ignore_ascii_case(c.symbol))
                && eq(&q.sec_type, c.sec_type)
                && eq(&q.currency, c.currency)
                && exchange_ok
                && month_ok
        })
        .collect()
}

/// Open intervals `[start, end)` in UTC seconds of one New York calendar day.
pub fn day_sessions(schedule: Schedule, date: Date, use_rth: bool) -> Vec<(i64, i64)> {
    let at = |h: i64, m: i64| calendar::ny_to_utc(date, h * HOUR + m * MINUTE);
    let midnight_next = date
        .next_day()
        .map(|d| calendar::ny_to_utc(d, 0))
        .unwrap_or_else(|| at(24, 0));
    let weekday = date.weekday();
    let closed = calendar::is_weekend(date) || calendar::is_nyse_holiday(date);
    match schedule {
        Schedule::UsStock if closed => vec![],
        Schedule::UsStock if use_rth => vec![(at(9, 30), at(16, 0))],
        Schedule::UsStock => vec![(at(4, 0), at(20, 0))],
        Schedule::Forex => match weekday {
            Weekday::Saturday => vec![],
            Weekday::Sunday => vec![(at(17, 0), midnight_next)],
            Weekday::Friday => vec![(at(0, 0), at(17, 0))],
            _ => vec![(at(0, 0), midnight_next)],
        },
        Schedule::CmeFuture if use_rth => {
            if closed {
                vec![]
            } else {
                vec![(at(9, 30), at(16, 0))]
            }
        }
        Schedule::CmeFuture => {
            let next_closed = date
                .next_day()
                .is_some_and(|d| calendar::is_weekend(d) || calendar::is_nyse_holiday(d));
            let mut sessions = vec![];
            if !closed {
                sessions.push((at(0, 0), at(17, 0)));
            }
            // The evening session belongs to the next trading day.
            if !next_closed && weekday != Weekday::Saturday {
                sessions.push((at(18, 0), midnight_next));
            }
            sessions
        }
    }
}

/// IB's tradingHours/liquidHours string for the days from `from` (New York dates), e.g.
/// `20240105:0930-20240105:1600;20240106:CLOSED`.
pub fn hours_string(schedule: Schedule, from: Date, days: i64, use_rth: bool) -> String {
    let mut parts = vec![];
    for i in 0..days {
        let Some(date) = from.checked_add(Duration::days(i)) else {
            break;
        };
        let sessions = day_sessions(schedule, date, use_rth);
        if sessions.is_empty() {
            parts.push(format!("{}:CLOSED", calendar::yyyymmdd(date)));
        }
        for (start, end) in sessions {
            parts.push(format!("{}-{}", ny_stamp(start), ny_stamp(end)));
        }
    }
    parts.join(";")
}

fn ny_stamp(utc: i64) -> String {
    let local = utc + calendar::ny_offset(utc);
    let date = calendar::ny_date(utc);
    let secs = local.rem_euclid(DAY);
    format!(
        "{}:{:02}{:02}",
        calendar::yyyymmdd(date),
        secs / HOUR,
        (secs % HOUR) / MINUTE
    )
}

/// IB bar sizes the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BarSize {
    /// Intraday: 1 s to 8 h.
    Seconds(i64),
    Day,
    Week,
    Month,
}

impl BarSize {
    /// Nominal length in seconds, for ordering and legality checks.
    pub fn nominal_secs(self) -> i64 {
        match self {
            Self::Seconds(s) => s,
            Self::Day => DAY,
            Self::Week => 7 * DAY,
            Self::Month => 30 * DAY,
        }
    }
}

/// IB's whatToShow values the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WhatToShow {
    Trades,
    Midpoint,
    Bid,
    Ask,
    BidAsk,
}

impl WhatToShow {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_uppercase().as_str() {
            "TRADES" => Self::Trades,
            "MIDPOINT" => Self::Midpoint,
            "BID" => Self::Bid,
            "ASK" => Self::Ask,
            "BID_ASK" => Self::BidAsk,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trades => "TRADES",
            Self::Midpoint => "MIDPOINT",
            Self::Bid => "BID",
            Self::Ask => "ASK",
            Self::BidAsk => "BID_ASK",
        }
    }
}

/// When a bar starts: intraday bars carry an instant, daily and longer bars a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarTime {
    Unix(i64),
    Date(Date),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub time: BarTime,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    /// -1 for non-TRADES data, as IB sends it.
    pub volume: f64,
    pub wap: f64,
    pub count: i32,
}

/// The bars of `contract` whose start lies in `[window_start, window_end)` and that have closed
/// by `now` (UTC unix seconds).
pub fn bars(
    contract: &SimContract,
    bar_size: BarSize,
    what: WhatToShow,
    use_rth: bool,
    window_start: i64,
    window_end: i64,
    now: i64,
) -> Vec<Bar> {
    let lo = window_start.max(contract.head_timestamp);
    let hi = window_end.min(now);
    if lo >= hi {
        return vec![];
    }
    let first = calendar::ny_date(lo).previous_day().unwrap_or(Date::MIN);
    let last = calendar::ny_date(hi);
    let mut out = vec![];
    match bar_size {
        BarSize::Seconds(len) => {
            let mut date = first;
            while date <= last {
                let midnight = calendar::ny_to_utc(date, 0);
                for (a, b) in day_sessions(contract.schedule, date, use_rth) {
                    let mut slot = midnight + (a - midnight).div_euclid(len) * len;
                    while slot < b {
                        let start = slot.max(a);
                        let end = (slot + len).min(b);
                        if start >= lo && start < hi && end <= now {
                            out.push(make_bar(contract, what, BarTime::Unix(start), start, end));
                        }
                        slot += len;
                    }
                }
                let Some(next) = date.next_day() else { break };
                date = next;
            }
        }
        BarSize::Day | BarSize::Week | BarSize::Month => {
            // Group trading days into periods; a period's bar is stamped with its first trading
            // day and starts at that day's first session.
            let period_of = |d: Date| -> (i32, u32) {
                match bar_size {
                    BarSize::Week => {
                        let monday = d
                            .checked_sub(Duration::days(i64::from(
                                d.weekday().number_days_from_monday(),
                            )))
                            .unwrap_or(d);
                        (monday.year(), u32::from(monday.ordinal()))
                    }
                    BarSize::Month => (d.year(), u32::from(u8::from(d.month()))),
                    _ => (d.year(), u32::from(d.ordinal())),
                }
            };
            // Start from the beginning of the period containing `first`, so a period's bar is
            // computed from its whole span whichever window asks.
            let mut date = match bar_size {
                BarSize::Week => first.checked_sub(Duration::days(7)).unwrap_or(first),
                BarSize::Month => {
                    Date::from_calendar_date(first.year(), first.month(), 1).unwrap_or(first)
                }
                _ => first,
            };
            let mut current: Option<((i32, u32), Date, i64, i64)> = None;
            let flush = |p: Option<((i32, u32), Date, i64, i64)>, out: &mut Vec<Bar>| {
                if let Some((_, day, start, end)) = p
                    && start >= lo
                    && start < hi
                    && end <= now
                {
                    out.push(make_bar(contract, what, BarTime::Date(day), start, end));
                }
            };
            let stop = last.checked_add(Duration::days(35)).unwrap_or(last);
            while date <= stop {
                let sessions = day_sessions(contract.schedule, date, use_rth);
                if let (Some(first_s), Some(last_s)) = (sessions.first(), sessions.last()) {
                    let period = period_of(date);
                    match &mut current {
                        Some((p, _, _, end)) if *p == period => *end = last_s.1,
                        _ => {
                            flush(current.take(), &mut out);
                            if first_s.0 >= hi {
                                break;
                            }
                            current = Some((period, date, first_s.0, last_s.1));
                        }
                    }
                }
                let Some(next) = date.next_day() else { break };
                date = next;
            }
            flush(current.take(), &mut out);
        }
    }
    out
}

const YEAR_SECS: f64 = 365.25 * 86_400.0;

/// splitmix64
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform value in [-1, 1) from a seed and a lattice index.
fn lattice(seed: u64, i: i64) -> f64 {
    let h = mix(seed ^ mix(i as u64));
    (h >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// Smooth value noise of unit lattice spacing.
fn value_noise(seed: u64, x: f64) -> f64 {
    let i = x.floor();
    let f = x - i;
    let t = f * f * (3.0 - 2.0 * f);
    let i = i as i64;
    lattice(seed, i) * (1.0 - t) + lattice(seed, i + 1) * t
}

fn symbol_seed(contract: &SimContract) -> u64 {
    contract
        .local_symbol
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
}

/// Octaves of the price path: lattice spacing in seconds and relative amplitude.
const OCTAVES: &[(f64, f64)] = &[
    (2.0 * YEAR_SECS, 1.4),
    (90.0 * 86_400.0, 1.0),
    (14.0 * 86_400.0, 1.0),
    (2.0 * 86_400.0, 1.0),
    (6.0 * 3_600.0, 1.0),
    (3_600.0, 1.0),
    (600.0, 1.0),
    (120.0, 1.0),
];

/// Volatility regime: slowly varying multiplier around 1 (calm and turbulent months).
fn regime(seed: u64, t: i64) -> f64 {
    (0.45 * value_noise(seed ^ 0x5eed, t as f64 / (45.0 * 86_400.0))).exp()
}

/// The (mid) price at a UTC instant.
pub fn price(contract: &SimContract, t: i64) -> f64 {
    let seed = symbol_seed(contract);
    let years = t as f64 / YEAR_SECS - 55.0;
    let reg = regime(seed, t);
    let mut log = contract.annual_drift * years;
    for (k, (spacing, weight)) in OCTAVES.iter().enumerate() {
        let amp = contract.annual_vol * (spacing / YEAR_SECS).sqrt() * weight;
        // Short octaves breathe with the volatility regime; long ones carry the trend.
        let amp = if *spacing < 30.0 * 86_400.0 {
            amp * reg
        } else {
            amp
        };
        log += amp * value_noise(seed.wrapping_add(k as u64 * 7919), t as f64 / spacing);
    }
    // Keep the long-run level near the base price.
    contract.base_price * (log - contract.annual_drift * years * 0.9).exp()
}

fn round_to(x: f64, tick: f64) -> f64 {
    let digits = (-tick.log10()).ceil().max(0.0) as i32 + 1;
    let scale = 10f64.powi(digits);
    ((x / tick).round() * tick * scale).round() / scale
}

/// Intraday volume profile: busy at the open and the close (U-shape), 1 on average.
fn volume_profile(contract: &SimContract, start: i64, end: i64) -> f64 {
    let mid = (start + end) / 2;
    let local = (mid + calendar::ny_offset(mid)).rem_euclid(DAY) as f64 / 60.0;
    let (open, close) = (9.5 * 60.0, 16.0 * 60.0);
    if contract.schedule == Schedule::UsStock && !(open..close).contains(&local) {
        return 0.15;
    }
    0.55 + 1.6 * (-(local - open).abs() / 40.0).exp() + 1.1 * (-(close - local).abs() / 35.0).exp()
}

fn make_bar(contract: &SimContract, what: WhatToShow, time: BarTime, start: i64, end: i64) -> Bar {
    const SAMPLES: i64 = 12;
    let seed = symbol_seed(contract) ^ mix(start as u64) ^ mix((end - start) as u64);
    let span = (end - start).max(1);
    let mut hi = f64::MIN;
    let mut lo = f64::MAX;
    for i in 0..=SAMPLES {
        let p = price(contract, start + span * i / SAMPLES);
        hi = hi.max(p);
        lo = lo.min(p);
    }
    let (mut open, mut close) = (price(contract, start), price(contract, end));
    let wiggle =
        contract.annual_vol * (span as f64 / YEAR_SECS).sqrt() * 0.35 * regime(seed, start);
    hi *= 1.0 + wiggle * (lattice(seed, 1).abs() + 0.05);
    lo *= 1.0 - wiggle * (lattice(seed, 2).abs() + 0.05);
    // Quoted data sits half a spread off the midpoint.
    let half_spread = contract.min_tick.max(contract.base_price * 0.000_05);
    let shift = match what {
        WhatToShow::Bid => -half_spread,
        WhatToShow::Ask => half_spread,
        _ => 0.0,
    };
    if what == WhatToShow::BidAsk {
        // IB's BID_ASK bars: open = average bid, high = max ask, low = min bid, close = average ask.
        open = (open + close) / 2.0 - half_spread;
        close = open + 2.0 * half_spread;
        hi += half_spread;
        lo -= half_spread;
    } else {
        open += shift;
        close += shift;
        hi += shift;
        lo += shift;
    }
    let tick = contract.min_tick;
    let (open, close) = (round_to(open, tick), round_to(close, tick));
    let high = round_to(hi, tick).max(open).max(close);
    let low = round_to(lo, tick).min(open).min(close);
    let wap = round_to((open + high + low + close) / 4.0, tick / 10.0);
    let (volume, count) = if what == WhatToShow::Trades && contract.volume_per_minute > 0.0 {
        let minutes = span as f64 / 60.0;
        let noise = 0.6 + 0.8 * (lattice(seed, 3) + 1.0) / 2.0;
        let v = (contract.volume_per_minute
            * minutes
            * volume_profile(contract, start, end)
            * regime(seed, start).powi(2)
            * noise)
            .round()
            .max(1.0);
        (v, ((v / 180.0).ceil() as i32).max(1))
    } else {
        (-1.0, -1)
    };
    Bar {
        time,
        open,
        high,
        low,
        close,
        volume,
        wap,
        count,
    }
}

/// Months used by futures codes, for display.
pub fn month_code(month: Month) -> char {
    b"FGHJKMNQUVXZ"[usize::from(u8::from(month)) - 1] as char
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn aapl() -> SimContract {
        contracts().remove(0)
    }

    fn t(d: Date, h: i64, m: i64) -> i64 {
        d.midnight().assume_utc().unix_timestamp() + h * HOUR + m * MINUTE
    }

    #[test]
    fn stock_rth_day_has_13_half_hours_starting_at_the_open() {
        let d = date!(2024 - 01 - 03);
        let bars = bars(
            &aapl(),
            BarSize::Seconds(1800),
            WhatToShow::Trades,
            true,
            t(d, 0, 0),
            t(d, 23, 0),
            i64::MAX,
        );
        assert_eq!(bars.len(), 13);
        assert_eq!(bars[0].time, BarTime::Unix(t(d, 14, 30)));
        let hourly = super::bars(
            &aapl(),
            BarSize::Seconds(3600),
            WhatToShow::Trades,
            true,
            t(d, 0, 0),
            t(d, 23, 0),
            i64::MAX,
        );
        // 09:30, 10:00, 11:00 … 15:00
        assert_eq!(hourly.len(), 7);
        assert_eq!(hourly[1].time, BarTime::Unix(t(d, 15, 0)));
        for b in &bars {
            assert!(
                b.low <= b.open && b.open <= b.high && b.low <= b.close && b.close <= b.high,
                "{b:?}"
            );
            assert!(b.volume > 0.0);
        }
    }

    #[test]
    fn a_bar_is_the_same_whatever_window_asks_for_it() {
        let d = date!(2024 - 02 - 06);
        let wide = bars(
            &aapl(),
            BarSize::Seconds(60),
            WhatToShow::Trades,
            true,
            t(d, 0, 0),
            t(d, 23, 0),
            i64::MAX,
        );
        let narrow = bars(
            &aapl(),
            BarSize::Seconds(60),
            WhatToShow::Trades,
            true,
            t(d, 15, 7),
            t(d, 15, 9),
            i64::MAX,
        );
        assert_eq!(narrow.len(), 2);
        let at = wide.iter().position(|b| b.time == narrow[0].time).unwrap();
        assert_eq!(&wide[at..at + 2], narrow.as_slice());
        assert_eq!(wide.len(), 390);
    }

    #[test]
    fn weekends_and_holidays_are_closed_for_stocks_but_forex_trades_sunday_evening() {
        let sat = date!(2024 - 01 - 06);
        assert!(day_sessions(Schedule::UsStock, sat, true).is_empty());
        assert!(day_sessions(Schedule::UsStock, date!(2024 - 07 - 04), true).is_empty());
        let sun = day_sessions(Schedule::Forex, date!(2024 - 01 - 07), true);
        assert_eq!(
            sun,
            vec![(
                t(date!(2024 - 01 - 07), 22, 0),
                t(date!(2024 - 01 - 08), 5, 0)
            )]
        );
        assert!(day_sessions(Schedule::Forex, sat, false).is_empty());
    }

    #[test]
    fn daily_bars_are_stamped_with_dates_and_skip_holidays() {
        let from = t(date!(2024 - 07 - 01), 0, 0);
        let to = t(date!(2024 - 07 - 08), 0, 0);
        let days = bars(
            &aapl(),
            BarSize::Day,
            WhatToShow::Trades,
            true,
            from,
            to,
            i64::MAX,
        );
        let dates: Vec<_> = days.iter().map(|b| b.time).collect();
        assert_eq!(
            dates,
            [1, 2, 3, 5]
                .map(|d| BarTime::Date(Date::from_calendar_date(2024, Month::July, d).unwrap()))
        );
        let weeks = bars(
            &aapl(),
            BarSize::Week,
            WhatToShow::Trades,
            true,
            from,
            t(date!(2024 - 07 - 31), 0, 0),
            i64::MAX,
        );
        assert_eq!(weeks.len(), 5);
    }

    #[test]
    fn quotes_have_no_volume_and_nothing_precedes_the_head_timestamp() {
        let eur = contracts()
            .into_iter()
            .find(|c| c.local_symbol == "EUR.USD")
            .unwrap();
        let d = date!(2024 - 01 - 03);
        let bars = bars(
            &eur,
            BarSize::Seconds(3600),
            WhatToShow::Midpoint,
            false,
            t(d, 0, 0),
            t(d, 24, 0),
            i64::MAX,
        );
        assert_eq!(bars.len(), 24);
        assert!(
            bars.iter()
                .all(|b| b.volume == -1.0 && b.close > 0.5 && b.close < 2.0)
        );
        let early = super::bars(
            &eur,
            BarSize::Seconds(3600),
            WhatToShow::Midpoint,
            false,
            0,
            t(d, 0, 0) - 19 * 365 * DAY,
            i64::MAX,
        );
        assert!(early.is_empty());
    }

    #[test]
    fn finds_contracts_like_ib() {
        let table = contracts();
        let q = |symbol: &str, sec_type: &str| ContractQuery {
            symbol: symbol.into(),
            sec_type: sec_type.into(),
            ..Default::default()
        };
        assert_eq!(find(&table, &q("aapl", "STK"))[0].con_id, 265_598);
        assert_eq!(find(&table, &q("EUR", "CASH"))[0].local_symbol, "EUR.USD");
        assert!(find(&table, &q("NOPE", "STK")).is_empty());
        assert!(find(&table, &q("AAPL", "CASH")).is_empty());
        let by_local = ContractQuery {
            local_symbol: "GBP.USD".into(),
            ..Default::default()
        };
        assert_eq!(find(&table, &by_local)[0].symbol, "GBP");
        assert_eq!(month_code(Month::December), 'Z');
    }
}
