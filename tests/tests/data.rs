//! `ktrdr-data` as a real process: exact round trips, merges, validation, crash safety under
//! kill -9, and snapshot-consistent reads during writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ktrdr_common::error::violated_fields;
use ktrdr_market::Bars;
use ktrdr_proto::bars::BarsProto;
use ktrdr_proto::common::v1::{BarBatch, BarColumns, BarEncoding, TimeRange, bar_batch};
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::data::v1::{
    DeleteDatasetRequest, GetStatusRequest, ListDatasetsRequest, ReadBarsRequest, ValidationMode,
    WriteBarsRequest, WriteBarsResponse,
};
use ktrdr_system_tests::ServiceProcess;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// 2024-01-01 00:00 UTC
const T0: i64 = 1_704_067_200_000;
const MINUTE: i64 = 60_000;

type Client = DataServiceClient<Channel>;

/// `n` one-minute bars from T0 whose prices encode `tag`, so a state can be recognised.
fn tagged(n: usize, tag: u32) -> BarColumns {
    let mut c = BarColumns::default();
    for i in 0..n {
        let open = 100.0 + f64::from(tag) + (i % 97) as f64 * 0.01;
        c.timestamp_ms.push(T0 + i as i64 * MINUTE);
        c.open.push(open);
        c.high.push(open + 1.0);
        c.low.push(open - 1.0);
        c.close.push(open + 0.5);
        c.volume.push(f64::from(tag));
    }
    c
}

fn slice(c: &BarColumns, from: usize, to: usize) -> BarColumns {
    BarColumns {
        timestamp_ms: c.timestamp_ms[from..to].to_vec(),
        open: c.open[from..to].to_vec(),
        high: c.high[from..to].to_vec(),
        low: c.low[from..to].to_vec(),
        close: c.close[from..to].to_vec(),
        volume: c.volume[from..to].to_vec(),
    }
}

async fn write(
    client: &mut Client,
    symbol: &str,
    timeframe: &str,
    bars: &BarColumns,
    mode: ValidationMode,
) -> Result<WriteBarsResponse, tonic::Status> {
    let chunk = 50_000;
    let mut messages = Vec::new();
    let mut from = 0;
    loop {
        let to = (from + chunk).min(bars.timestamp_ms.len());
        messages.push(WriteBarsRequest {
            batch: Some(BarBatch {
                symbol: symbol.into(),
                timeframe: timeframe.into(),
                payload: Some(bar_batch::Payload::Columns(slice(bars, from, to))),
                bar_count: 0,
            }),
            validation_mode: mode as i32,
            source: "test".into(),
        });
        from = to;
        if from >= bars.timestamp_ms.len() {
            break;
        }
    }
    client
        .write_bars(tokio_stream::iter(messages))
        .await
        .map(tonic::Response::into_inner)
}

/// [`write`] of valid bars (rejecting invalid ones), which must succeed.
async fn store(
    client: &mut Client,
    symbol: &str,
    timeframe: &str,
    bars: &BarColumns,
) -> WriteBarsResponse {
    write(client, symbol, timeframe, bars, ValidationMode::Reject)
        .await
        .unwrap()
}

/// Every bar of the dataset, as columns.
async fn read_all(client: &mut Client, symbol: &str, timeframe: &str) -> BarColumns {
    read(client, symbol, timeframe, None, BarEncoding::Columns)
        .await
        .unwrap()
        .0
}

async fn read(
    client: &mut Client,
    symbol: &str,
    timeframe: &str,
    range: Option<TimeRange>,
    encoding: BarEncoding,
) -> Result<(BarColumns, usize), tonic::Status> {
    read_request(
        client,
        ReadBarsRequest {
            symbol: symbol.into(),
            timeframe: timeframe.into(),
            range,
            encoding: encoding as i32,
            ..Default::default()
        },
    )
    .await
}

async fn read_request(
    client: &mut Client,
    request: ReadBarsRequest,
) -> Result<(BarColumns, usize), tonic::Status> {
    let mut stream = client.read_bars(request).await?.into_inner();
    let mut all = Bars::default();
    let mut batches = 0;
    while let Some(item) = stream.message().await? {
        batches += 1;
        all.extend(&Bars::from_batch_payload(item.batch.unwrap().payload).unwrap());
    }
    Ok((all.into_columns(), batches))
}

async fn start(data_dir: &std::path::Path) -> (ServiceProcess, Client) {
    let process = ServiceProcess::start(
        "ktrdr-data",
        &[("KTRDR_DATA_DIR", data_dir.to_str().unwrap())],
    )
    .await;
    let client = DataServiceClient::new(process.channel().await)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    (process, client)
}

#[tokio::test]
async fn round_trip_is_exact_in_both_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let (_process, mut client) = start(dir.path()).await;
    let bars = tagged(120_000, 7);
    let written = store(&mut client, "aapl", "1m", &bars).await;
    assert_eq!(
        (
            written.symbol.as_str(),
            written.bars_written,
            written.bars_replaced
        ),
        ("AAPL", 120_000, 0)
    );
    assert_eq!(written.coverage.unwrap().bar_count, 120_000);

    let (columns, batches) = read(&mut client, "AAPL", "1m", None, BarEncoding::Columns)
        .await
        .unwrap();
    assert_eq!(columns, bars);
    assert!(batches >= 3, "streamed in several batches, got {batches}");
    let (arrow, _) = read(&mut client, "AAPL", "1m", None, BarEncoding::ArrowIpc)
        .await
        .unwrap();
    assert_eq!(arrow, bars);

    let range = TimeRange {
        start_ms: T0 + 10 * MINUTE,
        end_ms: T0 + 20 * MINUTE,
    };
    let (ranged, _) = read(&mut client, "AAPL", "1m", Some(range), BarEncoding::Columns)
        .await
        .unwrap();
    assert_eq!(ranged, slice(&bars, 10, 20));
}

#[tokio::test]
async fn overlapping_writes_merge_with_the_newest_winning() {
    let dir = tempfile::tempdir().unwrap();
    let (_process, mut client) = start(dir.path()).await;
    let old = tagged(1_000, 1);
    store(&mut client, "EURUSD", "1m", &old).await;
    let new = slice(&tagged(1_500, 2), 500, 1_500);
    let written = store(&mut client, "EUR.USD", "1m", &new).await;
    assert_eq!((written.bars_written, written.bars_replaced), (1_000, 500));
    assert_eq!(written.coverage.unwrap().bar_count, 1_500);
    let all = read_all(&mut client, "EURUSD", "1m").await;
    assert_eq!(slice(&all, 0, 500), slice(&old, 0, 500));
    assert_eq!(slice(&all, 500, 1_500), new);
}

#[tokio::test]
async fn bad_rows_are_rejected_naming_rows_and_rules_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (_process, mut client) = start(dir.path()).await;
    let good = tagged(100, 1);
    store(&mut client, "AAPL", "1m", &good).await;

    let mut bad = tagged(100, 2);
    bad.high[3] = bad.open[3] - 5.0;
    bad.low[8] = -1.0;
    bad.timestamp_ms[9] += 1_000;
    let status = write(&mut client, "AAPL", "1m", &bad, ValidationMode::Reject)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("3 invalid bar(s)"),
        "{}",
        status.message()
    );
    let violations = status
        .get_error_details()
        .bad_request()
        .cloned()
        .unwrap()
        .field_violations;
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        ["bars[3].high", "bars[8].low", "bars[9].timestamp_ms"]
    );
    assert!(
        violations[0]
            .description
            .contains("rule: high ≥ max(open, close)")
    );
    assert!(violations[1].description.contains("rule: prices > 0"));
    assert!(
        violations[2]
            .description
            .contains("aligned to the timeframe")
    );

    let stored = read_all(&mut client, "AAPL", "1m").await;
    assert_eq!(stored, good, "a rejected write changes nothing");

    let repaired = write(&mut client, "AAPL", "1m", &bad, ValidationMode::Repair)
        .await
        .unwrap();
    assert_eq!((repaired.bars_repaired, repaired.bars_dropped), (1, 2));
    assert_eq!(repaired.bars_written, 98);
    assert!(repaired.issues.iter().all(|i| i.repaired));
}

#[tokio::test]
async fn reads_validate_arguments_and_report_missing_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let (_process, mut client) = start(dir.path()).await;
    let status = read(&mut client, "NOPE", "1h", None, BarEncoding::Columns)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "DATASET_NOT_FOUND"
    );

    let status = read(&mut client, "AAPL", "2h", None, BarEncoding::Columns)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status)[0], "timeframe");

    let reversed = TimeRange {
        start_ms: 10,
        end_ms: 5,
    };
    let status = read(
        &mut client,
        "AAPL",
        "1h",
        Some(reversed),
        BarEncoding::Columns,
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&status)[0], "range.end_ms");

    let status = read(&mut client, "../etc", "1h", None, BarEncoding::Columns)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn limits_tails_empty_ranges_listing_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let (_process, mut client) = start(dir.path()).await;
    let bars = tagged(1_000, 3);
    store(&mut client, "MSFT", "1m", &bars).await;

    let head = ReadBarsRequest {
        symbol: "MSFT".into(),
        timeframe: "1m".into(),
        limit: Some(10),
        ..Default::default()
    };
    assert_eq!(
        read_request(&mut client, head).await.unwrap().0,
        slice(&bars, 0, 10)
    );
    let tail = ReadBarsRequest {
        symbol: "MSFT".into(),
        timeframe: "1m".into(),
        limit: Some(10),
        from_end: true,
        ..Default::default()
    };
    assert_eq!(
        read_request(&mut client, tail).await.unwrap().0,
        slice(&bars, 990, 1_000)
    );

    let far = TimeRange {
        start_ms: T0 + 10_000 * MINUTE,
        end_ms: T0 + 20_000 * MINUTE,
    };
    let (empty, batches) = read(&mut client, "MSFT", "1m", Some(far), BarEncoding::Columns)
        .await
        .unwrap();
    assert!(empty.timestamp_ms.is_empty());
    assert_eq!(batches, 1, "an empty range yields one empty batch");

    let listed = client
        .list_datasets(ListDatasetsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_size, 1);
    assert_eq!(listed.datasets[0].bar_count, 1_000);
    let status = client
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.dataset_count, status.total_bars), (1, 1_000));

    let deleted = client
        .delete_dataset(DeleteDatasetRequest {
            symbol: "msft".into(),
            timeframe: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (deleted.bars_deleted, deleted.timeframes.as_slice()),
        (1_000, ["1m".to_owned()].as_slice())
    );
    let again = client
        .delete_dataset(DeleteDatasetRequest {
            symbol: "MSFT".into(),
            timeframe: "1m".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
}

/// Which tagged state the stored bars are in: `Some((tag, len))` if every bar carries one tag
/// and the bars are exactly `tagged(len, tag)`.
fn state_of(bars: &BarColumns) -> Option<(u32, usize)> {
    let tag = *bars.volume.first()? as u32;
    (*bars == tagged(bars.timestamp_ms.len(), tag)).then_some((tag, bars.timestamp_ms.len()))
}

/// Each write replaces the whole previous range and extends it, tagged with its iteration.
fn bars_of_write(tag: u32) -> BarColumns {
    tagged(200_000 + tag as usize * 1_000, tag)
}

#[tokio::test]
async fn kill_9_during_writes_never_corrupts_a_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut process, mut client) = start(dir.path()).await;
    store(&mut client, "SPY", "1m", &bars_of_write(0)).await;
    // Time one whole overwrite, to spread the kills over the life of the next ones.
    let started = std::time::Instant::now();
    store(&mut client, "SPY", "1m", &bars_of_write(0)).await;
    let write_time = started.elapsed();
    let mut state = (0u32, bars_of_write(0).timestamp_ms.len());
    let (mut kept_old, mut got_new) = (0, 0);

    const KILLS: u32 = 20;
    const KILLS_AFTER_COMMIT: u32 = 4;
    for tag in 1..=KILLS {
        let bars = bars_of_write(tag);
        let mut writer_client = client.clone();
        let writing = tokio::spawn(async move {
            write(
                &mut writer_client,
                "SPY",
                "1m",
                &bars,
                ValidationMode::Reject,
            )
            .await
        });
        if tag > KILLS - KILLS_AFTER_COMMIT {
            // The last few kills come right after the write answered: its state must survive.
            writing.await.unwrap().unwrap();
        } else {
            // Kills at 0 %, 8 %, … 117 % of a write's duration: before, during and at the commit.
            let fraction = 1.25 * f64::from(tag - 1) / f64::from(KILLS - KILLS_AFTER_COMMIT);
            tokio::time::sleep(write_time.mul_f64(fraction)).await;
        }
        process.signal("KILL");
        process.wait().await;

        (process, client) = start(dir.path()).await;
        let (stored, _) = read(&mut client, "SPY", "1m", None, BarEncoding::ArrowIpc)
            .await
            .unwrap();
        let found = state_of(&stored).unwrap_or_else(|| {
            panic!(
                "kill {tag}: the dataset is in no valid state ({} bars)",
                stored.timestamp_ms.len()
            )
        });
        let new = (tag, bars_of_write(tag).timestamp_ms.len());
        assert!(
            found == state || found == new,
            "kill {tag}: found {found:?}, expected {state:?} or {new:?}"
        );
        if found == new {
            got_new += 1;
        } else {
            kept_old += 1;
        }
        state = found;
    }
    eprintln!(
        "kill -9 outcomes: {kept_old} kept the previous state, {got_new} committed the new one"
    );
    assert!(
        got_new >= KILLS_AFTER_COMMIT as usize,
        "acknowledged writes survive kill -9"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("SPY/1m"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files cleaned on restart: {leftovers:?}"
    );
}

#[tokio::test]
async fn concurrent_readers_always_see_a_whole_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (_process, mut client) = start(dir.path()).await;
    write(
        &mut client,
        "QQQ",
        "1m",
        &tagged(60_000, 0),
        ValidationMode::Reject,
    )
    .await
    .unwrap();

    let mut writer = client.clone();
    let writes = tokio::spawn(async move {
        for tag in 1..=8u32 {
            write(
                &mut writer,
                "QQQ",
                "1m",
                &tagged(60_000 + tag as usize * 5_000, tag),
                ValidationMode::Reject,
            )
            .await
            .unwrap();
        }
    });
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let mut reader = client.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..12 {
                    let (bars, _) = read(&mut reader, "QQQ", "1m", None, BarEncoding::Columns)
                        .await
                        .unwrap();
                    let state = state_of(&bars).expect("a read mixed two states");
                    seen.push(state.0);
                }
                seen
            })
        })
        .collect();
    writes.await.unwrap();
    for reader in readers {
        let seen = reader.await.unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "states never go backwards: {seen:?}"
        );
    }
}

fn bars_at(timestamps: &[i64]) -> BarColumns {
    let mut c = BarColumns::default();
    for (i, &t) in timestamps.iter().enumerate() {
        let open = 100.0 + i as f64;
        c.timestamp_ms.push(t);
        c.open.push(open);
        c.high.push(open + 2.0);
        c.low.push(open - 2.0);
        c.close.push(open + 1.0);
        c.volume.push(10.0);
    }
    c
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// Tuesday 2024-01-02 00:00 UTC (New York is UTC-5 in January).
const TUE: i64 = 1_704_153_600_000;

async fn coverage(
    client: &mut Client,
    symbol: &str,
    timeframe: &str,
) -> ktrdr_proto::data::v1::GetCoverageResponse {
    client
        .get_coverage(ktrdr_proto::data::v1::GetCoverageRequest {
            symbol: symbol.into(),
            timeframe: timeframe.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn gap_kinds(
    c: &ktrdr_proto::data::v1::GetCoverageResponse,
) -> Vec<ktrdr_proto::data::v1::GapKind> {
    c.gaps.iter().map(|g| g.kind()).collect()
}

#[tokio::test]
async fn coverage_classifies_gaps_on_stock_forex_and_holiday_calendars() {
    use ktrdr_proto::data::v1::GapKind::{Holiday, MarketClosure, Unexpected, Weekend};
    let dir = tempfile::tempdir().unwrap();
    let (_process, mut client) = start(dir.path()).await;

    // AAPL hourly bars 14:00–20:00 UTC (09:00–15:00 New York) on Tue 2 … Mon 8 January 2024,
    // with Thursday 17:00 missing.
    let mut stock: Vec<i64> = [0, 1, 2, 3, 6]
        .iter()
        .flat_map(|day| (14..=20).map(move |h| TUE + day * DAY + h * HOUR))
        .collect();
    let missing = TUE + 2 * DAY + 17 * HOUR;
    stock.retain(|&t| t != missing);
    write(
        &mut client,
        "AAPL",
        "1h",
        &bars_at(&stock),
        ValidationMode::Reject,
    )
    .await
    .unwrap();
    let c = coverage(&mut client, "AAPL", "1h").await;
    assert_eq!(c.calendar, "us_equity_regular_hours");
    assert_eq!(c.bar_count, stock.len() as i64);
    assert_eq!(
        gap_kinds(&c),
        [
            MarketClosure,
            MarketClosure,
            Unexpected,
            MarketClosure,
            Weekend
        ]
    );
    let hole = &c.gaps[2];
    assert_eq!(
        hole.range.unwrap(),
        TimeRange {
            start_ms: missing,
            end_ms: missing + HOUR
        }
    );
    assert_eq!(
        c.covered.len(),
        2,
        "coverage splits only at the unexpected gap"
    );

    // EURUSD trades 24/5: a week of hours with a weekend, and a hole on Wednesday.
    let forex: Vec<i64> = (0..7 * 24)
        .map(|h| TUE + h * HOUR)
        .filter(|&t| {
            let hours_from_tue = (t - TUE) / HOUR;
            // Friday 22:00 UTC (17:00 NY) to Sunday 22:00 UTC is the weekend.
            !(3 * 24 + 22..5 * 24 + 22).contains(&hours_from_tue)
                && !(30..33).contains(&hours_from_tue)
        })
        .collect();
    write(
        &mut client,
        "EURUSD",
        "1h",
        &bars_at(&forex),
        ValidationMode::Reject,
    )
    .await
    .unwrap();
    let c = coverage(&mut client, "EURUSD", "1h").await;
    assert_eq!(c.calendar, "forex_24x5");
    assert_eq!(gap_kinds(&c), [Unexpected, Weekend]);
    assert_eq!(c.gaps[0].missing_bars, 3);

    // Daily bars around Good Friday (2024-03-29) and the weekend after it.
    let thu = 1_711_584_000_000; // 2024-03-28
    let daily = [thu, thu + 4 * DAY, thu + 5 * DAY];
    write(
        &mut client,
        "MSFT",
        "1d",
        &bars_at(&daily),
        ValidationMode::Reject,
    )
    .await
    .unwrap();
    let c = coverage(&mut client, "MSFT", "1d").await;
    assert_eq!(gap_kinds(&c), [Holiday]);
    assert_eq!(c.gaps[0].missing_bars, 3);
    assert_eq!(c.gaps[0].expected_missing_bars, 0);
}

async fn import(
    client: &mut Client,
    options: ktrdr_proto::data::v1::ImportCsvOptions,
    file: &str,
) -> Result<ktrdr_proto::data::v1::ImportCsvResponse, tonic::Status> {
    use ktrdr_proto::data::v1::{ImportCsvRequest, import_csv_request::Part};
    let mut messages = vec![ImportCsvRequest {
        part: Some(Part::Options(options)),
    }];
    // Split the upload at awkward places to prove rows may span chunks.
    for chunk in file.as_bytes().chunks(7) {
        messages.push(ImportCsvRequest {
            part: Some(Part::Chunk(chunk.to_vec())),
        });
    }
    client
        .import_csv(tokio_stream::iter(messages))
        .await
        .map(tonic::Response::into_inner)
}

fn named(file_name: &str) -> ktrdr_proto::data::v1::ImportCsvOptions {
    ktrdr_proto::data::v1::ImportCsvOptions {
        file_name: file_name.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn imports_the_original_csv_files_with_their_header_variants() {
    let dir = tempfile::tempdir().unwrap();
    let (_process, mut client) = start(dir.path()).await;
    // The three index headers the original's files show, and its two timestamp styles.
    let files = [
        (
            "AAPL_1h.csv",
            "timestamp,open,high,low,close,volume\n2025-05-22 08:00:00+00:00,195.1,196.0,194.9,195.5,120000.0\n2025-05-22 09:00:00+00:00,195.5,196.2,195.0,196.1,98000.0\n",
        ),
        (
            "MSFT_1d.csv",
            "date,open,high,low,close,volume\n2025-05-22T00:00:00Z,450.0,455.0,449.0,454.0,2.1e7\n2025-05-23T00:00:00Z,454.0,456.0,451.0,452.0,1.9e7\n",
        ),
        (
            "EURUSD_1h.csv",
            ",open,high,low,close,volume\n2025-01-02 00:00:00+00:00,1.0351,1.0360,1.0340,1.0355,0.0\n2025-01-02 01:00:00+00:00,1.0355,1.0361,1.0350,1.0352,0.0\n",
        ),
    ];
    for (name, text) in files {
        let response = import(&mut client, named(name), text).await.unwrap();
        let (symbol, tf) = name.trim_end_matches(".csv").split_once('_').unwrap();
        assert_eq!(
            (response.symbol.as_str(), response.timeframe.as_str()),
            (symbol, tf)
        );
        assert_eq!(
            (
                response.rows_read,
                response.bars_written,
                response.rows_skipped
            ),
            (2, 2, 0),
            "{name}"
        );
        let (stored, _) = read(&mut client, symbol, tf, None, BarEncoding::Columns)
            .await
            .unwrap();
        assert_eq!(stored.timestamp_ms.len(), 2);
    }
    let aapl = read_all(&mut client, "AAPL", "1h").await;
    assert_eq!(aapl.timestamp_ms, [1_747_900_800_000, 1_747_904_400_000]);
    assert_eq!(aapl.close, [195.5, 196.1]);

    // Export writes the original's format, and importing it back changes nothing.
    let mut export = client
        .export_csv(ktrdr_proto::data::v1::ExportCsvRequest {
            symbol: "AAPL".into(),
            timeframe: "1h".into(),
            range: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut text = Vec::new();
    while let Some(chunk) = export.message().await.unwrap() {
        text.extend(chunk.chunk);
    }
    let text = String::from_utf8(text).unwrap();
    assert_eq!(
        text,
        "timestamp,open,high,low,close,volume\n2025-05-22T08:00:00Z,195.1,196.0,194.9,195.5,120000.0\n2025-05-22T09:00:00Z,195.5,196.2,195.0,196.1,98000.0\n"
    );
    let again = import(&mut client, named("AAPL_1h.csv"), &text)
        .await
        .unwrap();
    assert_eq!(again.bars_replaced, 2);
    assert_eq!(
        read(&mut client, "AAPL", "1h", None, BarEncoding::Columns)
            .await
            .unwrap()
            .0,
        aapl
    );

    // A file already on the server, named relative to the data directory.
    std::fs::write(dir.path().join("SPY_1d.csv"), files[1].1).unwrap();
    let options = ktrdr_proto::data::v1::ImportCsvOptions {
        server_path: "SPY_1d.csv".into(),
        ..Default::default()
    };
    let response = import(&mut client, options, "").await.unwrap();
    assert_eq!(
        (response.symbol.as_str(), response.bars_written),
        ("SPY", 2)
    );
}

#[tokio::test]
async fn bad_csv_rows_are_rejected_by_line_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (_process, mut client) = start(dir.path()).await;
    let file = "timestamp,open,high,low,close,volume\n\
                2024-01-02T14:00:00Z,100,101,99,100.5,10\n\
                2024-01-02T15:00:00Z,100,99,98,100.5,10\n\
                yesterday,1,2,0.5,1.5,10\n\
                2024-01-02T17:00:00Z,100,101,99,100.5,-4\n";
    let status = import(&mut client, named("AAPL_1h.csv"), file)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields = violated_fields(&status);
    assert_eq!(fields, ["lines[4]", "lines[3].high", "lines[5].volume"]);
    assert!(
        read(&mut client, "AAPL", "1h", None, BarEncoding::Columns)
            .await
            .is_err(),
        "nothing stored"
    );

    let mut repair = named("AAPL_1h.csv");
    repair.validation_mode = ValidationMode::Repair as i32;
    let response = import(&mut client, repair, file).await.unwrap();
    assert_eq!(
        (
            response.rows_read,
            response.bars_written,
            response.rows_skipped
        ),
        (4, 3, 1)
    );
}

#[tokio::test]
async fn resample_aggregates_and_can_store_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let (_process, mut client) = start(dir.path()).await;
    let minutes = tagged(240, 5); // four hours of 1-minute bars
    store(&mut client, "QQQ", "1m", &minutes).await;
    let request = ktrdr_proto::data::v1::ResampleRequest {
        symbol: "QQQ".into(),
        source_timeframe: "1m".into(),
        target_timeframe: "1h".into(),
        store: true,
        ..Default::default()
    };
    let mut stream = client.resample(request).await.unwrap().into_inner();
    let mut hours = Bars::default();
    let mut stored = None;
    while let Some(item) = stream.message().await.unwrap() {
        hours.extend(&Bars::from_batch_payload(item.batch.unwrap().payload).unwrap());
        stored = stored.or(item.stored);
    }
    assert_eq!(
        hours.timestamp_ms,
        [T0, T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR]
    );
    for h in 0..4 {
        let bucket = slice(&minutes, h * 60, h * 60 + 60);
        assert_eq!(hours.open[h], bucket.open[0]);
        assert_eq!(
            hours.high[h],
            bucket.high.iter().cloned().fold(f64::MIN, f64::max)
        );
        assert_eq!(
            hours.low[h],
            bucket.low.iter().cloned().fold(f64::MAX, f64::min)
        );
        assert_eq!(hours.close[h], bucket.close[59]);
        assert_eq!(hours.volume[h], bucket.volume.iter().sum::<f64>());
    }
    assert_eq!(stored.unwrap().bar_count, 4);
    assert_eq!(
        read_all(&mut client, "QQQ", "1h").await,
        hours.into_columns()
    );

    let finer = ktrdr_proto::data::v1::ResampleRequest {
        symbol: "QQQ".into(),
        source_timeframe: "1h".into(),
        target_timeframe: "5m".into(),
        ..Default::default()
    };
    let status = client.resample(finer).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}
