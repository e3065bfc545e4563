//! ib-host against ib-sim, both as real processes over loopback: the IB path goes through the
//! unmodified `ibapi` client. Pacing windows are scaled down (IB_PACING_SCALE /
//! IB_SIM_PACING_SCALE) so IB's rules run in seconds instead of minutes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ktrdr_common::error::violated_fields;
use ktrdr_market::Bars;
use ktrdr_proto::bars::BarsProto;
use ktrdr_proto::common::v1::{InstrumentType, TimeRange, bar_batch};
use ktrdr_proto::ib::v1::{
    self as ib, fetch_bars_response::Event, ib_host_service_client::IbHostServiceClient,
    inject_fault_request::Fault,
};
use ktrdr_system_tests::ServiceProcess;
use ktrdr_system_tests::fixtures::utc_ms;
use ktrdr_system_tests::stack::IbPair;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

/// Bound on any single wait in these tests; generous for a loaded machine.
const WAIT: Duration = ktrdr_system_tests::PROCESS_WAIT;

/// Everything one FetchBars call streamed.
#[derive(Default, Debug)]
struct Fetched {
    plan: Option<ib::FetchPlan>,
    bars: Bars,
    batches: usize,
    warnings: Vec<String>,
}

fn fetch_request(
    symbol: &str,
    timeframe: &str,
    start_ms: i64,
    end_ms: i64,
    use_rth: bool,
) -> ib::FetchBarsRequest {
    ib::FetchBarsRequest {
        symbol: symbol.into(),
        timeframe: timeframe.into(),
        range: Some(TimeRange { start_ms, end_ms }),
        use_rth,
        ..Default::default()
    }
}

/// A calendar date (year, month, day).
type Date = (i32, u8, u8);

/// [`fetch`] of regular-hours bars from midnight UTC of `from` to midnight UTC of `to`.
async fn fetch_rth(
    api: &mut IbHostServiceClient<Channel>,
    symbol: &str,
    timeframe: &str,
    from: Date,
    to: Date,
) -> Result<Fetched, tonic::Status> {
    let (start_ms, end_ms) = (utc_ms(from.0, from.1, from.2), utc_ms(to.0, to.1, to.2));
    fetch(
        api,
        fetch_request(symbol, timeframe, start_ms, end_ms, true),
    )
    .await
}

async fn fetch(
    api: &mut IbHostServiceClient<Channel>,
    req: ib::FetchBarsRequest,
) -> Result<Fetched, tonic::Status> {
    let mut stream = tokio::time::timeout(WAIT, api.fetch_bars(req))
        .await
        .expect("FetchBars answers in time")?
        .into_inner();
    let mut out = Fetched::default();
    while let Some(item) = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("FetchBars streams in time")?
    {
        match item.event {
            Some(Event::Plan(p)) => out.plan = Some(p),
            Some(Event::Bars(b)) => {
                out.batches += 1;
                let Some(bar_batch::Payload::Columns(c)) = b.payload else {
                    panic!("columns expected")
                };
                assert_eq!(b.bar_count as usize, c.timestamp_ms.len());
                out.bars.extend(&Bars::from_columns(c).unwrap());
            }
            Some(Event::Warning(w)) => out.warnings.push(w.code),
            Some(Event::Progress(_)) | None => {}
        }
    }
    Ok(out)
}

/// Starts `request` with IB's next `slow_answers` historical answers held back 30 s (-1: all)
/// and returns once its first request has reached the sim.
async fn fetch_in_flight(
    s: &mut IbPair,
    slow_answers: i32,
    request: ib::FetchBarsRequest,
) -> tokio::task::JoinHandle<Result<Fetched, tonic::Status>> {
    s.inject(delay_historical(30_000, slow_answers)).await;
    let mut api = s.api.clone();
    let call = tokio::spawn(async move { fetch(&mut api, request).await });
    s.wait_for_a_historical_request().await;
    call
}

/// IB's answer to the next historical requests is held back `delay_ms` (`count` -1: all of them).
fn delay_historical(delay_ms: i64, count: i32) -> Fault {
    Fault::DelayReplies(ib::DelayRepliesFault {
        delay_ms,
        count,
        request_kind: ib::SimRequestKind::HistoricalData as i32,
        symbol: String::new(),
    })
}

/// IB answers the next `count` historical requests (-1: all), or a `fraction` of them, with a
/// pacing violation (162).
fn pacing_errors(count: i32, fraction: f64) -> Fault {
    Fault::FailNextRequests(ib::FailNextRequestsFault {
        error_code: 162,
        count,
        fraction,
        request_kind: ib::SimRequestKind::HistoricalData as i32,
        ..Default::default()
    })
}

fn assert_strictly_ascending(ts: &[i64]) {
    for w in ts.windows(2) {
        assert!(
            w[0] < w[1],
            "duplicate or out of order at {} / {}",
            w[0],
            w[1]
        );
    }
}

/// Fast pacing for tests: IB's windows × 0.002 (10 min → 1.2 s, 2 s → 4 ms), on both sides.
const SIM_FAST: &[(&str, &str)] = &[("IB_SIM_PACING_SCALE", "0.002")];
/// The margin must exceed the longest stall between ib-host's send and ib-sim's receipt (a
/// starved sim reads a backlog at once, which compresses the gaps between requests); 400 ms
/// covers a loaded 2-core machine.
const HOST_FAST: &[(&str, &str)] = &[("IB_PACING_SCALE", "0.002"), ("IB_PACING_MARGIN_MS", "400")];

#[tokio::test]
async fn two_years_of_hours_and_thirty_days_of_minutes_arrive_exactly_with_the_fewest_requests() {
    let mut s = IbPair::start(SIM_FAST, HOST_FAST).await;

    // 2023 and 2024: 250 + 252 NYSE trading days, 7 regular-hours bars each (09:30, 10:00 … 15:00).
    let before = s.historical_requests().await;
    let hours = fetch_rth(&mut s.api, "AAPL", "1h", (2023, 1, 1), (2025, 1, 1))
        .await
        .unwrap();
    let plan = hours.plan.as_ref().unwrap();
    assert_eq!(plan.requests.len(), 24, "one '1 M' request per month");
    assert!(
        plan.requests
            .iter()
            .all(|r| r.duration == "1 M" && r.bar_size == "1 hour")
    );
    assert_eq!(
        s.historical_requests().await - before,
        24,
        "the sim saw exactly the planned requests"
    );
    assert_eq!(hours.bars.timestamp_ms.len(), 502 * 7);
    assert_eq!(hours.batches, 24);
    assert_strictly_ascending(&hours.bars.timestamp_ms);

    // Any window gives the same bars: a 10-day slice fetched on its own equals the slice of the
    // 2-year fetch.
    let (a, b) = (utc_ms(2024, 3, 5), utc_ms(2024, 3, 15));
    let slice = fetch(&mut s.api, fetch_request("AAPL", "1h", a, b, true))
        .await
        .unwrap();
    let from = hours
        .bars
        .timestamp_ms
        .iter()
        .position(|t| *t >= a)
        .unwrap();
    let n = slice.bars.timestamp_ms.len();
    assert_eq!(n, 8 * 7);
    assert_eq!(
        &hours.bars.timestamp_ms[from..from + n],
        slice.bars.timestamp_ms.as_slice()
    );
    assert_eq!(
        &hours.bars.close[from..from + n],
        slice.bars.close.as_slice()
    );
    assert_eq!(
        &hours.bars.volume[from..from + n],
        slice.bars.volume.as_slice()
    );

    // 30 days of EURUSD minutes: 30 '1 D' windows, of which the five Saturdays (UTC) lie inside
    // the forex weekend and are not sent; trading minutes are contiguous, and the only gaps are
    // the weekends (Friday 17:00 to Sunday 17:00 New York, 47–49 h across DST).
    let before = s.historical_requests().await;
    let minutes = fetch(
        &mut s.api,
        fetch_request(
            "eur/usd",
            "1m",
            utc_ms(2024, 3, 1),
            utc_ms(2024, 3, 31),
            false,
        ),
    )
    .await
    .unwrap();
    let plan = minutes.plan.as_ref().unwrap();
    assert_eq!(plan.requests.len(), 25);
    assert_eq!(
        plan.what_to_show,
        ib::WhatToShow::Midpoint as i32,
        "forex defaults to MIDPOINT"
    );
    assert_eq!(s.historical_requests().await - before, 25);
    let ts = &minutes.bars.timestamp_ms;
    assert_strictly_ascending(ts);
    assert_eq!(ts[0], utc_ms(2024, 3, 1));
    let mut weekends = 0;
    for w in ts.windows(2) {
        let gap_min = (w[1] - w[0]) / 60_000;
        if gap_min != 1 {
            assert!(
                (47 * 60..=49 * 60).contains(&gap_min),
                "gap of {gap_min} min at {}",
                w[0]
            );
            weekends += 1;
        }
    }
    assert_eq!(weekends, 4);
    assert!(
        minutes.bars.volume.iter().all(|v| *v == -1.0),
        "quotes carry no volume"
    );
    assert!(minutes.warnings.is_empty(), "{:?}", minutes.warnings);
    assert_eq!(s.sim_status().await.pacing_violations_sent, 0);
}

#[tokio::test]
async fn a_burst_of_200_fetches_never_trips_ibs_pacing() {
    let mut s = IbPair::start(SIM_FAST, HOST_FAST).await;
    let mut tasks = vec![];
    for i in 0..200i64 {
        let mut api = s.api.clone();
        // 200 different one-day windows (weekdays: weekend windows are never sent) over four
        // contracts (holidays answer "no data", which is not pacing).
        let symbol = ["MSFT", "AAPL", "SPY", "EURUSD"][(i % 4) as usize];
        let weekday = i / 4;
        // 2023-01-02 is a Monday.
        let start = utc_ms(2023, 1, 2) + ((weekday / 5) * 7 + weekday % 5) * 86_400_000;
        tasks.push(tokio::spawn(async move {
            fetch(
                &mut api,
                fetch_request(symbol, "1h", start, start + 86_400_000, true),
            )
            .await
        }));
    }
    for t in tasks {
        let fetched = tokio::time::timeout(WAIT, t).await.unwrap().unwrap();
        assert!(fetched.is_ok(), "{fetched:?}");
    }
    let sim = s.sim_status().await;
    assert_eq!(sim.pacing_violations_sent, 0, "{:?}", sim.errors_by_code);
    assert_eq!(sim.requests_by_kind["historical_data"], 200);
    let status = s.host_status().await;
    let pacing = status.pacing.unwrap();
    assert_eq!(pacing.pacing_violations, 0);
    assert_eq!(pacing.requests_total, 200);
    assert!(
        pacing.total_pacing_wait_ms > 0,
        "the gate had to hold requests back"
    );
}

#[tokio::test]
async fn a_dropped_socket_fails_the_call_fast_then_health_recovers_and_the_retry_succeeds() {
    let mut s = IbPair::start(&[("IB_SIM_PACING", "false")], &[("IB_PACING", "false")]).await;
    // A slow fetch in flight; then drop every client and refuse reconnects for a while.
    let request = fetch_request("SPY", "1h", utc_ms(2024, 1, 1), utc_ms(2024, 6, 1), true);
    let call = fetch_in_flight(&mut s, -1, request).await;
    s.inject(Fault::DropConnections(ib::DropConnectionsFault {
        client_ids: vec![],
        refuse_reconnect_ms: 1_500,
        after_requests: 0,
    }))
    .await;
    let dropped_at = tokio::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .unwrap()
        .unwrap();
    let failed_after = dropped_at.elapsed();
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        failed_after < Duration::from_secs(1),
        "failed after {failed_after:?}"
    );
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "IB_DISCONNECTED");
    assert!(details.retry_info().is_some());

    s.wait_health(ServingStatus::NotServing).await;
    let unavailable = s.head_timestamp("SPY").await.unwrap_err();
    assert_eq!(unavailable.code(), Code::Unavailable);

    s.reset_sim().await;
    s.wait_health(ServingStatus::Serving).await;
    let retried = fetch_rth(&mut s.api, "SPY", "1h", (2024, 1, 1), (2024, 6, 1))
        .await
        .unwrap();
    assert!(retried.bars.timestamp_ms.len() > 700);
    let status = s.host_status().await;
    assert_eq!(
        status.connection_state,
        ib::ConnectionState::Connected as i32
    );
    assert!(status.reconnect_count >= 1);
}

#[tokio::test]
async fn unknown_symbols_bad_arguments_and_injected_pacing_errors_map_to_grpc_codes() {
    // The sim's own pacing is off: every 162 here is an injected one.
    let mut s = IbPair::start(
        &[("IB_SIM_PACING", "false")],
        &[
            ("IB_PACING_SCALE", "0.001"),
            ("IB_PACING_MARGIN_MS", "20"),
            ("IB_PACING_RETRIES", "2"),
        ],
    )
    .await;

    let unknown = fetch_rth(&mut s.api, "NOPE", "1h", (2024, 1, 1), (2024, 2, 1))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    assert_eq!(
        unknown.get_error_details().error_info().unwrap().reason,
        "UNKNOWN_SYMBOL"
    );
    let lookup = s.lookup("NOPE").await.unwrap_err();
    assert_eq!(lookup.code(), Code::NotFound);

    let bad = fetch_rth(&mut s.api, "", "2h", (2024, 2, 1), (2024, 1, 1))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let fields = violated_fields(&bad);
    assert_eq!(fields, ["symbol", "timeframe", "range.end_ms"]);

    // One injected 162: the host backs off, retries, and the call succeeds.
    s.inject(pacing_errors(1, 0.0)).await;
    let ok = fetch_rth(&mut s.api, "AAPL", "1d", (2024, 1, 1), (2024, 2, 1))
        .await
        .unwrap();
    assert_eq!(ok.bars.timestamp_ms.len(), 21);
    let status = s.host_status().await;
    assert_eq!(status.pacing.unwrap().pacing_violations, 1);

    // 162 on every request: RESOURCE_EXHAUSTED with RetryInfo once the retries are spent.
    s.inject(pacing_errors(-1, 0.0)).await;
    let before = s.historical_requests().await;
    let exhausted = fetch_rth(&mut s.api, "AAPL", "1d", (2023, 1, 1), (2023, 2, 1))
        .await
        .unwrap_err();
    assert_eq!(exhausted.code(), Code::ResourceExhausted, "{exhausted:?}");
    assert!(exhausted.get_error_details().retry_info().is_some());
    assert_eq!(
        s.historical_requests().await - before,
        3,
        "first try and 2 retries"
    );

    // A third of all requests answered with 162: every one is retried and the fetch completes.
    s.reset_sim().await;
    s.inject(pacing_errors(0, 0.34)).await;
    let flaky = fetch_rth(&mut s.api, "AAPL", "1h", (2022, 1, 1), (2023, 1, 1))
        .await
        .unwrap();
    assert_eq!(
        flaky.bars.timestamp_ms.len(),
        251 * 7,
        "NYSE trading days in 2022"
    );
    assert!(s.sim_status().await.errors_by_code[&162] >= 4);
}

#[tokio::test]
async fn lookup_normalises_symbols_and_status_reports_the_connection() {
    let mut s = IbPair::start(&[], &[]).await;
    for raw in ["EURUSD", "eur.usd", "EUR/USD"] {
        let found = s.lookup(raw).await.unwrap();
        assert_eq!(found.normalized_symbol, "EURUSD");
        let eur = &found.instruments[0];
        assert_eq!(eur.instrument_type, InstrumentType::Forex as i32);
        assert_eq!(
            (
                eur.exchange.as_str(),
                eur.currency.as_str(),
                eur.local_symbol.as_str()
            ),
            ("IDEALPRO", "USD", "EUR.USD")
        );
    }
    let aapl = s.lookup(" aapl ").await.unwrap();
    let a = &aapl.instruments[0];
    assert_eq!(
        (a.instrument_type, a.con_id),
        (InstrumentType::Stock as i32, 265_598)
    );
    assert_eq!(a.time_zone_id, "US/Eastern");
    assert!(a.liquid_hours.contains("0930"), "{}", a.liquid_hours);
    let es = s.lookup("ES").await.unwrap();
    assert_eq!(
        es.instruments[0].instrument_type,
        InstrumentType::Future as i32
    );

    let head = s.head_timestamp("AAPL").await.unwrap();
    assert_eq!(head.what_to_show, ib::WhatToShow::Trades as i32);
    assert!(!head.cached);
    let again = s.head_timestamp("AAPL").await.unwrap();
    assert!(again.cached);
    assert_eq!(again.head_timestamp_ms, head.head_timestamp_ms);

    let status = s.host_status().await;
    assert_eq!(
        status.connection_state,
        ib::ConnectionState::Connected as i32
    );
    assert_eq!(status.server_version, 213);
    assert_eq!(status.client_id, 1);
    let farms: Vec<&str> = status.farms.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(farms, ["secdefil", "usfarm", "ushmds"]);
    assert!(status.farms.iter().all(|f| f.ok));
    let sim = s.sim_status().await;
    assert_eq!(sim.clients.len(), 1);
}

#[tokio::test]
async fn a_client_id_in_use_makes_the_host_take_the_next_one() {
    let mut s = IbPair::start(&[], &[]).await;
    let port = {
        let tws = s.sim_status().await.tws_listen_addr;
        tws.rsplit(':').next().unwrap().to_owned()
    };
    // A second host with the same client id: IB answers 326, the host moves on to id 2.
    let second = ServiceProcess::start(
        "ktrdr-ib-host",
        &[("IB_HOST", "127.0.0.1"), ("IB_PORT", port.as_str())],
    )
    .await;
    let mut api = IbHostServiceClient::new(second.channel().await);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = api
            .get_status(ib::GetStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        if status.connection_state == ib::ConnectionState::Connected as i32 {
            assert_eq!(status.client_id, 2);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", second.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sim = s.sim_status().await;
    let mut ids: Vec<i32> = sim.clients.iter().map(|c| c.client_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    assert!(sim.errors_by_code.get(&326).copied().unwrap_or(0) >= 1);
}

#[tokio::test]
async fn ib_connectivity_loss_1100_fails_calls_fast_and_1102_restores_service() {
    let mut s = IbPair::start(&[("IB_SIM_PACING", "false")], &[("IB_PACING", "false")]).await;
    // One slow answer, so the 1100 notice arrives while the request is in flight.
    let request = fetch_request("AAPL", "1d", utc_ms(2023, 1, 1), utc_ms(2024, 1, 1), true);
    let call = fetch_in_flight(&mut s, 1, request).await;
    s.inject(Fault::ConnectivityLost(ib::ConnectivityLostFault {
        client_ids: vec![],
        restore_after_ms: 0,
    }))
    .await;
    let lost_at = tokio::time::Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        lost_at.elapsed() < Duration::from_secs(1),
        "failed after {:?}",
        lost_at.elapsed()
    );
    s.wait_health(ServingStatus::NotServing).await;
    let status = s.host_status().await;
    assert_eq!(
        status.connection_state,
        ib::ConnectionState::Reconnecting as i32
    );
    assert!(
        status.last_error.starts_with("1100"),
        "{}",
        status.last_error
    );
    let during = fetch_rth(&mut s.api, "AAPL", "1d", (2023, 1, 1), (2024, 1, 1))
        .await
        .unwrap_err();
    assert_eq!(during.code(), Code::Unavailable);

    s.inject(Fault::ConnectivityRestored(ib::ConnectivityRestoredFault {
        client_ids: vec![],
        data_lost: false,
    }))
    .await;
    s.wait_health(ServingStatus::Serving).await;
    let after = fetch_rth(&mut s.api, "AAPL", "1d", (2023, 1, 1), (2024, 1, 1))
        .await
        .unwrap();
    assert_eq!(after.bars.timestamp_ms.len(), 250);
}

#[tokio::test]
async fn a_cancelled_call_cancels_its_ib_request_and_slow_answers_time_out() {
    let mut s = IbPair::start(
        &[("IB_SIM_PACING", "false")],
        &[("IB_PACING", "false"), ("IB_REQUEST_TIMEOUT_MS", "1500")],
    )
    .await;
    s.inject(delay_historical(60_000, -1)).await;
    // Resolve the contract first so the next call goes straight to the historical request.
    s.head_timestamp("MSFT").await.unwrap();
    let mut stream = s
        .api
        .fetch_bars(fetch_request(
            "MSFT",
            "1h",
            utc_ms(2024, 1, 1),
            utc_ms(2024, 2, 1),
            true,
        ))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.event, Some(Event::Plan(_))));
    s.wait_for_a_historical_request().await;
    drop(stream);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sim = s.sim_status().await;
        if sim
            .requests_by_kind
            .get("cancel_historical_data")
            .copied()
            .unwrap_or(0)
            == 1
        {
            assert_eq!(sim.open_historical_requests, 0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no cancel reached the sim: {sim:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let slow = fetch_rth(&mut s.api, "MSFT", "1h", (2024, 3, 1), (2024, 4, 1))
        .await
        .unwrap_err();
    assert_eq!(slow.code(), Code::DeadlineExceeded, "{slow:?}");
}

#[tokio::test]
async fn bars_can_come_as_arrow_ipc_with_the_same_values_as_columns() {
    let mut s = IbPair::start(&[("IB_SIM_PACING", "false")], &[("IB_PACING", "false")]).await;
    let columns = fetch_rth(&mut s.api, "SPY", "1d", (2024, 1, 1), (2024, 7, 1))
        .await
        .unwrap();
    let mut req = fetch_request("SPY", "1d", utc_ms(2024, 1, 1), utc_ms(2024, 7, 1), true);
    req.encoding = ktrdr_proto::common::v1::BarEncoding::ArrowIpc as i32;
    let mut stream = s.api.fetch_bars(req).await.unwrap().into_inner();
    let mut arrow = ktrdr_market::Bars::default();
    while let Some(item) = tokio::time::timeout(WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
    {
        if let Some(Event::Bars(b)) = item.event {
            let Some(bar_batch::Payload::ArrowIpc(bytes)) = b.payload else {
                panic!("Arrow IPC expected")
            };
            let part = ktrdr_market::Bars::from_ipc(&bytes).unwrap();
            assert_eq!(part.timestamp_ms.len() as i64, b.bar_count);
            arrow.timestamp_ms.extend(part.timestamp_ms);
            arrow.close.extend(part.close);
            arrow.volume.extend(part.volume);
        }
    }
    assert_eq!(arrow.timestamp_ms, columns.bars.timestamp_ms);
    assert_eq!(arrow.close, columns.bars.close);
    assert_eq!(arrow.volume, columns.bars.volume);
    assert_eq!(
        arrow.timestamp_ms.len(),
        124,
        "NYSE trading days in H1 2024"
    );
}

#[tokio::test]
async fn an_identical_fetch_within_15_seconds_is_answered_without_asking_ib_again() {
    // IB's real windows: a repeat must not wait 15 s, nor reach IB.
    let mut s = IbPair::start(&[], &[]).await;
    let req = || fetch_request("MSFT", "1h", utc_ms(2024, 5, 1), utc_ms(2024, 5, 8), true);
    let first = fetch(&mut s.api, req()).await.unwrap();
    let before = s.historical_requests().await;
    let again = tokio::time::timeout(Duration::from_secs(5), fetch(&mut s.api, req()))
        .await
        .expect("no 15 s pacing wait for a repeat")
        .unwrap();
    assert_eq!(again.bars.timestamp_ms, first.bars.timestamp_ms);
    assert_eq!(s.historical_requests().await, before);
    assert_eq!(s.sim_status().await.pacing_violations_sent, 0);
}

/// Collects the health statuses ib-host reports for its API until one is `want`.
fn watch_health_until(
    s: &IbPair,
    want: ServingStatus,
) -> tokio::task::JoinHandle<Vec<ServingStatus>> {
    let mut health = s.health.clone();
    tokio::spawn(async move {
        let mut stream = health
            .watch(tonic_health::pb::HealthCheckRequest {
                service: "ktrdr.ib.v1.IbHostService".into(),
            })
            .await
            .expect("health watch")
            .into_inner();
        let mut seen = vec![];
        while let Ok(Some(item)) = stream.message().await {
            seen.push(item.status());
            if item.status() == want {
                break;
            }
        }
        seen
    })
}

#[tokio::test]
async fn an_ib_that_stops_answering_times_requests_out_by_their_size_then_counts_as_broken_and_is_replaced()
 {
    // 1 s per request plus 20 ms per bar it can return: a month of days waits about 1.6 s, a
    // month of hours about 16 s. Two unanswered requests in a row break the link.
    let mut s = IbPair::start(
        &[("IB_SIM_PACING", "false")],
        &[
            ("IB_PACING", "false"),
            ("IB_REQUEST_TIMEOUT_MS", "1000"),
            ("IB_REQUEST_TIMEOUT_PER_1000_BARS_MS", "20000"),
            ("IB_TIMEOUTS_BEFORE_RECONNECT", "2"),
        ],
    )
    .await;
    // Resolve the contract while IB still answers: the stall below holds historical answers.
    s.api
        .get_head_timestamp(ib::GetHeadTimestampRequest {
            symbol: "MSFT".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let health = watch_health_until(&s, ServingStatus::NotServing);
    s.inject(Fault::DelayReplies(ib::DelayRepliesFault {
        delay_ms: 600_000,
        count: -1,
        request_kind: ib::SimRequestKind::HistoricalData as i32,
        symbol: String::new(),
    }))
    .await;
    let days = |month| {
        fetch_request(
            "MSFT",
            "1d",
            utc_ms(2024, month, 1),
            utc_ms(2024, month + 1, 1),
            true,
        )
    };

    let first = fetch(&mut s.api, days(1)).await.unwrap_err();
    assert_eq!(first.code(), Code::DeadlineExceeded, "{first:?}");
    assert!(first.message().contains("did not answer"), "{first:?}");

    // A longer request in flight when the link breaks fails at once, not at its own timeout.
    let mut api = s.api.clone();
    let hours = tokio::spawn(async move {
        fetch(
            &mut api,
            fetch_request("MSFT", "1h", utc_ms(2024, 3, 1), utc_ms(2024, 4, 1), true),
        )
        .await
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    while s.historical_requests().await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hourly request never reached the sim"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = fetch(&mut s.api, days(2)).await.unwrap_err();
    assert_eq!(second.code(), Code::DeadlineExceeded, "{second:?}");
    let in_flight = hours.await.unwrap().unwrap_err();
    assert_eq!(in_flight.code(), Code::Unavailable, "{in_flight:?}");
    assert!(
        in_flight.message().contains("no answer"),
        "the message names the cause: {in_flight:?}"
    );

    let seen = tokio::time::timeout(WAIT, health).await.unwrap().unwrap();
    assert_eq!(seen.last(), Some(&ServingStatus::NotServing), "{seen:?}");
    s.wait_health(ServingStatus::Serving).await;
    let status = s
        .api
        .get_status(ib::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.reconnect_count >= 1, "{status:?}");

    s.sim_api
        .reset_sim(ib::ResetSimRequest {
            drop_connections: false,
        })
        .await
        .unwrap();
    let after = fetch(&mut s.api, days(5)).await.unwrap();
    assert!(!after.bars.timestamp_ms.is_empty());
}

#[tokio::test]
async fn a_1100_whose_all_clear_never_comes_is_ended_by_a_probe_ib_answers() {
    let mut s = IbPair::start(
        &[("IB_SIM_PACING", "false")],
        &[("IB_PACING", "false"), ("IB_CONNECTIVITY_PROBE_MS", "300")],
    )
    .await;
    s.inject(Fault::ConnectivityLost(ib::ConnectivityLostFault {
        client_ids: vec![],
        restore_after_ms: 0,
    }))
    .await;
    s.wait_health(ServingStatus::NotServing).await;
    // IB's connectivity returns, but the 1102 goes to another client id only.
    let restored = s
        .sim_api
        .inject_fault(ib::InjectFaultRequest {
            fault: Some(Fault::ConnectivityRestored(ib::ConnectivityRestoredFault {
                client_ids: vec![999],
                data_lost: false,
            })),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        restored.clients_affected, 0,
        "ib-host must not get the 1102"
    );
    s.wait_health(ServingStatus::Serving).await;
    let status = s
        .api
        .get_status(ib::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.connection_state,
        ib::ConnectionState::Connected as i32
    );
    let after = fetch(
        &mut s.api,
        fetch_request("AAPL", "1d", utc_ms(2023, 1, 1), utc_ms(2024, 1, 1), true),
    )
    .await
    .unwrap();
    assert_eq!(after.bars.timestamp_ms.len(), 250);
}
