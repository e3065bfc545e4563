//! Raw TWS API clients of several versions against ib-sim over a loopback socket: the
//! handshake agrees on each client's version, and every answer comes in that version's
//! encoding (classic text below 201, binary ids from 201, protobuf per message family).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ktrdr_common::Env;
use ktrdr_ib_sim::config::IbSimConfig;
use ktrdr_ib_sim::proto as ib;
use ktrdr_ib_sim::wire::{self, incoming, outgoing};
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const CALL: Duration = Duration::from_secs(20);

async fn sim() -> String {
    let config = IbSimConfig::from_env(&Env::from_pairs([("IB_SIM_ADDR", "127.0.0.1:0")])).unwrap();
    let (_sim, addr) = ktrdr_ib_sim::start_tws(&config).await.unwrap();
    addr.to_string()
}

/// A client offering `min..=max`; returns the socket and the version the sim agreed on.
async fn greet(addr: &str, min: i32, max: i32) -> (TcpStream, Option<i32>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let range = format!("v{min}..{max}");
    let mut hello = b"API\0".to_vec();
    hello.extend_from_slice(&(range.len() as u32).to_be_bytes());
    hello.extend_from_slice(range.as_bytes());
    stream.write_all(&hello).await.unwrap();
    let reply = tokio::time::timeout(CALL, wire::read_frame(&mut stream))
        .await
        .unwrap()
        .unwrap();
    let version = reply.map(|body| wire::text_fields(&body)[0].parse().unwrap());
    (stream, version)
}

fn fields(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Reads frames until one with `id` arrives (skipping farm notices and the like).
async fn next(stream: &mut TcpStream, version: i32, id: u32) -> wire::Frame {
    loop {
        let body = tokio::time::timeout(CALL, wire::read_frame(stream))
            .await
            .unwrap()
            .unwrap()
            .expect("connection open");
        let frame = wire::decode_frame(body, version).unwrap();
        if frame.id == id {
            return frame;
        }
    }
}

/// conId … tradingClass, includeExpired, as IBKR's clients write a contract.
fn contract(symbol: &str, sec_type: &str, exchange: &str, currency: &str) -> Vec<String> {
    fields(&[
        "0", symbol, sec_type, "", "0", "", "", exchange, "", currency, "", "", "0",
    ])
}

/// A historical request (client version 124 or later) for AAPL's regular-hours trades up to
/// 2024-02-07 00:00 UTC.
fn aapl_bars(req_id: &str, bar_size: &str, duration: &str) -> Vec<String> {
    let mut request = fields(&[req_id]);
    request.extend(contract("AAPL", "STK", "SMART", "USD"));
    request.extend(fields(&[
        "20240207 00:00:00 UTC",
        bar_size,
        duration,
        "1",
        "TRADES",
        "2",
        "0",
        "",
    ]));
    request
}

async fn send(stream: &mut TcpStream, version: i32, id: u32, fields: &[String]) {
    stream
        .write_all(&wire::text_frame(version, id, fields))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_classic_client_gets_text_answers_with_inline_historical_dates() {
    let addr = sim().await;
    let (mut s, version) = greet(&addr, 100, 176).await;
    assert_eq!(version, Some(176));
    send(&mut s, 176, incoming::START_API, &fields(&["2", "5", ""])).await;
    let next_id = next(&mut s, 176, outgoing::NEXT_VALID_ID).await;
    assert_eq!(wire::text_fields(&next_id.payload), ["1", "1"]);
    let accounts = next(&mut s, 176, outgoing::MANAGED_ACCOUNTS).await;
    assert_eq!(wire::text_fields(&accounts.payload), ["1", "DU1234567"]);

    let mut request = fields(&["8", "3"]);
    request.extend(contract("EUR", "CASH", "IDEALPRO", "USD"));
    request.extend(fields(&["", ""]));
    send(&mut s, 176, incoming::REQ_CONTRACT_DATA, &request).await;
    let data = wire::text_fields(&next(&mut s, 176, outgoing::CONTRACT_DATA).await.payload);
    assert_eq!(&data[..3], ["3", "EUR", "CASH"]);
    assert_eq!(data[8], "EUR.USD");
    let end = next(&mut s, 176, outgoing::CONTRACT_DATA_END).await;
    assert_eq!(wire::text_fields(&end.payload), ["1", "3"]);

    let request = aapl_bars("4", "1 hour", "1 D");
    send(&mut s, 176, incoming::REQ_HISTORICAL_DATA, &request).await;
    let bars = wire::text_fields(&next(&mut s, 176, outgoing::HISTORICAL_DATA).await.payload);
    // reqId, start, end, count, then 8 fields per bar: 09:30, 10:00 … 15:00 New York.
    assert_eq!(bars[0], "4");
    assert_eq!(bars[3], "7");
    assert_eq!(bars.len(), 4 + 7 * 8);
    assert_eq!(bars[4], "1707229800", "2024-02-06 14:30 UTC");
}

#[tokio::test]
async fn from_201_ids_are_binary_and_contract_data_is_protobuf_from_205() {
    let addr = sim().await;
    let (mut s, version) = greet(&addr, 100, 205).await;
    assert_eq!(version, Some(205));
    send(&mut s, 205, incoming::START_API, &fields(&["2", "6", ""])).await;
    let next_id = next(&mut s, 205, outgoing::NEXT_VALID_ID).await;
    assert!(!next_id.protobuf, "next valid id is protobuf only from 213");

    let mut request = fields(&["8", "1"]);
    request.extend(contract("AAPL", "STK", "SMART", "USD"));
    request.extend(fields(&["", ""]));
    send(&mut s, 205, incoming::REQ_CONTRACT_DATA, &request).await;
    let data = next(&mut s, 205, outgoing::CONTRACT_DATA).await;
    assert!(data.protobuf);
    let data = ib::ContractData::decode(data.payload.as_slice()).unwrap();
    assert_eq!(data.contract.unwrap().con_id, Some(265_598));

    let request = aapl_bars("2", "1 day", "1 W");
    send(&mut s, 205, incoming::REQ_HISTORICAL_DATA, &request).await;
    let bars = next(&mut s, 205, outgoing::HISTORICAL_DATA).await;
    assert!(!bars.protobuf, "historical data is protobuf only from 208");
    let bars = wire::text_fields(&bars.payload);
    assert_eq!(
        &bars[..2],
        ["2", "5"],
        "reqId and five trading days, no inline dates"
    );
    let end = next(&mut s, 205, outgoing::HISTORICAL_DATA_END).await;
    assert_eq!(wire::text_fields(&end.payload)[0], "2");
}

#[tokio::test]
async fn a_client_below_the_minimum_version_is_refused() {
    let addr = sim().await;
    let (_s, version) = greet(&addr, 60, 99).await;
    assert_eq!(version, None, "the sim closes without a handshake reply");
    let (_s, version) = greet(&addr, 100, 178).await;
    assert_eq!(version, Some(178), "the listener still serves others");
}
