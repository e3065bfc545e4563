//! The `ktrdr` CLI as a real process against a real gateway, data service and training host:
//! each command's text and `--json` output, exit codes (usage, unreachable gateway, server
//! error), CSV import seen by show/range/gaps/list, strategy validation, completions, a closed
//! pipe ending the CLI quietly, server errors naming CLI flags, Ctrl+C cancelling a load
//! job, a training session or a backtest job on the server, and backtests (one model, a
//! walk-forward) with their files and HTML report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ktrdr_proto::common::v1::{BarColumns, JobState};
use ktrdr_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use ktrdr_proto::gateway::v1::{GetBacktestJobRequest, GetLoadRequest};
use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
use ktrdr_proto::training::v1::{
    StartTrainingRequest, TrainingState, start_training_request::Strategy,
};
use ktrdr_system_tests::fixtures::{TINY_STRATEGY, trending_hourly_bars, utc_ms};
use ktrdr_system_tests::stack::{InProcess, Stack, start_data, start_data_in, start_training_host};
use ktrdr_system_tests::training::{get, start};
use ktrdr_system_tests::{
    CliRun, RunningCli, ServiceProcess, ktrdr, ktrdr_into_head, ktrdr_line, store_bars,
    store_training_bars,
};

/// Nothing listens on port 9 (discard) on loopback.
const NOBODY: &str = "http://127.0.0.1:9";

/// 2024-01-01 (a Monday) 00:00 UTC.
const T0: i64 = 1_704_067_200_000;
const HOUR: i64 = 3_600_000;

fn iso(ms: i64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Only January 2024 is used here.
    format!(
        "2024-01-{:02}T{:02}:{:02}:00Z",
        days - 19_723 + 1,
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Hourly EURUSD bars Monday 2024-01-01 to Thursday 2024-01-04 in the original ktrdr CSV format,
/// without Wednesday 10:00–14:00 (an UNEXPECTED gap of 5 bars): 91 bars.
fn write_original_csv(dir: &Path) -> std::path::PathBuf {
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    for i in 0..96 {
        let t = T0 + i * HOUR;
        if (58..63).contains(&i) {
            continue;
        }
        let open = 1.1 + i as f64 * 0.001;
        let close = open + 0.0005;
        text.push_str(&format!(
            "{},{open},{},{},{close},{}\n",
            iso(t),
            close + 0.001,
            open - 0.001,
            1000 + i
        ));
    }
    let path = dir.join("EURUSD_1h.csv");
    std::fs::write(&path, text).unwrap();
    path
}

async fn data_and_gateway(data_dir: &Path) -> (ServiceProcess, ServiceProcess) {
    let data = start_data_in(data_dir, &[]).await;
    let gateway = ServiceProcess::start(
        "ktrdr-gateway",
        &[
            ("DATA_SERVICE_URL", data.url().as_str()),
            ("TRAINING_HOST_SERVICE_URL", NOBODY),
            ("IB_HOST_SERVICE_URL", NOBODY),
        ],
    )
    .await;
    (data, gateway)
}

// ---- no server needed ----------------------------------------------------------------------

#[tokio::test]
async fn usage_errors_exit_with_2_before_calling_anyone() {
    for args in [
        &["data", "show", "AAPL", "-t", "3h"][..],
        &["data", "show", "AAPL"],
        &["data", "show", "AAPL", "-t", "1h", "--start", "yesterday"],
        &[
            "data",
            "show",
            "AAPL",
            "-t",
            "1h",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-01",
        ],
        &["data", "load", "AAPL", "-t", "1h", "-m", "sideways"],
        &["train", "no/such/strategy.yaml"],
        &["train", "tiny", "--sweep", "dropout=0.1,0.2"],
        &["train", "tiny", "--sweep", "learning_rate="],
        &[
            "train", "tiny", "--sweep", "epochs=1", "--sweep", "epochs=2",
        ],
        &["train", "tiny", "--parallel", "2"],
        &["frobnicate"],
    ] {
        // The URL leads nowhere: a usage error must be found first.
        let run = ktrdr(NOBODY, args).await;
        assert_eq!(run.code, Some(2), "{args:?}\n{run}");
        assert!(!run.stderr.is_empty(), "{args:?} says why\n{run}");
    }
    let run = ktrdr(NOBODY, &["data", "show", "AAPL", "-t", "3h"]).await;
    assert!(
        run.stderr.contains("1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w"),
        "{run}"
    );
    let run = ktrdr(NOBODY, &["train", "tiny", "--sweep", "dropout=0.1"]).await;
    assert!(run.stderr.contains("--sweep"), "{run}");
    assert!(
        run.stderr.contains("learning_rate, batch_size, epochs"),
        "{run}"
    );
}

#[tokio::test]
async fn usage_lines_show_url_as_optional_when_ktrdr_gateway_url_is_set() {
    // The harness sets KTRDR_GATEWAY_URL for every run.
    let run = ktrdr(NOBODY, &["data", "show", "AAPL"]).await;
    assert_eq!(run.code, Some(2), "{run}");
    let usage = run
        .stderr
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .unwrap_or_else(|| panic!("no usage line\n{run}"));
    assert!(!usage.contains("--url"), "{run}");
    let help = ktrdr(NOBODY, &["data", "show", "--help"]).await;
    assert_eq!(help.code, Some(0), "{help}");
    assert!(help.stdout.contains("--url <URL>"), "{help}");
    assert!(
        help.stdout.contains("[default: http://127.0.0.1:9]"),
        "the variable's value is the default\n{help}"
    );
}

#[tokio::test]
async fn an_import_whose_file_name_lacks_the_timeframe_is_a_usage_error_naming_the_flag() {
    let files = tempfile::tempdir().unwrap();
    let csv = write_original_csv(files.path());
    let bare = files.path().join("EURUSD.csv");
    std::fs::copy(&csv, &bare).unwrap();
    let bare = bare.to_str().unwrap();

    // No server is asked: the CLI knows what is missing.
    let run = ktrdr(NOBODY, &["data", "import", bare, "--symbol", "EURUSD"]).await;
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("pass -t/--timeframe"), "{run}");
    assert!(run.stderr.contains("1m, 5m, 15m"), "{run}");
    assert!(!run.stderr.contains("options."), "{run}");

    let run = ktrdr(NOBODY, &["data", "import", bare]).await;
    assert_eq!(run.code, Some(2), "{run}");
    assert!(
        run.stderr.contains("-t/--timeframe") && run.stderr.contains("--symbol"),
        "{run}"
    );

    let run = ktrdr(NOBODY, &["data", "import", bare, "-t", "1h"]).await;
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("pass --symbol"), "{run}");
    assert!(!run.stderr.contains("--timeframe"), "{run}");
}

#[tokio::test]
async fn an_unreachable_gateway_exits_with_3_and_says_what_to_do() {
    for args in [
        &["data", "list"][..],
        &["config"],
        &["data", "show", "AAPL", "-t", "1h"],
        &["trainings", "list"],
        &["models", "list"],
    ] {
        let run = ktrdr(NOBODY, args).await;
        assert_eq!(run.code, Some(3), "{args:?}\n{run}");
        assert!(
            run.stderr.contains(
                "cannot reach the gateway at http://127.0.0.1:9 — start it with `make run` or set KTRDR_GATEWAY_URL"
            ),
            "{args:?}\n{run}"
        );
    }
    let run = ktrdr(NOBODY, &["--json", "data", "list"]).await;
    assert_eq!(run.code, Some(3), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
    let error = &run.stderr_json()["error"];
    assert_eq!(error["kind"], "connection");
    assert_eq!(error["exit_code"], 3);
    // health keeps its own codes: 3 for unreachable too.
    assert_eq!(ktrdr(NOBODY, &["health"]).await.code, Some(3));
}

#[tokio::test]
async fn completions_are_printed_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let run = ktrdr(NOBODY, &["completions", shell]).await;
        assert_eq!(run.code, Some(0), "{run}");
        assert!(run.stdout.len() > 1000, "{shell}: {run}");
        assert!(run.stdout.contains("ktrdr"), "{shell}");
    }
    let bash = ktrdr(NOBODY, &["completions", "bash"]).await;
    assert!(bash.stdout.contains("complete -F"), "{bash}");
    assert!(
        bash.stdout.contains("trainings"),
        "subcommands are completed"
    );
}

#[tokio::test]
async fn strategies_validate_accepts_the_shipped_strategies_and_rejects_a_broken_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<String> = std::fs::read_dir(root.join("strategies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.to_str().unwrap().to_owned())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut args = vec!["strategies", "validate"];
    args.extend(files.iter().map(String::as_str));
    let run = ktrdr(NOBODY, &args).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(run.stdout.matches(": OK").count(), files.len(), "{run}");
    assert!(run.stdout.contains("rsi_bollinger_single"), "{run}");

    let one = files
        .iter()
        .find(|f| f.ends_with("rsi_bollinger_single.yaml"))
        .unwrap();
    let run = ktrdr(NOBODY, &["--json", "strategies", "validate", one]).await;
    assert_eq!(run.code, Some(0), "{run}");
    let report = run.json();
    assert_eq!(report["valid"], true);
    assert_eq!(report["name"], "rsi_bollinger_single");
    assert_eq!(report["symbols"][0], "EURUSD");
    assert_eq!(report["timeframes"][0], "1h");
    assert!(report["indicators"].as_array().unwrap().len() >= 2);

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        TINY_STRATEGY.replace("dropout: 0.0", "dropout: \"lots\""),
    )
    .unwrap();
    let run = ktrdr_line(NOBODY, &format!("strategies validate {}", broken.display())).await;
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stdout.contains("INVALID"), "{run}");
    assert!(run.stdout.contains("model.architecture.dropout"), "{run}");

    let run = ktrdr_line(
        NOBODY,
        &format!("--json strategies validate {}", broken.display()),
    )
    .await;
    assert_eq!(run.code, Some(1), "{run}");
    let report = run.json();
    assert_eq!(report["valid"], false);
    assert_eq!(report["error"]["path"], "model.architecture.dropout");

    let missing = ktrdr(NOBODY, &["strategies", "validate", "/no/such.yaml"]).await;
    assert_eq!(missing.code, Some(1), "{missing}");
}

// ---- gateway + data service ----------------------------------------------------------------

#[tokio::test]
async fn an_imported_csv_is_seen_by_show_range_gaps_and_list() {
    let data_dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let (_data, gateway) = data_and_gateway(data_dir.path()).await;
    let url = gateway.url();
    let csv = write_original_csv(files.path());
    let csv = csv.to_str().unwrap();

    // A dry run shows what the import would store, and stores nothing.
    let run = ktrdr(&url, &["data", "import", csv, "--dry-run"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.stdout.contains(
            "dry run: EURUSD_1h.csv → EURUSD 1h: 91 rows read, 91 bars would be written (0 replaced)"
        ),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("would store: 91 bars from 2024-01-01T00:00:00Z to 2024-01-04T23:00:00Z"),
        "{run}"
    );
    let dry = ktrdr(&url, &["--json", "data", "import", csv, "--dry-run"])
        .await
        .json();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["coverage"]["bar_count"], 91);
    assert_eq!(dry["coverage"]["first"], "2024-01-01T00:00:00Z");
    let run = ktrdr(&url, &["data", "list"]).await;
    assert!(run.stdout.contains("no datasets stored"), "{run}");

    // import: symbol and timeframe from the file name
    let run = ktrdr(&url, &["data", "import", csv]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.stdout
            .contains("EURUSD_1h.csv → EURUSD 1h: 91 rows read, 91 bars written"),
        "{run}"
    );
    let run = ktrdr(&url, &["--json", "data", "import", csv]).await;
    assert_eq!(run.code, Some(0), "{run}");
    let imported = run.json();
    assert_eq!(imported["symbol"], "EURUSD");
    assert_eq!(imported["timeframe"], "1h");
    assert_eq!(imported["bars_replaced"], 91, "a second import merges");
    assert_eq!(imported["coverage"]["bar_count"], 91);
    let run = ktrdr(&url, &["data", "import", csv, "--dry-run"]).await;
    assert!(
        run.stdout
            .contains("91 bars would be written (91 replaced)"),
        "{run}"
    );
    assert!(run.stdout.contains("would store: 91 bars"), "{run}");

    // show: table, JSON, CSV (the original format), limits and ranges
    let run = ktrdr_line(&url, "data show EURUSD -t 1h --limit 3").await;
    assert_eq!(run.code, Some(0), "{run}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{run}");
    assert!(lines[0].starts_with("timestamp"), "{run}");
    assert!(lines[1].starts_with("2024-01-01T00:00:00Z"), "{run}");
    assert!(lines[1].contains("1.1"), "{run}");

    let run = ktrdr(&url, &["--json", "data", "show", "EURUSD", "-t", "1h"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    let shown = run.json();
    assert_eq!(shown["count"], 91);
    let bars = shown["bars"].as_array().unwrap();
    assert_eq!(bars.len(), 91);
    assert_eq!(bars[0]["timestamp"], "2024-01-01T00:00:00Z");
    assert_eq!(bars[0]["timestamp_ms"], T0);
    assert_eq!(bars[0]["open"], 1.1);
    assert_eq!(bars[0]["volume"], 1000.0);
    for key in ["open", "high", "low", "close", "volume"] {
        assert!(bars[90][key].is_f64(), "{key}");
    }

    let run = ktrdr_line(&url, "data show EURUSD -t 1h --format csv --limit 2 --tail").await;
    assert_eq!(run.code, Some(0), "{run}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "timestamp,open,high,low,close,volume");
    assert_eq!(lines.len(), 3, "{run}");
    assert!(lines[2].starts_with("2024-01-04T23:00:00Z,"), "{run}");

    let run = ktrdr_line(
        &url,
        "--json data show EURUSD -t 1h --start 2024-01-02 --end 2024-01-02T03:00:00Z",
    )
    .await;
    let shown = run.json();
    assert_eq!(shown["count"], 3, "{run}");
    assert_eq!(shown["bars"][0]["timestamp"], "2024-01-02T00:00:00Z");
    let epoch_ms = (T0 + 24 * HOUR).to_string();
    let run = ktrdr_line(
        &url,
        &format!("--json data show EURUSD -t 1h --start {epoch_ms} -n 1"),
    )
    .await;
    assert_eq!(
        run.json()["bars"][0]["timestamp"],
        "2024-01-02T00:00:00Z",
        "epoch ms are accepted"
    );

    // range
    let run = ktrdr(&url, &["data", "range", "EURUSD", "-t", "1h"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("first  2024-01-01T00:00:00Z"), "{run}");
    assert!(run.stdout.contains("last   2024-01-04T23:00:00Z"), "{run}");
    assert!(run.stdout.contains("bars   91"), "{run}");
    let range = ktrdr(&url, &["--json", "data", "range", "EURUSD", "-t", "1h"])
        .await
        .json();
    assert_eq!(range["first"], "2024-01-01T00:00:00Z");
    assert_eq!(range["last"], "2024-01-04T23:00:00Z");
    assert_eq!(range["first_ms"], T0);
    assert_eq!(range["bar_count"], 91);

    // gaps: the five missing Wednesday hours
    let run = ktrdr(&url, &["data", "gaps", "EURUSD", "-t", "1h"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("1 UNEXPECTED (5 bars)"), "{run}");
    assert!(
        run.stdout
            .contains("2024-01-03T10:00:00Z  2024-01-03T15:00:00Z  UNEXPECTED"),
        "{run}"
    );
    let gaps = ktrdr_line(&url, "--json data gaps EURUSD -t 1h --unexpected")
        .await
        .json();
    let list = gaps["gaps"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{gaps}");
    assert_eq!(list[0]["kind"], "UNEXPECTED");
    assert_eq!(list[0]["missing_bars"], 5);
    assert_eq!(list[0]["range"]["start"], "2024-01-03T10:00:00Z");

    // list
    let run = ktrdr(&url, &["data", "list"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.stdout.lines().nth(1).unwrap().starts_with("EURUSD  1h"),
        "{run}"
    );
    let listed = ktrdr(&url, &["--json", "data", "list"]).await.json();
    let datasets = listed["datasets"].as_array().unwrap();
    assert_eq!(datasets.len(), 1);
    assert_eq!(datasets[0]["symbol"], "EURUSD");
    assert_eq!(datasets[0]["timeframe"], "1h");
    assert_eq!(datasets[0]["bar_count"], 91);
    assert_eq!(datasets[0]["last"], "2024-01-04T23:00:00Z");

    // import with flags overriding the file name
    let other = files.path().join("export.csv");
    std::fs::copy(csv, &other).unwrap();
    let run = ktrdr_line(
        &url,
        &format!(
            "--json data import {} --symbol gbp/usd -t 1h",
            other.display()
        ),
    )
    .await;
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(run.json()["symbol"], "GBPUSD");
}

#[tokio::test]
async fn data_gaps_shows_the_forex_year_end_closures_as_holidays() {
    let data_dir = tempfile::tempdir().unwrap();
    let (_data, gateway) = data_and_gateway(data_dir.path()).await;
    let url = gateway.url();
    // EURUSD hourly bars over the 2024 year end with its real closures (17:00 New York =
    // 22:00 UTC): three weekends, and the FX trading days 25 December and 1 January.
    let at = |y: i32, m: u8, d: u8, h: i64| utc_ms(y, m, d) + h * HOUR;
    let closed = [
        (at(2024, 12, 20, 22), at(2024, 12, 22, 22)),
        (at(2024, 12, 24, 22), at(2024, 12, 25, 22)),
        (at(2024, 12, 27, 22), at(2024, 12, 29, 22)),
        (at(2024, 12, 31, 22), at(2025, 1, 1, 22)),
        (at(2025, 1, 3, 22), at(2025, 1, 5, 22)),
    ];
    let mut bars = BarColumns::default();
    let mut t = at(2024, 12, 20, 0);
    while t < at(2025, 1, 7, 0) {
        if !closed.iter().any(|(a, b)| (*a..*b).contains(&t)) {
            bars.timestamp_ms.push(t);
            bars.open.push(1.04);
            bars.high.push(1.041);
            bars.low.push(1.039);
            bars.close.push(1.0405);
            bars.volume.push(0.0);
        }
        t += HOUR;
    }
    store_bars(gateway.channel().await, "EURUSD", "1h", bars).await;

    let run = ktrdr(&url, &["--json", "data", "gaps", "EURUSD", "-t", "1h"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    let gaps = run.json();
    let listed: Vec<(&str, &str)> = gaps["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["range"]["start"].as_str().unwrap(),
                g["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("2024-12-20T22:00:00Z", "WEEKEND"),
            ("2024-12-24T22:00:00Z", "HOLIDAY"),
            ("2024-12-27T22:00:00Z", "WEEKEND"),
            ("2024-12-31T22:00:00Z", "HOLIDAY"),
            ("2025-01-03T22:00:00Z", "WEEKEND"),
        ],
        "{gaps}"
    );
    let run = ktrdr(&url, &["data", "gaps", "EURUSD", "-t", "1h"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("2 HOLIDAY (48 bars)"), "{run}");
    assert!(!run.stdout.contains("UNEXPECTED"), "{run}");
}

#[tokio::test]
async fn server_errors_exit_with_4_and_show_the_servers_message() {
    let data_dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let (_data, gateway) = data_and_gateway(data_dir.path()).await;
    let url = gateway.url();

    let run = ktrdr(&url, &["data", "show", "MSFT", "-t", "1h"]).await;
    assert_eq!(run.code, Some(4), "{run}");
    assert!(run.stderr.contains("NOT_FOUND"), "{run}");
    assert!(run.stderr.contains("MSFT"), "{run}");

    let run = ktrdr(&url, &["--json", "data", "range", "MSFT", "-t", "1h"]).await;
    assert_eq!(run.code, Some(4), "{run}");
    let error = &run.stderr_json()["error"];
    assert_eq!(error["kind"], "server");
    assert_eq!(error["code"], "NOT_FOUND");
    assert_eq!(error["exit_code"], 4);

    // A CSV row breaking a rule: INVALID_ARGUMENT naming the line.
    let bad = files.path().join("AAPL_1h.csv");
    std::fs::write(
        &bad,
        "timestamp,open,high,low,close,volume\n\
         2024-01-02T14:00:00Z,10,11,9,10.5,100\n\
         2024-01-02T15:00:00Z,10,9,8,10.5,100\n",
    )
    .unwrap();
    let run = ktrdr(&url, &["data", "import", bad.to_str().unwrap()]).await;
    assert_eq!(run.code, Some(4), "{run}");
    assert!(run.stderr.contains("INVALID_ARGUMENT"), "{run}");
    assert!(run.stderr.contains("high"), "{run}");
    // The CLI's flag, not the proto field, is what to pass.
    assert!(run.stderr.contains("write with --repair"), "{run}");
    assert!(!run.stderr.contains("VALIDATION_MODE"), "{run}");
    let run = ktrdr_line(
        &url,
        &format!("data import {} --timezone Mars/Olympus", bad.display()),
    )
    .await;
    assert_eq!(run.code, Some(4), "{run}");
    assert!(run.stderr.contains("invalid --timezone"), "{run}");
    assert!(!run.stderr.contains("options."), "{run}");

    // The training host is down: the gateway answers UNAVAILABLE itself, a server error.
    let run = ktrdr(&url, &["models", "list"]).await;
    assert_eq!(run.code, Some(4), "{run}");
    assert!(run.stderr.contains("UNAVAILABLE"), "{run}");
    assert!(run.stderr.contains("USE_TRAINING_HOST_SERVICE"), "{run}");

    let run = ktrdr(NOBODY, &["data", "import", "/no/such/file.csv"]).await;
    assert_eq!(run.code, Some(2), "a missing file is a usage error\n{run}");
}

#[tokio::test]
async fn a_reader_that_goes_away_ends_the_cli_quietly_with_0() {
    let data_dir = tempfile::tempdir().unwrap();
    let (_data, gateway) = data_and_gateway(data_dir.path()).await;
    let url = gateway.url();
    // Far more output than a pipe buffers, so the CLI is still writing when the reader leaves.
    store_bars(
        gateway.channel().await,
        "EURUSD",
        "1h",
        trending_hourly_bars(20_000, 1),
    )
    .await;
    for args in [
        &["data", "show", "EURUSD", "-t", "1h"][..],
        &["data", "show", "EURUSD", "-t", "1h", "-f", "csv"],
        &["--json", "data", "show", "EURUSD", "-t", "1h"],
    ] {
        // ktrdr … | head -2
        let run = ktrdr_into_head(&url, args, 2, false).await;
        assert_eq!(run.code, Some(0), "{args:?}\n{run}");
        assert_eq!(run.stdout.lines().count(), 2, "{args:?}\n{run}");
        assert!(run.stderr.is_empty(), "{args:?} ends quietly\n{run}");
        // ktrdr … 2>&1 | head -2: nothing may panic writing to the closed stderr either.
        let run = ktrdr_into_head(&url, args, 2, true).await;
        assert_eq!(run.code, Some(0), "{args:?}\n{run}");
    }
    let run = ktrdr_into_head(&url, &["data", "show", "EURUSD", "-t", "1h"], 2, false).await;
    assert!(run.stdout.starts_with("timestamp"), "{run}");
}

#[tokio::test]
async fn config_lists_the_managers_and_health_reports_serving() {
    let data_dir = tempfile::tempdir().unwrap();
    let (data, gateway) = data_and_gateway(data_dir.path()).await;
    let url = gateway.url();
    let run = ktrdr(&url, &["config"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("host_service"), "{run}");
    let data_line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("data "))
        .unwrap_or_else(|| panic!("no data row\n{run}"));
    assert!(data_line.contains(&data.url()), "{run}");

    let config = ktrdr(&url, &["--json", "config"]).await.json();
    let managers = config["managers"].as_array().unwrap();
    let data_manager = managers.iter().find(|m| m["manager"] == "data").unwrap();
    assert_eq!(data_manager["mode"], "HOST_SERVICE");
    assert_eq!(data_manager["url"], data.url().as_str());
    assert_eq!(data_manager["env"]["USE_DATA_SERVICE"], "true");
    assert_eq!(data_manager["warnings"].as_array().map(Vec::len), Some(0));
    assert_eq!(config["gateway"]["name"], "gateway");

    let health = ktrdr(&url, &["--json", "health"]).await;
    assert_eq!(health.code, Some(0), "{health}");
    assert_eq!(health.json()["status"], "SERVING");
}

#[tokio::test]
async fn with_auth_on_the_gateway_the_cli_sends_ktrdr_auth_token_and_any_bearer_case_passes() {
    let gateway = ServiceProcess::start(
        "ktrdr-gateway",
        &[
            ("KTRDR_AUTH_TOKEN", "s3cret"),
            ("DATA_SERVICE_URL", NOBODY),
            ("TRAINING_HOST_SERVICE_URL", NOBODY),
            ("IB_HOST_SERVICE_URL", NOBODY),
        ],
    )
    .await;
    let url = gateway.url();
    let denied = ktrdr(&url, &["config"]).await;
    assert_eq!(denied.code, Some(4), "{denied}");
    assert!(denied.stderr.contains("authorization: Bearer"), "{denied}");
    let allowed =
        ktrdr_system_tests::ktrdr_with_env(&url, &["config"], &[("KTRDR_AUTH_TOKEN", "s3cret")])
            .await;
    assert_eq!(allowed.code, Some(0), "{allowed}");
    assert!(allowed.stdout.contains("training"), "{allowed}");

    // RFC 7235 §2.1: the scheme name is case-insensitive, whoever the client is.
    let channel = gateway.channel().await;
    let call = |authorization: &'static str| {
        let channel = channel.clone();
        async move {
            let mut request =
                tonic::Request::new(ktrdr_proto::gateway::v1::GetConfigurationRequest {});
            request
                .metadata_mut()
                .insert("authorization", authorization.parse().unwrap());
            GatewayServiceClient::new(channel)
                .get_configuration(request)
                .await
        }
    };
    for accepted in ["Bearer s3cret", "bearer s3cret", "BEARER s3cret"] {
        let answer = call(accepted).await;
        assert!(answer.is_ok(), "{accepted}: {answer:?}");
    }
    for refused in ["BEARER guess", "Basic s3cret", "s3cret"] {
        let status = call(refused).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{refused}");
    }
}

// ---- gateway + data service + training host ------------------------------------------------

#[tokio::test]
async fn trainings_and_models_commands_follow_a_real_session() {
    let (data, _data_dir) = start_data(&[]).await;
    let models = tempfile::tempdir().unwrap();
    let host = start_training_host(&data.url(), models.path(), &[]).await;
    let gateway = ServiceProcess::start(
        "ktrdr-gateway",
        &[
            ("DATA_SERVICE_URL", data.url().as_str()),
            ("TRAINING_HOST_SERVICE_URL", host.url().as_str()),
            ("IB_HOST_SERVICE_URL", NOBODY),
        ],
    )
    .await;
    let url = gateway.url();
    let channel = gateway.channel().await;
    store_training_bars(channel.clone()).await;

    let run = ktrdr(&url, &["trainings", "list"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("no training sessions"), "{run}");

    // Sessions are started through the gateway's TrainingService (what `train` does after its
    // data loads); the CLI follows them.
    let mut training = TrainingServiceClient::new(channel.clone());
    let session_id = start(
        &mut training,
        StartTrainingRequest {
            strategy: Some(Strategy::StrategyYaml(TINY_STRATEGY.into())),
            epochs: Some(2),
            seed: Some(3),
            ..Default::default()
        },
    )
    .await
    .session_id;

    // watch follows the session to its end.
    let run = ktrdr(&url, &["--json", "trainings", "watch", &session_id]).await;
    assert_eq!(run.code, Some(0), "{run}");
    let events = run.json_lines();
    assert!(
        events
            .iter()
            .all(|e| e["session_id"] == session_id.as_str())
    );
    let epochs: Vec<_> = events.iter().filter(|e| e["event"] == "epoch").collect();
    assert_eq!(epochs.len(), 2, "{run}");
    assert!(epochs[1]["train_loss"].is_f64());
    assert!(epochs[1]["train_accuracy"].is_f64());
    let last = events.last().unwrap();
    assert_eq!(last["event"], "state_changed");
    assert_eq!(last["to"], "COMPLETED");
    let model_id = events.iter().find(|e| e["event"] == "model_saved").unwrap()["model_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Watching a finished session replays it: text mode shows each epoch and the metrics.
    let run = ktrdr(&url, &["trainings", "watch", &session_id]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("epoch 2/2"), "{run}");
    assert!(
        run.stdout
            .contains(&format!("session {session_id} COMPLETED: model {model_id}")),
        "{run}"
    );
    assert!(run.stdout.contains("test"), "{run}");

    let run = ktrdr(&url, &["trainings", "list"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains(&session_id), "{run}");
    assert!(run.stdout.contains("COMPLETED"), "{run}");
    let listed = ktrdr_line(&url, "--json trainings list --state completed")
        .await
        .json();
    assert_eq!(listed["sessions"][0]["session_id"], session_id.as_str());
    assert_eq!(listed["sessions"][0]["strategy_name"], "tiny_rsi");
    assert_eq!(listed["sessions"][0]["model_id"], model_id.as_str());
    let none = ktrdr(&url, &["--json", "trainings", "list", "--state", "running"])
        .await
        .json();
    assert_eq!(none["sessions"].as_array().unwrap().len(), 0);

    let run = ktrdr(&url, &["trainings", "show", &session_id]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("state       COMPLETED"), "{run}");
    assert!(
        run.stdout.contains(&format!("model       {model_id}")),
        "{run}"
    );
    let shown = ktrdr(&url, &["--json", "trainings", "show", &session_id])
        .await
        .json();
    assert_eq!(shown["state"], "COMPLETED");
    assert_eq!(shown["epochs"], 2);
    assert_eq!(shown["seed"], 3);
    assert!(shown["metrics"]["test_accuracy"].is_f64());

    // Cancelling a finished session changes nothing (idempotent).
    let cancelled = ktrdr(&url, &["--json", "trainings", "cancel", &session_id])
        .await
        .json();
    assert_eq!(cancelled["state"], "COMPLETED");

    let missing = ktrdr(&url, &["trainings", "show", "no-such-session"]).await;
    assert_eq!(missing.code, Some(4), "{missing}");
    assert!(missing.stderr.contains("NOT_FOUND"), "{missing}");

    // models
    let run = ktrdr(&url, &["models", "list"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains(&model_id), "{run}");
    let listed = ktrdr(&url, &["--json", "models", "list", "--symbol", "EURUSD"])
        .await
        .json();
    assert_eq!(listed["models"][0]["model_id"], model_id.as_str());
    assert_eq!(listed["models"][0]["symbols"][0], "EURUSD");

    let run = ktrdr(&url, &["models", "show", &model_id, "--yaml"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("strategy    tiny_rsi"), "{run}");
    assert!(
        run.stdout.contains("name: \"tiny_rsi\""),
        "the YAML follows\n{run}"
    );
    let shown = ktrdr(&url, &["--json", "models", "show", &model_id])
        .await
        .json();
    assert_eq!(shown["training_session_id"], session_id.as_str());
    assert!(shown["parameter_count"].as_i64().unwrap() > 0);
    assert!(!shown["feature_names"].as_array().unwrap().is_empty());

    let evaluated = ktrdr(&url, &["--json", "models", "evaluate", &model_id]).await;
    assert_eq!(evaluated.code, Some(0), "{evaluated}");
    let evaluated = evaluated.json();
    assert!(evaluated["bars_evaluated"].as_i64().unwrap() > 0);
    assert!(evaluated["metrics"]["test_accuracy"].is_f64());
    let run = ktrdr(&url, &["models", "evaluate", &model_id]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("bar(s) evaluated"), "{run}");

    let predicted = ktrdr_line(
        &url,
        &format!("--json models predict {model_id} --symbol EURUSD --limit 5"),
    )
    .await;
    assert_eq!(predicted.code, Some(0), "{predicted}");
    let predicted = predicted.json();
    let rows = predicted["predictions"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for row in rows {
        assert!(["BUY", "HOLD", "SELL"].contains(&row["signal"].as_str().unwrap()));
        let total = row["prob_buy"].as_f64().unwrap()
            + row["prob_hold"].as_f64().unwrap()
            + row["prob_sell"].as_f64().unwrap();
        assert!((total - 1.0).abs() < 1e-3, "{row}");
    }
    let run = ktrdr_line(
        &url,
        &format!("models predict {model_id} --symbol EURUSD -n 3 -f csv"),
    )
    .await;
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(
        run.stdout.lines().next(),
        Some("timestamp,signal,prob_buy,prob_hold,prob_sell")
    );
    assert_eq!(run.stdout.lines().count(), 4, "{run}");

    let missing = ktrdr(&url, &["models", "show", "tiny_rsi/NOPE_1h_v9"]).await;
    assert_eq!(missing.code, Some(4), "{missing}");

    // trainings cancel on a running session: CANCELLED on the server.
    let long = start(
        &mut training,
        StartTrainingRequest {
            strategy: Some(Strategy::StrategyYaml(TINY_STRATEGY.into())),
            epochs: Some(10_000),
            batch_size: Some(4),
            seed: Some(3),
            ..Default::default()
        },
    )
    .await
    .session_id;
    // Ctrl+C while watching stops the watch (130), not the session.
    let mut watching = RunningCli::spawn(&url, &["--json", "trainings", "watch", &long]);
    let first = watching.next_json_line().await.expect("a first event");
    assert_eq!(first["session_id"], long.as_str());
    watching.interrupt();
    let run = watching.finish().await;
    assert_eq!(run.code, Some(130), "{run}");
    assert!(run.stderr.contains("stopped watching"), "{run}");
    let state = get(&mut training, &long).await.state();
    assert!(
        matches!(
            state,
            TrainingState::Queued | TrainingState::LoadingData | TrainingState::Running
        ),
        "{state:?}"
    );

    let run = ktrdr(&url, &["trainings", "cancel", &long]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.stdout.contains(&format!("session {long}: CANCELLED")),
        "{run}"
    );
    let state = get(&mut training, &long).await.state();
    assert_eq!(state, TrainingState::Cancelled);
    // watch of a cancelled session: exit 1, says how it ended.
    let run = ktrdr(&url, &["trainings", "watch", &long]).await;
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("CANCELLED"), "{run}");
}

// ---- LoadData / TrainStrategy through the gateway ------------------------------------------

/// ib-sim → ib-host → gateway ← data (and a training host when asked), for loads and training.
/// ib-sim delays each reply by `reply_delay_ms` so a load lasts long enough to be interrupted.
async fn ib_stack(reply_delay_ms: &str, with_training_host: bool) -> Stack {
    let env = [
        ("IB_SIM_PACING", "false"),
        ("IB_SIM_REPLY_DELAY_MS", reply_delay_ms),
        ("IB_PACING", "false"),
    ];
    Stack::start(InProcess::NONE, usize::from(with_training_host), &env).await
}

#[tokio::test]
async fn data_load_streams_progress_to_a_summary() {
    let stack = ib_stack("0", false).await;
    let url = stack.gateway.url();
    let run = ktrdr_line(
        &url,
        "--json data load AAPL -t 1h -m tail --start 2024-01-02 --end 2024-01-20",
    )
    .await;
    assert_eq!(run.code, Some(0), "{run}");
    let events = run.json_lines();
    assert_eq!(events[0]["event"], "started", "{run}");
    let job_id = events[0]["job_id"].as_str().unwrap().to_owned();
    let last = events.last().unwrap();
    assert_eq!(last["event"], "summary");
    assert_eq!(last["state"], "COMPLETED");
    assert_eq!(last["job_id"], job_id.as_str());
    assert!(last["bars_written"].as_i64().unwrap() > 0);

    // The bars are in the store: the other data commands see them.
    let range = ktrdr(&url, &["--json", "data", "range", "AAPL", "-t", "1h"])
        .await
        .json();
    assert_eq!(range["bar_count"], last["bar_count"]);

    let run = ktrdr(&url, &["data", "load", "AAPL", "-t", "1h", "-m", "local"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("AAPL 1h: COMPLETED"), "{run}");
}

#[tokio::test]
async fn ctrl_c_during_data_load_cancels_the_job_and_exits_130() {
    let stack = ib_stack("500", false).await;
    let url = stack.gateway.url();
    let mut cli = spawn_backfill_of_2023(&url, "AAPL", "5m");
    let started = cli.next_json_line().await.expect("a started event");
    assert_eq!(started["event"], "started", "{started}");
    let job_id = started["job_id"].as_str().unwrap().to_owned();
    let (last, run) = cli.ctrl_c().await;
    assert_eq!(last["job_id"], job_id.as_str(), "{run}");

    assert_cancelled(&stack, &job_id).await;
}

/// `data jobs` lists the gateway's load jobs (by state and dataset); `data watch` follows one
/// without owning it (Ctrl+C stops the watching, the load goes on); `data cancel` cancels it,
/// and watching it afterwards replays it to its CANCELLED summary (exit 1).
#[tokio::test]
async fn data_jobs_lists_loads_and_watch_and_cancel_act_on_one() {
    let stack = ib_stack("500", false).await;
    let url = stack.gateway.url();
    let mut load = spawn_backfill_of_2023(&url, "AAPL", "5m");
    let started = load.next_json_line().await.expect("a started event");
    let job_id = started["job_id"].as_str().unwrap().to_owned();

    let ids = |listing: serde_json::Value| -> Vec<String> {
        listing["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let running = ktrdr(&url, &["--json", "data", "jobs", "--state", "running"]).await;
    assert_eq!(ids(running.json()), [job_id.as_str()], "{running}");
    let msft = ktrdr(&url, &["--json", "data", "jobs", "--symbol", "MSFT"]).await;
    assert!(ids(msft.json()).is_empty(), "{msft}");
    let table = ktrdr(&url, &["data", "jobs"]).await;
    assert!(table.stdout.contains(&job_id), "{table}");
    assert!(table.stdout.contains("BACKFILL"), "{table}");

    let mut watcher = RunningCli::spawn(&url, &["--json", "data", "watch", &job_id]);
    let first = watcher
        .next_json_line()
        .await
        .expect("the job's started event");
    assert_eq!(first["event"], "started", "{first}");
    watcher.interrupt();
    let stopped = watcher.finish().await;
    assert_eq!(stopped.code, Some(130), "{stopped}");
    assert!(stopped.stderr.contains("goes on"), "{stopped}");
    assert_eq!(
        load_job(&stack, &job_id).await.state(),
        ktrdr_proto::common::v1::JobState::Running
    );

    let cancel = ktrdr(&url, &["data", "cancel", &job_id]).await;
    assert_eq!(cancel.code, Some(0), "{cancel}");
    assert!(cancel.stdout.contains("CANCELLED"), "{cancel}");
    assert_cancelled(&stack, &job_id).await;
    let replay = ktrdr(&url, &["data", "watch", &job_id]).await;
    assert_eq!(replay.code, Some(1), "{replay}");
    assert!(replay.stderr.contains("CANCELLED"), "{replay}");
    // The dataset comes from the job's LoadStarted.
    assert!(replay.stderr.contains("AAPL 5m"), "{replay}");
    let loader = load.finish().await;
    assert_eq!(loader.code, Some(1), "{loader}");

    let unknown = ktrdr(&url, &["data", "watch", "nope"]).await;
    assert_eq!(unknown.code, Some(4), "{unknown}");
    assert!(unknown.stderr.contains("`ktrdr data jobs`"), "{unknown}");
}

/// `ktrdr --json data load SYMBOLS -t TIMEFRAMES -m backfill` over 2023, left running.
fn spawn_backfill_of_2023(url: &str, symbols: &str, timeframes: &str) -> RunningCli {
    RunningCli::spawn(
        url,
        &[
            "--json",
            "data",
            "load",
            symbols,
            "-t",
            timeframes,
            "-m",
            "backfill",
            "--start",
            "2023-01-02",
            "--end",
            "2024-01-02",
        ],
    )
}

/// Asserts that the gateway reports load job `job_id` CANCELLED.
async fn assert_cancelled(stack: &Stack, job_id: &str) {
    let job = load_job(stack, job_id).await;
    assert_eq!(
        job.state(),
        ktrdr_proto::common::v1::JobState::Cancelled,
        "{job:?}"
    );
}

/// The load job `job_id` as the gateway reports it (GetLoad).
async fn load_job(stack: &Stack, job_id: &str) -> ktrdr_proto::gateway::v1::LoadJob {
    GatewayServiceClient::new(stack.gateway.channel().await)
        .get_load(GetLoadRequest {
            job_id: job_id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap()
}

#[tokio::test]
async fn a_batch_load_fails_the_unknown_symbols_datasets_and_completes_the_others() {
    let stack = ib_stack("0", false).await;
    let url = stack.gateway.url();
    let args = [
        "data",
        "load",
        "AAPL,MSFT,NOPE",
        "-t",
        "1h,1d",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-20",
    ];
    let mut json_args = vec!["--json"];
    json_args.extend(args);
    let run = ktrdr(&url, &json_args).await;
    assert_eq!(run.code, Some(1), "one dataset failed\n{run}");
    let events = run.json_lines();
    assert_eq!(events[0]["event"], "batch_started", "{run}");
    assert_eq!(events[0]["datasets"].as_array().unwrap().len(), 6);
    let batch_id = events[0]["batch_id"].as_str().unwrap().to_owned();

    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "batch_summary", "{run}");
    assert_eq!(summary["state"], "FAILED");
    assert_eq!(
        (&summary["completed"], &summary["failed"]),
        (&4.into(), &2.into())
    );
    let datasets = summary["datasets"].as_array().unwrap();
    assert_eq!(datasets.len(), 6);
    for d in datasets {
        if d["symbol"] == "NOPE" {
            assert_eq!(d["state"], "FAILED", "{d}");
            assert!(d["error"].as_str().unwrap().contains("NOPE"), "{d}");
        } else {
            assert_eq!(d["state"], "COMPLETED", "{d}");
            assert!(d["summary"]["bars_written"].as_i64().unwrap() > 0, "{d}");
        }
    }

    // Each completed dataset was its own load job, streamed with its symbol and timeframe.
    let mut children: Vec<(String, String, String)> = events
        .iter()
        .filter(|e| e["event"] == "started")
        .map(|e| {
            assert_eq!(e["batch_id"], batch_id.as_str());
            (
                e["symbol"].as_str().unwrap().to_owned(),
                e["timeframe"].as_str().unwrap().to_owned(),
                e["job_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    children.sort();
    children.dedup_by(|a, b| a.2 == b.2);
    assert_eq!(children.len(), 4, "{run}");
    for (symbol, timeframe, job_id) in &children {
        let job = load_job(&stack, job_id).await;
        assert_eq!((&job.symbol, &job.timeframe), (symbol, timeframe));
        assert_eq!(job.state(), ktrdr_proto::common::v1::JobState::Completed);
    }
    // Overall progress as each dataset ends, up to all six.
    let progress: Vec<i64> = events
        .iter()
        .filter(|e| e["event"] == "batch_progress")
        .map(|e| e["progress"]["items_done"].as_i64().unwrap())
        .collect();
    assert_eq!(progress, [1, 2, 3, 4, 5, 6], "{run}");

    // The text output ends with a table of every dataset.
    let run = ktrdr(&url, &args).await;
    assert_eq!(run.code, Some(1), "{run}");
    let rows: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("symbol"))
        .collect();
    assert!(
        rows[0].contains("state") && rows[0].contains("stored"),
        "{run}"
    );
    assert_eq!(
        rows.iter()
            .filter(|l| l.starts_with("NOPE") && l.contains("FAILED"))
            .count(),
        2,
        "{run}"
    );
    assert_eq!(rows.iter().filter(|l| l.contains("COMPLETED")).count(), 4);
    assert!(
        run.stdout
            .contains("FAILED — 4 completed, 2 failed, 0 cancelled"),
        "{run}"
    );
    assert!(run.stderr.contains("2 failed"), "{run}");
}

#[tokio::test]
async fn ctrl_c_during_a_batch_load_cancels_every_child_and_exits_130() {
    let stack = ib_stack("500", false).await;
    let url = stack.gateway.url();
    let mut cli = spawn_backfill_of_2023(&url, "AAPL,MSFT", "5m,15m");
    let batch = cli.next_json_line().await.expect("a batch_started event");
    assert_eq!(batch["event"], "batch_started", "{batch}");
    // Wait until the four children are running.
    let mut jobs = Vec::new();
    while jobs.len() < 4 {
        let event = cli.next_json_line().await.expect("child events");
        if event["event"] == "started" {
            jobs.push(event["job_id"].as_str().unwrap().to_owned());
        }
    }
    let (last, run) = cli.ctrl_c().await;
    assert_eq!(last["job_id"], batch["batch_id"], "{run}");
    assert_eq!(last["state"], "CANCELLED", "{run}");

    for job_id in jobs {
        assert_cancelled(&stack, &job_id).await;
    }
}

/// The IB stack with a training host, 600 hourly EURUSD bars stored and the tiny strategy in a
/// file.
async fn training_stack() -> (Stack, std::path::PathBuf) {
    let stack = ib_stack("0", true).await;
    store_training_bars(stack.data.as_ref().unwrap().channel().await).await;
    let strategy = stack.models_dir.path().join("tiny.yaml");
    std::fs::write(&strategy, TINY_STRATEGY).unwrap();
    (stack, strategy)
}

/// `ktrdr --json train STRATEGY --epochs 2 --seed 3 --data-mode local`.
async fn train_two_epochs(url: &str, strategy: &Path) -> CliRun {
    ktrdr_line(
        url,
        &format!(
            "--json train {} --epochs 2 --seed 3 --data-mode local",
            strategy.display()
        ),
    )
    .await
}

#[tokio::test]
async fn train_loads_then_trains_and_prints_the_metrics() {
    let (stack, strategy) = training_stack().await;
    let url = stack.gateway.url();
    let run = train_two_epochs(&url, &strategy).await;
    assert_eq!(run.code, Some(0), "{run}");
    let events = run.json_lines();
    let started = events
        .iter()
        .find(|e| e["event"] == "training_started")
        .unwrap_or_else(|| panic!("no training_started\n{run}"));
    let session_id = started["session_id"].as_str().unwrap();
    assert_eq!(
        events.iter().filter(|e| e["event"] == "epoch").count(),
        2,
        "{run}"
    );
    let last = events.last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["to"].as_str()),
        (Some("state_changed"), Some("COMPLETED"))
    );
    assert_eq!(last["session_id"], session_id);

    let run = ktrdr_line(
        &url,
        &format!("train {} --epochs 1 --data-mode local", strategy.display()),
    )
    .await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("COMPLETED: model tiny_rsi/"), "{run}");
}

/// 600 hourly bars split 70/15/15 leave the validation split under the threshold of
/// `ktrdr_strategy::dataset::MIN_SELECTION_ROWS` (100) rows.
#[tokio::test]
async fn train_reports_rows_and_labels_per_split_and_warns_of_a_tiny_validation_split() {
    let (stack, strategy) = training_stack().await;
    let url = stack.gateway.url();
    let args = [
        "train",
        strategy.to_str().unwrap(),
        "--epochs",
        "1",
        "--data-mode",
        "local",
    ];
    let run = ktrdr(&url, &args).await;
    assert_eq!(run.code, Some(0), "{run}");
    for split in ["train", "validation", "test"] {
        assert!(run.stdout.contains(&format!("split {split}: ")), "{run}");
    }
    assert!(
        run.stderr.contains("warning: the validation split has"),
        "{run}"
    );
    assert!(run.stderr.contains("(fewer than 100)"), "{run}");

    let json_args: Vec<&str> = std::iter::once("--json").chain(args).collect();
    let run = ktrdr(&url, &json_args).await;
    assert_eq!(run.code, Some(0), "{run}");
    let events = run.json_lines();
    let split = events
        .iter()
        .find(|e| e["event"] == "data_split")
        .unwrap_or_else(|| panic!("no data_split event\n{run}"));
    let validation = &split["validation"];
    let rows = validation["rows"].as_i64().unwrap();
    assert!(rows > 0 && rows < 100, "{split}");
    assert_eq!(
        validation["buy"].as_i64().unwrap()
            + validation["hold"].as_i64().unwrap()
            + validation["sell"].as_i64().unwrap(),
        rows
    );
    assert!(split["train"]["rows"].as_i64().unwrap() > rows);
    let warnings = split["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .starts_with(&format!("the validation split has {rows} labelled rows"))),
        "{split}"
    );
    // The split is reported before training starts.
    let split_at = events.iter().position(|e| e["event"] == "data_split");
    let first_epoch = events.iter().position(|e| e["event"] == "epoch");
    assert!(split_at < first_epoch, "{run}");
}

#[tokio::test]
async fn ctrl_c_during_train_cancels_the_session_and_exits_130() {
    let (stack, strategy) = training_stack().await;
    let url = stack.gateway.url();
    let mut cli = RunningCli::spawn(
        &url,
        &[
            "--json",
            "train",
            strategy.to_str().unwrap(),
            "--epochs",
            "10000",
            "--batch-size",
            "4",
            "--data-mode",
            "local",
        ],
    );
    let session_id = loop {
        let event = cli
            .next_json_line()
            .await
            .expect("a training_started event");
        if event["event"] == "training_started" {
            break event["session_id"].as_str().unwrap().to_owned();
        }
    };
    let (last, run) = cli.ctrl_c().await;
    assert_eq!(last["session_id"], session_id.as_str(), "{run}");

    let mut training = TrainingServiceClient::new(stack.gateway.channel().await);
    let session = get(&mut training, &session_id).await;
    assert_eq!(session.state(), TrainingState::Cancelled);
}

/// True when the PNG at `path` has at least two different pixels (a page, not a blank canvas).
fn png_is_not_one_colour(path: &Path) -> bool {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let pixel = frame.color_type.samples() * usize::from(frame.bit_depth as u8).div_ceil(8);
    let pixels = &pixels[..frame.buffer_size()];
    let first = &pixels[..pixel];
    pixels.chunks_exact(pixel).any(|p| p != first)
}

/// Renders `html` with headless Chromium into `png`; false (with a note) when Chromium is not
/// installed (`.ci/run` installs the Debian package).
fn screenshot(html: &Path, png: &Path) -> bool {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        std::process::Command::new("which")
            .arg(c)
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        println!("note: chromium is not installed; the report's screenshot check is skipped");
        return false;
    };
    let status = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            &format!("--screenshot={}", png.display()),
            "--window-size=1200,900",
            &format!("file://{}", html.display()),
        ])
        .stdin(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "chromium failed: {status}");
    true
}

/// A model trained through the stack, backtested with the CLI: JSON Lines ending in the
/// summary and the files written, the trades as CSV (a header and one line per trade), the
/// equity curve as Arrow IPC (one row per bar), a self-contained HTML report (inline SVG, no
/// script), and headless Chromium's screenshot of it non-blank; then the same result through
/// `backtest show` and `backtest list`, the text table, and a bad setting named by its flag.
#[tokio::test]
async fn backtest_writes_metrics_trades_equity_and_a_self_contained_report() {
    let (stack, strategy) = training_stack().await;
    let url = stack.gateway.url();
    let trained = train_two_epochs(&url, &strategy).await;
    assert_eq!(trained.code, Some(0), "{trained}");
    let model_id = trained
        .json_lines()
        .iter()
        .find(|e| e["event"] == "model_saved")
        .map(|e| e["model_id"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no model_saved event\n{trained}"));

    let out = tempfile::tempdir().unwrap();
    let trades = out.path().join("t.csv");
    let equity = out.path().join("e.arrow");
    let report = out.path().join("r.html");
    let (start, end) = ((T0 + 300 * HOUR).to_string(), (T0 + 600 * HOUR).to_string());
    let window = [
        "--start",
        start.as_str(),
        "--end",
        end.as_str(),
        "--local",
        "--allow-training-overlap",
        "--confidence",
        "0",
        "--min-time-between",
        "0s",
        "--allow-shorts",
        "--reverse",
    ];
    let files = [
        "--trades",
        trades.to_str().unwrap(),
        "--equity",
        equity.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ];
    let args = [
        &["--json", "backtest", model_id.as_str()][..],
        &window,
        &files,
    ]
    .concat();
    let run = ktrdr(&url, &args).await;
    assert_eq!(run.code, Some(0), "{run}");
    let events = run.json_lines();
    assert_eq!(events[0]["event"], "started", "{run}");
    let summary = events
        .iter()
        .find(|e| e["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary\n{run}"));
    assert_eq!(summary["state"], "COMPLETED", "{run}");
    let result = &summary["results"][0];
    let backtest_id = result["backtest_id"].as_str().unwrap();
    assert_eq!(result["symbol"], "EURUSD");
    assert_eq!(result["overlaps_training"], true);
    let trade_count = result["metrics"]["trades"].as_u64().unwrap() as usize;
    let bars = result["bars"].as_u64().unwrap() as usize;
    assert_eq!(bars, 300, "{run}");
    let written = events.last().unwrap();
    assert_eq!(written["event"], "files_written", "{run}");
    assert_eq!(written["files"]["report"], report.to_str().unwrap());

    let csv = std::fs::read_to_string(&trades).unwrap();
    let mut lines = csv.lines();
    assert!(
        lines.next().unwrap().starts_with("side,units,signal_time,"),
        "{csv}"
    );
    assert_eq!(lines.count(), trade_count, "{csv}");
    let equity_rows: usize =
        ktrdr_market::arrow::ipc_to_record_batches(&std::fs::read(&equity).unwrap())
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
    assert_eq!(equity_rows, bars);
    let page = std::fs::read_to_string(&report).unwrap();
    assert_eq!(page.matches("<svg").count(), 3);
    assert!(!page.contains("<script"), "the report runs no script");
    assert!(page.contains(backtest_id));
    assert_eq!(
        page.matches("<tr><td>").count(),
        trade_count,
        "one row per trade"
    );
    let shot = out.path().join("r.png");
    if screenshot(&report, &shot) {
        assert!(png_is_not_one_colour(&shot), "the screenshot is blank");
    }

    let shown = ktrdr(&url, &["--json", "backtest", "show", backtest_id]).await;
    assert_eq!(shown.code, Some(0), "{shown}");
    assert_eq!(shown.json()["metrics"], result["metrics"]);
    let listed = ktrdr(&url, &["--json", "backtest", "list", "--symbol", "eurusd"]).await;
    assert_eq!(listed.code, Some(0), "{listed}");
    assert!(
        listed.json()["backtests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["backtest_id"] == backtest_id),
        "{listed}"
    );

    // Text: progress lines, then one metrics column for the symbol and its backtest id.
    let text = ktrdr(
        &url,
        &[&["backtest", model_id.as_str()][..], &window].concat(),
    )
    .await;
    assert_eq!(text.code, Some(0), "{text}");
    for row in [
        "Return",
        "Buy & Hold",
        "Sharpe",
        "Max DD",
        "# Trades",
        "Signals executed",
    ] {
        assert!(text.stdout.contains(row), "no {row} row\n{text}");
    }
    assert!(text.stdout.contains("COMPLETED"), "{text}");

    let bad = ktrdr(
        &url,
        &[
            &["backtest", model_id.as_str()][..],
            &window,
            &["--commission", "-1"],
        ]
        .concat(),
    )
    .await;
    assert_eq!(bad.code, Some(4), "{bad}");
    assert!(bad.stderr.contains("--commission"), "{bad}");
    let unknown = ktrdr(&url, &["backtest", "cancel", "no-such-job"]).await;
    assert_eq!(unknown.code, Some(4), "{unknown}");
}

/// Walk-forward flags over the 600 stored bars (2024-01-01 to 2024-01-26): 13-day training
/// windows, each followed by a 6-day out-of-sample window.
const WALK_FORWARD: [&str; 9] = [
    "--start",
    "2024-01-01",
    "--end",
    "2024-01-26",
    "--local",
    "--train-window",
    "13d",
    "--test-window",
    "6d",
];

/// A strategy file with --train-window/--test-window: the gateway trains a model per window
/// (rolling) and backtests each on the window after it; the CLI prints a line per trained
/// window, then the stitched result with one fold per window.
#[tokio::test]
async fn backtest_walks_forward_a_strategy_file_window_by_window() {
    let (stack, strategy) = training_stack().await;
    let url = stack.gateway.url();
    let args = [
        &["backtest", strategy.to_str().unwrap()][..],
        &WALK_FORWARD,
        &["--epochs", "1", "--seed", "5"],
    ]
    .concat();
    let run = ktrdr(&url, &args).await;
    assert_eq!(run.code, Some(0), "{run}");
    // Out-of-sample windows from day 13 to day 25 in steps of 6 days: two.
    assert!(
        run.stdout.contains("window 1/2: trained tiny_rsi/"),
        "{run}"
    );
    assert!(
        run.stdout.contains("window 2/2: trained tiny_rsi/"),
        "{run}"
    );
    assert!(run.stdout.contains("EURUSD window 2:"), "{run}");
    assert!(run.stdout.contains("COMPLETED"), "{run}");
}

/// Ctrl+C while a walk-forward trains its first window cancels the backtest job on the server
/// (CancelBacktestJob) and exits 130 with an `interrupted` line naming the job.
#[tokio::test]
async fn ctrl_c_during_a_backtest_cancels_the_job_and_exits_130() {
    let (stack, strategy) = training_stack().await;
    let url = stack.gateway.url();
    let args = [
        &["--json", "backtest", strategy.to_str().unwrap()][..],
        &WALK_FORWARD,
        &["--epochs", "100000"],
    ]
    .concat();
    let mut cli = RunningCli::spawn(&url, &args);
    let job_id = started_job_id(&mut cli).await;
    let (last, run) = cli.ctrl_c().await;
    assert_eq!(last["job_id"], job_id.as_str(), "{run}");
    assert_eq!(last["state"], "CANCELLED", "{run}");
    let job = GatewayServiceClient::new(stack.gateway.channel().await)
        .get_backtest_job(GetBacktestJobRequest { job_id })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.state(), JobState::Cancelled);
}

/// The id in the `started` event of a `ktrdr --json backtest` run.
async fn started_job_id(cli: &mut RunningCli) -> String {
    loop {
        let event = cli.next_json_line().await.expect("a started event");
        if event["event"] == "started" {
            return event["job_id"].as_str().unwrap().to_owned();
        }
    }
}

/// `backtest jobs` lists the gateway's jobs newest first (and by state); `backtest watch`
/// replays a finished job to its summary and writes its files, and Ctrl+C while watching a
/// running job stops the watching only.
#[tokio::test]
async fn backtest_jobs_lists_the_gateways_jobs_and_watch_follows_one_without_owning_it() {
    let (stack, strategy) = training_stack().await;
    let url = stack.gateway.url();
    let walk_forward = |epochs: &'static str| {
        [
            &["--json", "backtest", strategy.to_str().unwrap()][..],
            &WALK_FORWARD,
            &["--epochs", epochs, "--seed", "5"],
        ]
        .concat()
    };
    let mut finished = RunningCli::spawn(&url, &walk_forward("1"));
    let done_id = started_job_id(&mut finished).await;
    let done = finished.finish().await;
    assert_eq!(done.code, Some(0), "{done}");
    let mut running = RunningCli::spawn(&url, &walk_forward("100000"));
    let running_id = started_job_id(&mut running).await;

    let jobs = ktrdr(&url, &["--json", "backtest", "jobs"]).await.json();
    let rows: Vec<(&str, &str)> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["job_id"].as_str().unwrap(), j["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [
            (running_id.as_str(), "RUNNING"),
            (done_id.as_str(), "COMPLETED")
        ]
    );
    let completed = ktrdr(
        &url,
        &["--json", "backtest", "jobs", "--state", "completed"],
    )
    .await
    .json();
    assert_eq!(
        completed["jobs"].as_array().unwrap().len(),
        1,
        "{completed}"
    );
    let table = ktrdr(&url, &["backtest", "jobs"]).await;
    assert!(table.stdout.contains(&running_id), "{table}");

    let out = tempfile::tempdir().unwrap();
    let trades = out.path().join("t.csv");
    let watched = ktrdr(
        &url,
        &[
            "backtest",
            "watch",
            &done_id,
            "--trades",
            trades.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(watched.code, Some(0), "{watched}");
    assert!(watched.stdout.contains("COMPLETED"), "{watched}");
    let csv = std::fs::read_to_string(&trades).unwrap();
    assert!(csv.starts_with("side,units,"), "{csv}");

    let mut watcher = RunningCli::spawn(&url, &["--json", "backtest", "watch", &running_id]);
    let first = watcher
        .next_json_line()
        .await
        .expect("the replayed started event");
    assert_eq!(first["event"], "started", "{first}");
    watcher.interrupt();
    let stopped = watcher.finish().await;
    assert_eq!(stopped.code, Some(130), "{stopped}");
    assert!(stopped.stderr.contains("goes on"), "{stopped}");
    let mut gateway = GatewayServiceClient::new(stack.gateway.channel().await);
    let job = gateway
        .get_backtest_job(GetBacktestJobRequest {
            job_id: running_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.state(), JobState::Running);

    let (last, run) = running.ctrl_c().await;
    assert_eq!(last["state"], "CANCELLED", "{run}");
}

#[tokio::test]
async fn a_sweep_prints_its_points_ranked_by_validation_loss_and_names_the_best_model() {
    let (stack, strategy) = training_stack().await;
    let url = stack.gateway.url();
    let args = [
        "train",
        strategy.to_str().unwrap(),
        "--sweep",
        "hidden=8x4,16",
        "--sweep",
        "learning_rate=0.01,0.05",
        "--epochs",
        "1",
        "--seed",
        "5",
        "--data-mode",
        "local",
    ];
    let run = ktrdr(&url, &args).await;
    assert_eq!(run.code, Some(0), "{run}");
    let table: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("rank"))
        .collect();
    assert_eq!(table.len(), 6, "header, 4 points, best\n{run}");
    for (i, row) in table[1..5].iter().enumerate() {
        assert!(
            row.trim_start().starts_with(&format!("{} ", i + 1)),
            "ranked rows in order\n{run}"
        );
        assert!(
            row.contains("COMPLETED") && row.contains("tiny_rsi/"),
            "{run}"
        );
    }
    assert!(table[5].starts_with("best: point "), "{run}");

    let json_args: Vec<&str> = std::iter::once("--json").chain(args).collect();
    let run = ktrdr(&url, &json_args).await;
    assert_eq!(run.code, Some(0), "{run}");
    let events = run.json_lines();
    let started = events.iter().filter(|e| e["event"] == "training_started");
    let points: Vec<i64> = started.map(|e| e["point"].as_i64().unwrap()).collect();
    assert_eq!(points.len(), 4, "{run}");
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "sweep_summary", "{run}");
    assert_eq!(summary["state"], "COMPLETED");
    let ranked = summary["points"].as_array().unwrap();
    let losses: Vec<f64> = ranked
        .iter()
        .map(|p| p["metrics"]["val_loss"].as_f64().unwrap())
        .collect();
    assert!(losses.windows(2).all(|w| w[0] <= w[1]), "{losses:?}");
    assert_eq!(summary["best_model_id"], ranked[0]["model_id"]);
    let settings: Vec<(Vec<i64>, f64)> = ranked
        .iter()
        .map(|p| {
            let hidden = p["hidden_layers"].as_array().unwrap();
            (
                hidden.iter().map(|h| h.as_i64().unwrap()).collect(),
                p["learning_rate"].as_f64().unwrap(),
            )
        })
        .collect();
    for expected in [
        (vec![8, 4], 0.01),
        (vec![8, 4], 0.05),
        (vec![16], 0.01),
        (vec![16], 0.05),
    ] {
        assert!(settings.contains(&expected), "{settings:?}");
    }

    // A grid over the server's limit is refused before anything starts, naming the flag.
    let many: String = (1..=20)
        .map(|i| format!("0.{i:03}"))
        .collect::<Vec<_>>()
        .join(",");
    let sweep = format!("learning_rate={many}");
    let run = ktrdr(
        &url,
        &[
            "train",
            strategy.to_str().unwrap(),
            "--sweep",
            &sweep,
            "--seeds",
            "13",
            "--data-mode",
            "local",
        ],
    )
    .await;
    assert_eq!(run.code, Some(4), "{run}");
    assert!(run.stderr.contains("--sweep"), "{run}");
    assert!(run.stderr.contains("260 points (20 × 13)"), "{run}");
}
