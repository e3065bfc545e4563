//! Fetches historical bars through the unmodified `ibapi` 5.5 client and prints them, so the
//! tests of other TWS API clients (`tests/python_clients.py`) compare what they receive with
//! what `ibapi` receives from the same simulator for the same request.
//!
//! Usage: `ibapi_bars <host:port> <client id> <stock SYMBOL | forex BASE QUOTE>
//! <end, unix seconds> <duration, e.g. "1 D"> <bar size, e.g. "5 mins"> <what to show> <rth: 0|1>`
//!
//! Prints one line per bar: `date open high low close volume wap count`, where date is unix
//! seconds (intraday) or yyyymmdd (daily and longer) and every number reads back exactly.
//! Exits 1 with the reason on stderr when the request fails.

use std::str::FromStr;

use ibapi::Client;
use ibapi::contracts::Contract;
use ibapi::market_data::TradingHours;
use ibapi::market_data::historical::{BarSize, Duration, WhatToShow};
use time::OffsetDateTime;

/// Every bar size `ibapi` knows, to find the one IB spells as requested.
const BAR_SIZES: &[&str] = &[
    "SEC", "SEC5", "SEC10", "SEC15", "SEC30", "MIN", "MIN2", "MIN3", "MIN4", "MIN5", "MIN10",
    "MIN15", "MIN20", "MIN30", "HOUR", "HOUR2", "HOUR3", "HOUR4", "HOUR8", "DAY", "WEEK", "MONTH",
];

fn bar_size(ib_text: &str) -> Result<BarSize, String> {
    BAR_SIZES
        .iter()
        .filter_map(|name| BarSize::from_str(name).ok())
        .find(|b| b.to_string() == ib_text)
        .ok_or_else(|| format!("unknown bar size {ib_text:?} (IB spells them \"1 min\", \"5 mins\", \"1 hour\", \"1 day\")"))
}

async fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: ibapi_bars <host:port> <client id> <stock SYMBOL | forex BASE QUOTE> <end unix secs> <duration> <bar size> <what to show> <rth 0|1>";
    let (contract, rest) = match args.get(2).map(String::as_str) {
        Some("stock") if args.len() == 9 => (Contract::stock(args[3].as_str()).build(), &args[4..]),
        Some("forex") if args.len() == 10 => (
            Contract::forex(args[3].as_str(), args[4].as_str()).build(),
            &args[5..],
        ),
        _ => return Err(usage.to_owned()),
    };
    let client_id: i32 = args[1].parse().map_err(|_| usage.to_owned())?;
    let end = rest[0]
        .parse::<i64>()
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .ok_or_else(|| format!("end {:?} is not unix seconds", rest[0]))?;
    let duration = Duration::from_str(&rest[1]).map_err(|e| format!("duration: {e}"))?;
    let bar = bar_size(&rest[2])?;
    let what = WhatToShow::from_str(&rest[3]).map_err(|e| format!("what to show: {e}"))?;
    let hours = if rest[4] == "1" {
        TradingHours::Regular
    } else {
        TradingHours::Extended
    };
    let client = Client::connect(&args[0], client_id)
        .await
        .map_err(|e| format!("connect to {}: {e}", args[0]))?;
    let data = client
        .historical_data(&contract, bar)
        .duration(duration)
        .ending(end)
        .what_to_show(what)
        .trading_hours(hours)
        .fetch()
        .await
        .map_err(|e| format!("historical data: {e}"))?;
    for b in &data.bars {
        println!(
            "{} {} {} {} {} {} {} {}",
            b.date, b.open, b.high, b.low, b.close, b.volume, b.wap, b.count
        );
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args).await {
        eprintln!("ibapi_bars: {e}");
        std::process::exit(1);
    }
}
