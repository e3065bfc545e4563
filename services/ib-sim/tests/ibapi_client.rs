//! The unmodified `ibapi` client against ib-sim over a real loopback socket: handshake,
//! contract details, head timestamps, historical bars, IB's errors and rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use ibapi::Client;
use ibapi::contracts::Contract;
use ibapi::market_data::TradingHours;
use ibapi::market_data::historical::{BarSize, BarTimestamp, ToDuration, WhatToShow};
use ktrdr_common::Env;
use ktrdr_ib_sim::config::IbSimConfig;
use ktrdr_ib_sim::state::Sim;
use time::macros::datetime;

/// Generous bound on every client call, so a broken simulator fails the test instead of
/// hanging it.
const CALL: Duration = Duration::from_secs(20);

async fn sim(extra: &[(&str, &str)]) -> (Arc<Sim>, String) {
    let mut pairs = vec![("IB_SIM_ADDR", "127.0.0.1:0")];
    pairs.extend_from_slice(extra);
    let config = IbSimConfig::from_env(&Env::from_pairs(pairs)).unwrap();
    let (sim, addr) = ktrdr_ib_sim::start_tws(&config).await.unwrap();
    (sim, addr.to_string())
}

async fn connect(addr: &str, client_id: i32) -> Client {
    tokio::time::timeout(CALL, Client::connect(addr, client_id))
        .await
        .expect("connect in time")
        .expect("connect")
}

fn notice_code(err: &ibapi::Error) -> Option<i32> {
    match err {
        ibapi::Error::Notice(n) => Some(n.code),
        _ => None,
    }
}

#[tokio::test]
async fn ibapi_connects_and_resolves_contracts() {
    let (sim, addr) = sim(&[]).await;
    let client = connect(&addr, 7).await;
    assert_eq!(client.server_version(), 213);
    assert!(client.connection_time().is_some());

    let aapl = tokio::time::timeout(
        CALL,
        client.contract_details(&Contract::stock("AAPL").build()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(aapl.len(), 1);
    assert_eq!(aapl[0].contract.contract_id, 265_598);
    assert_eq!(aapl[0].time_zone_id, "US/Eastern");
    assert!(!aapl[0].trading_hours.is_empty());

    let eur = tokio::time::timeout(
        CALL,
        client.contract_details(&Contract::forex("EUR", "USD").build()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(eur[0].contract.local_symbol, "EUR.USD");
    assert_eq!(eur[0].contract.exchange.to_string(), "IDEALPRO");

    let nope = tokio::time::timeout(
        CALL,
        client.contract_details(&Contract::stock("NOPE").build()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(notice_code(&nope), Some(200), "{nope:?}");

    let head = tokio::time::timeout(
        CALL,
        client.head_timestamp(
            &Contract::stock("AAPL").build(),
            WhatToShow::Trades,
            TradingHours::Regular,
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(head, datetime!(1980-12-12 14:30 UTC));

    let status = sim.lock();
    assert_eq!(status.clients.len(), 1);
    assert_eq!(status.counters.by_kind.get("contract_details"), Some(&3));
    assert_eq!(status.counters.by_kind.get("head_timestamp"), Some(&1));
    assert_eq!(status.counters.errors_by_code.get(&200), Some(&1));
}

#[tokio::test]
async fn historical_bars_are_deterministic_and_window_independent() {
    let (_sim, addr) = sim(&[("IB_SIM_PACING", "false")]).await;
    let client = connect(&addr, 1).await;
    let aapl = Contract::stock("AAPL").build();
    let day = tokio::time::timeout(
        CALL,
        client
            .historical_data(&aapl, BarSize::Min)
            .duration(1.days())
            .ending(datetime!(2024-02-07 0:00 UTC))
            .what_to_show(WhatToShow::Trades)
            .trading_hours(TradingHours::Regular)
            .fetch(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(day.bars.len(), 390, "one regular session of 1-minute bars");
    assert_eq!(
        day.bars[0].date,
        BarTimestamp::DateTime(datetime!(2024-02-06 14:30 UTC))
    );
    assert!(day.bars.iter().all(|b| b.volume > 0.0 && b.low <= b.high));

    let hour = tokio::time::timeout(
        CALL,
        client
            .historical_data(&aapl, BarSize::Min)
            .duration(3600.seconds())
            .ending(datetime!(2024-02-06 16:00 UTC))
            .fetch(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(hour.bars.len(), 60);
    let at = day
        .bars
        .iter()
        .position(|b| b.date == hour.bars[0].date)
        .unwrap();
    assert_eq!(
        &day.bars[at..at + 60],
        hour.bars.as_slice(),
        "the same bars whatever the window"
    );

    let daily = tokio::time::timeout(
        CALL,
        client
            .historical_data(&aapl, BarSize::Day)
            .duration(1.years())
            .ending(datetime!(2024-01-01 0:00 UTC))
            .fetch(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(daily.bars.len(), 250, "NYSE trading days in 2023");
    assert!(daily.bars[0].date.is_date());

    let eur = tokio::time::timeout(
        CALL,
        client
            .historical_data(&Contract::forex("EUR", "USD").build(), BarSize::Hour)
            .duration(1.weeks())
            .ending(datetime!(2024-02-10 0:00 UTC))
            .what_to_show(WhatToShow::MidPoint)
            .trading_hours(TradingHours::Extended)
            .fetch(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(eur.bars.len(), 120, "Sunday 17:00 to Friday 17:00 New York");
}

#[tokio::test]
async fn ib_rules_give_ibs_errors() {
    let (sim, addr) = sim(&[]).await;
    let client = connect(&addr, 1).await;
    let aapl = Contract::stock("AAPL").build();
    let fetch = |duration: ibapi::market_data::historical::Duration, bar: BarSize| {
        client
            .historical_data(&aapl, bar)
            .duration(duration)
            .ending(datetime!(2024-02-07 0:00 UTC))
            .fetch()
    };
    let illegal = tokio::time::timeout(CALL, fetch(4.weeks(), BarSize::Min))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(notice_code(&illegal), Some(162), "{illegal}");
    assert!(
        illegal.to_string().contains("Time length exceed max"),
        "{illegal}"
    );

    tokio::time::timeout(CALL, fetch(1.days(), BarSize::Min5))
        .await
        .unwrap()
        .unwrap();
    let again = tokio::time::timeout(CALL, fetch(1.days(), BarSize::Min5))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(notice_code(&again), Some(162));
    assert!(again.to_string().contains("pacing violation"), "{again}");

    let weekend = tokio::time::timeout(
        CALL,
        client
            .historical_data(&aapl, BarSize::Hour)
            .duration(1.days())
            .ending(datetime!(2024-02-11 0:00 UTC))
            .fetch(),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        weekend.to_string().contains("HMDS query returned no data"),
        "{weekend}"
    );

    let counters = sim.lock().counters.clone();
    assert_eq!(counters.pacing_violations_sent, 1);
    assert_eq!(counters.by_kind.get("historical_data"), Some(&4));

    let second = tokio::time::timeout(CALL, Client::connect(&addr, 1))
        .await
        .unwrap();
    assert!(
        matches!(second, Err(ibapi::Error::ClientIdInUse { client_id: 1 })),
        "{:?}",
        second.err()
    );
    // Another id is fine: several clients at once.
    let other = connect(&addr, 2).await;
    assert!(other.is_connected());
    assert_eq!(sim.lock().clients.len(), 2);
}

#[tokio::test]
async fn injected_faults_reach_the_client() {
    let (sim, addr) = sim(&[]).await;
    let client = connect(&addr, 3).await;
    let aapl = Contract::stock("AAPL").build();
    sim.add_fault(ktrdr_ib_sim::state::Fault {
        id: String::new(),
        kind: "fail_next_requests",
        description: String::new(),
        action: ktrdr_ib_sim::state::FaultAction::Fail {
            code: 504,
            message: "Not connected".into(),
        },
        remaining: 1,
        request_kind: None,
        symbol: String::new(),
        created_at_ms: 0,
        fraction: None,
        seen: 0,
    });
    let failed = tokio::time::timeout(
        CALL,
        client.head_timestamp(&aapl, WhatToShow::Trades, TradingHours::Regular),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(notice_code(&failed), Some(504), "{failed:?}");

    // A dropped socket: the client reconnects by itself and the sim accepts the new handshake.
    assert_eq!(sim.drop_clients(&[], Duration::ZERO), 1);
    let head = tokio::time::timeout(
        CALL,
        client.head_timestamp(&aapl, WhatToShow::Trades, TradingHours::Regular),
    )
    .await
    .unwrap();
    assert!(head.is_ok(), "{head:?}");
    assert!(sim.lock().counters.connections_accepted >= 2);
}

#[tokio::test]
async fn bars_can_be_replayed_from_csv_files() {
    let dir = std::env::temp_dir().join(format!("ktrdr-ib-sim-replay-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("MSFT_1h.csv"),
        "timestamp,open,high,low,close,volume\n\
         2024-01-02T14:30:00Z,370,372,369,371,1000\n\
         2024-01-02T15:00:00Z,371,373,370,372.5,900\n",
    )
    .unwrap();
    let dir_text = dir.to_string_lossy().into_owned();
    let (_sim, addr) = sim(&[("IB_SIM_REPLAY_DIR", dir_text.as_str())]).await;
    let client = connect(&addr, 1).await;
    let msft = Contract::stock("MSFT").build();
    let data = tokio::time::timeout(
        CALL,
        client
            .historical_data(&msft, BarSize::Hour)
            .duration(1.days())
            .ending(datetime!(2024-01-03 0:00 UTC))
            .fetch(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(data.bars.len(), 2);
    assert_eq!(data.bars[1].close, 372.5);
    assert_eq!(data.bars[0].volume, 1000.0);
    let head = tokio::time::timeout(
        CALL,
        client.head_timestamp(&msft, WhatToShow::Trades, TradingHours::Regular),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(head, datetime!(2024-01-02 14:30 UTC));
    std::fs::remove_dir_all(&dir).unwrap();
}
