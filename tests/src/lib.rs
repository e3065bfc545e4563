//! Helpers for the cross-service tests: start a real ktrdr binary on a free loopback port, wait
//! until it listens, talk gRPC to it, stop it with a signal.
//!
//! The binaries are found next to the test executable (`target/<profile>/`), or in
//! `KTRDR_BIN_DIR`. `make test` builds them first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

pub mod bench;
pub mod fixtures;
pub mod gateway;
pub mod raw;
pub mod stack;
pub mod training;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

/// The five service binaries and the API services each one serves.
pub const SERVICE_BINARIES: &[(&str, &[&str])] = &[
    (
        "ktrdr-gateway",
        &[
            "ktrdr.gateway.v1.GatewayService",
            "ktrdr.data.v1.DataService",
            "ktrdr.training.v1.TrainingService",
            "ktrdr.ib.v1.IbHostService",
        ],
    ),
    ("ktrdr-data", &["ktrdr.data.v1.DataService"]),
    ("ktrdr-ib-host", &["ktrdr.ib.v1.IbHostService"]),
    (
        "ktrdr-training-host",
        &["ktrdr.training.v1.TrainingService"],
    ),
    ("ktrdr-ib-sim", &["ktrdr.ib.v1.IbSimService"]),
];

/// The repository's root directory (for `strategies/` and other shipped files).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Longest wait for a binary to start listening or to exit; generous for a loaded CI machine.
pub const PROCESS_WAIT: Duration = Duration::from_secs(60);

/// Where the ktrdr binaries are.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KTRDR_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // target/<profile>/deps/<test-binary> → target/<profile>
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The path of `binary`, with a clear message when it has not been built.
pub fn bin_path(binary: &str) -> PathBuf {
    let path = bin_dir().join(binary);
    assert!(
        path.is_file(),
        "{} not found: build the binaries first (`cargo build --bins`; `make test` does it) or set KTRDR_BIN_DIR",
        path.display()
    );
    path
}

/// A running service binary. Killed when dropped (under coverage, stopped: see its `Drop`).
pub struct ServiceProcess {
    pub binary: String,
    pub addr: SocketAddr,
    /// Where it serves Prometheus metrics (`KTRDR_METRICS_ADDR`; a free port unless `env` says).
    pub metrics_addr: Option<SocketAddr>,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    log_reader: Option<tokio::task::JoinHandle<()>>,
}

impl ServiceProcess {
    /// Starts `binary` listening on a free loopback port, with `env` added to the environment,
    /// and waits until it logs its address.
    pub async fn start(binary: &str, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(bin_path(binary));
        command
            .env("KTRDR_LISTEN_ADDR", "127.0.0.1:0")
            .env("KTRDR_METRICS_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .env("KTRDR_LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if under_coverage() {
            // Stopping (see `Drop`) must not wait out the default 10 s grace for the test's
            // still-open connections.
            command.env("KTRDR_SHUTDOWN_GRACE_MS", "300");
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let lines = Arc::clone(&log);
        let log_reader = tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Some(addr) = listening_addr(&line)
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = match tokio::time::timeout(PROCESS_WAIT, addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => panic!(
                "{binary} did not report a listening address; its log:\n{}",
                log.lock().unwrap().join("\n")
            ),
        };
        // The metrics line comes before the listening line.
        let metrics_addr = log.lock().unwrap().iter().find_map(|l| metrics_addr(l));
        Self {
            binary: binary.to_owned(),
            addr,
            metrics_addr,
            child,
            log,
            log_reader: Some(log_reader),
        }
    }

    /// The operating-system process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// A memory figure of `/proc/PID/status` (`VmHWM:`, `VmRSS:`), in bytes; Linux only.
    fn proc_status_bytes(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Peak resident memory so far (`VmHWM`), in bytes; Linux only.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        self.proc_status_bytes("VmHWM:")
    }

    /// Resident memory now (`VmRSS`), in bytes; Linux only.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.proc_status_bytes("VmRSS:")
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A channel to the service, connected, with the options every ktrdr client uses
    /// (`ktrdr_common::client::endpoint`).
    pub async fn channel(&self) -> Channel {
        ktrdr_common::client::endpoint(
            &self.url(),
            &ktrdr_common::client::ChannelOptions::default(),
        )
        .unwrap()
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {} at {}: {e}", self.binary, self.url()))
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("process still running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// Waits for the process to exit and for its last log lines to be read.
    pub async fn wait(&mut self) -> ExitStatus {
        let status = match tokio::time::timeout(PROCESS_WAIT, self.child.wait()).await {
            Ok(status) => status.expect("wait for child"),
            Err(_) => panic!("{} did not exit; its log:\n{}", self.binary, self.logs()),
        };
        if let Some(reader) = self.log_reader.take() {
            let _ = tokio::time::timeout(PROCESS_WAIT, reader).await;
        }
        status
    }

    /// Everything the process logged so far.
    pub fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// Whether the tests run under `make coverage` (`LLVM_PROFILE_FILE` set): services are then
/// stopped rather than killed, so they write their profiles.
fn under_coverage() -> bool {
    std::env::var_os("LLVM_PROFILE_FILE").is_some()
}

/// How long a service under coverage may take to stop before it is killed.
const COVERAGE_STOP_WAIT: Duration = Duration::from_secs(10);

impl Drop for ServiceProcess {
    /// Under coverage (`LLVM_PROFILE_FILE` set, as `make coverage` does) the process gets
    /// SIGTERM and a few seconds to exit, so it writes its profile; otherwise it is killed at
    /// once (`kill_on_drop`), as it is after the wait.
    fn drop(&mut self) {
        if !under_coverage() {
            return;
        }
        let Some(pid) = self.child.id() else {
            return;
        };
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let deadline = std::time::Instant::now() + COVERAGE_STOP_WAIT;
        while std::time::Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                _ => return,
            }
        }
    }
}

/// The address in a "… listening on 127.0.0.1:PORT" log line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The address in a "… serving metrics on http://127.0.0.1:PORT/metrics" log line.
fn metrics_addr(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("serving metrics on http://")?;
    rest.split('/').next()?.parse().ok()
}

/// Scrapes the metrics endpoint at `addr` (`GET /metrics`); returns the body.
pub async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to the metrics endpoint {addr}: {e}"));
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the sample `name{labels}` (labels as printed, in order) in a scrape, 0 if absent.
pub fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// Runs `binary` to completion with `args` and `env`; returns (exit status, stdout, stderr).
pub async fn run_to_exit(
    binary: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (ExitStatus, String, String) {
    let mut command = Command::new(bin_path(binary));
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = tokio::time::timeout(PROCESS_WAIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{binary} {args:?} did not exit"))
        .expect("run binary");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What a finished `ktrdr` run printed, and how it exited.
#[derive(Debug)]
pub struct CliRun {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// stdout as one JSON document (`--json` of a one-shot command).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{self}"))
    }

    /// stdout as JSON Lines (`--json` of a streaming command).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("line {l:?} is not JSON ({e}):\n{self}"))
            })
            .collect()
    }

    /// stderr as the one JSON error object `--json` prints there.
    pub fn stderr_json(&self) -> serde_json::Value {
        serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not one JSON object ({e}):\n{self}"))
    }
}

impl std::fmt::Display for CliRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn cli_command(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(bin_path("ktrdr"));
    command
        .args(args)
        .env("KTRDR_GATEWAY_URL", url)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs the `ktrdr` CLI against the gateway at `url` until it exits.
pub async fn ktrdr(url: &str, args: &[&str]) -> CliRun {
    ktrdr_with_env(url, args, &[]).await
}

/// [`ktrdr`] of a command line split at spaces as a shell would split it (no quoting: an
/// argument with a space goes through [`ktrdr`]).
pub async fn ktrdr_line(url: &str, line: &str) -> CliRun {
    let args: Vec<&str> = line.split_whitespace().collect();
    ktrdr(url, &args).await
}

/// [`ktrdr`] with extra environment variables (e.g. `KTRDR_AUTH_TOKEN`).
pub async fn ktrdr_with_env(url: &str, args: &[&str], env: &[(&str, &str)]) -> CliRun {
    let mut command = cli_command(url, args);
    command.envs(env.iter().copied());
    let output = tokio::time::timeout(PROCESS_WAIT * 4, command.output())
        .await
        .unwrap_or_else(|_| panic!("ktrdr {args:?} did not exit"))
        .expect("run ktrdr");
    CliRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `ktrdr` as `ktrdr … | head -N` does (with `stderr_too`: `ktrdr … 2>&1 | head -N`):
/// stdout goes into a pipe, `lines` lines are read and the pipe's read end is closed while the
/// CLI may still be writing. Returns how the CLI exited; `stdout` holds the lines read.
pub async fn ktrdr_into_head(url: &str, args: &[&str], lines: usize, stderr_too: bool) -> CliRun {
    let (reader, writer) = std::io::pipe().expect("create a pipe");
    let mut command = cli_command(url, args);
    if stderr_too {
        command.stderr(Stdio::from(writer.try_clone().expect("duplicate the pipe")));
    } else {
        command.stderr(Stdio::piped());
    }
    command.stdout(Stdio::from(writer));
    let mut child = command.spawn().expect("spawn ktrdr");
    // The command holds this process's copies of the write end; only the CLI may keep it open.
    drop(command);
    let head = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(reader);
        let mut read = Vec::new();
        for _ in 0..lines {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            read.push(line.trim_end().to_owned());
        }
        read
        // `reader` is dropped here: the read end closes, as when `head` exits.
    });
    let head = tokio::time::timeout(PROCESS_WAIT * 4, head)
        .await
        .expect("ktrdr printed nothing for too long")
        .expect("read the pipe");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = pipe.read_to_string(&mut stderr).await;
    }
    let status = tokio::time::timeout(PROCESS_WAIT, child.wait())
        .await
        .expect("ktrdr did not exit after its reader went away")
        .expect("wait for ktrdr");
    CliRun {
        code: status.code(),
        stdout: head.join("\n"),
        stderr,
    }
}

/// Stores `bars` as the dataset `symbol` `timeframe` through the DataService at `channel` (the
/// data service's or the gateway's).
pub async fn store_bars(
    channel: Channel,
    symbol: &str,
    timeframe: &str,
    bars: ktrdr_proto::common::v1::BarColumns,
) -> ktrdr_proto::data::v1::WriteBarsResponse {
    use ktrdr_proto::common::v1::{BarBatch, bar_batch};
    use ktrdr_proto::data::v1::WriteBarsRequest;
    use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
    DataServiceClient::new(channel)
        .max_encoding_message_size(usize::MAX)
        .write_bars(tokio_stream::iter([WriteBarsRequest {
            batch: Some(BarBatch {
                symbol: symbol.into(),
                timeframe: timeframe.into(),
                payload: Some(bar_batch::Payload::Columns(bars)),
                bar_count: 0,
            }),
            ..Default::default()
        }]))
        .await
        .expect("WriteBars")
        .into_inner()
}

/// Stores what [`fixtures::TINY_STRATEGY`] trains on: 600 trending EURUSD hourly bars.
pub async fn store_training_bars(channel: Channel) {
    let bars = fixtures::trending_hourly_bars(600, 7);
    store_bars(channel, "EURUSD", "1h", bars).await;
}

/// Every stored bar of the dataset `symbol` `timeframe`, read through the DataService at
/// `channel` (the data service's or the gateway's).
pub async fn read_bars(
    channel: Channel,
    symbol: &str,
    timeframe: &str,
) -> ktrdr_proto::common::v1::BarColumns {
    use ktrdr_market::Bars;
    use ktrdr_proto::bars::BarsProto;
    use ktrdr_proto::data::v1::ReadBarsRequest;
    use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
    let mut stream = DataServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .read_bars(ReadBarsRequest {
            symbol: symbol.into(),
            timeframe: timeframe.into(),
            ..Default::default()
        })
        .await
        .expect("ReadBars")
        .into_inner();
    let mut all = Bars::default();
    while let Some(item) = stream.message().await.expect("ReadBars streams") {
        let batch = item.batch.expect("a batch");
        all.extend(&Bars::from_batch_payload(batch.payload).expect("well-formed bars"));
    }
    all.into_columns()
}

/// A `ktrdr` command still running (streams; Ctrl+C tests): read its stdout line by line,
/// interrupt it, collect the rest.
pub struct RunningCli {
    child: Child,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    seen: Vec<String>,
}

impl RunningCli {
    pub fn spawn(url: &str, args: &[&str]) -> Self {
        let mut command = cli_command(url, args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn ktrdr");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Self {
            child,
            stdout,
            seen: Vec::new(),
        }
    }

    /// The next stdout line as JSON; `None` at the end of the output.
    pub async fn next_json_line(&mut self) -> Option<serde_json::Value> {
        let line = tokio::time::timeout(PROCESS_WAIT * 4, self.stdout.next_line())
            .await
            .expect("ktrdr printed nothing for too long")
            .expect("read ktrdr stdout")?;
        self.seen.push(line.clone());
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}")))
    }

    /// Sends SIGINT, as Ctrl+C in a terminal does.
    pub fn interrupt(&self) {
        let pid = self.child.id().expect("ktrdr still running");
        let status = std::process::Command::new("kill")
            .arg("-INT")
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT {pid} failed");
    }

    /// Ctrl+C: interrupts the command and checks that it exits 130 with an `interrupted` event
    /// last; that event, and the whole run.
    pub async fn ctrl_c(self) -> (serde_json::Value, CliRun) {
        self.interrupt();
        let run = self.finish().await;
        assert_eq!(run.code, Some(130), "{run}");
        let last = run.json_lines().pop().unwrap_or_default();
        assert_eq!(last["event"], "interrupted", "{run}");
        (last, run)
    }

    /// Waits for the exit; everything printed (stdout lines already read included).
    pub async fn finish(mut self) -> CliRun {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = tokio::time::timeout(PROCESS_WAIT * 4, self.stdout.next_line())
            .await
            .expect("ktrdr did not close its stdout")
        {
            rest.push(line);
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = pipe.read_to_string(&mut stderr).await;
        }
        let status = tokio::time::timeout(PROCESS_WAIT, self.child.wait())
            .await
            .expect("ktrdr did not exit")
            .expect("wait for ktrdr");
        self.seen.extend(rest);
        CliRun {
            code: status.code(),
            stdout: self.seen.join("\n"),
            stderr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_the_listening_line() {
        let line = "2026-11-28T08:00:00Z  INFO ktrdr_common::server: ktrdr-data listening on 127.0.0.1:41234 addr=127.0.0.1:41234";
        assert_eq!(
            listening_addr(line),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(listening_addr("nothing here"), None);
        let line = "INFO ktrdr_common::server: ktrdr-data serving metrics on http://127.0.0.1:41235/metrics addr=127.0.0.1:41235";
        assert_eq!(metrics_addr(line), Some("127.0.0.1:41235".parse().unwrap()));
        assert_eq!(listening_addr(line), None);
    }

    #[test]
    fn reads_a_sample_by_series() {
        let scrape = "# TYPE a counter\na_total{x=\"1\"} 3\na_total{x=\"2\"} 5\n# EOF\n";
        assert_eq!(sample(scrape, "a_total{x=\"2\"}"), 5.0);
        assert_eq!(sample(scrape, "a_total{x=\"3\"}"), 0.0);
    }
}
