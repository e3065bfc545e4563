//! Rendering results: aligned text tables for people, JSON and CSV for scripts.
//!
//! `--json` prints exactly one JSON document on stdout for one-shot commands; streaming
//! commands (`data load`, `train`, `trainings watch`, `backtest`) print one JSON object per line
//! (JSON Lines).
//!
//! Everything the CLI prints goes through this module, never `println!`/`eprintln!` (which
//! panic when the reader has gone): stdout writes return their error, and a closed pipe ends the
//! command quietly with 0 ([`crate::CliError::is_closed_pipe`]); stderr writes are best effort.

use std::io::Write;

use crate::error::CliError;

/// How tabular results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for reading.
    Table,
    /// One JSON document.
    Json,
    /// Comma-separated values with a header line.
    Csv,
}

/// A table of text cells; numbers are right-aligned when every cell of a column is numeric.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as aligned text, two spaces between columns, no trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        // A column is right-aligned when every cell is a number or "-", and one is a number.
        let mut numeric = vec![true; columns];
        let mut has_number = vec![false; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
                numeric[i] &= cell == "-" || looks_numeric(cell);
                has_number[i] |= looks_numeric(cell);
            }
        }
        for (numeric, has_number) in numeric.iter_mut().zip(has_number) {
            *numeric &= has_number;
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate().take(columns) {
                if i > 0 {
                    text.push_str("  ");
                }
                let pad = widths[i].saturating_sub(cell.chars().count());
                if numeric[i] {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&self.header);
        for row in &self.rows {
            line(row);
        }
        out
    }

    /// The table as CSV (RFC 4180 quoting where needed).
    pub fn render_csv(&self) -> String {
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }
}

fn looks_numeric(cell: &str) -> bool {
    cell.parse::<f64>().is_ok() || cell.trim_end_matches('%').parse::<f64>().is_ok()
}

fn csv_cell(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
}

/// Writes `text` to stdout as is.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Writes `text` and a newline to stderr; best effort (a closed stderr loses the note, nothing
/// more).
pub fn note(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
    let _ = stderr.flush();
}

/// Writes one JSON document (pretty) to stdout.
pub fn print_json(value: &serde_json::Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Failed(format!("cannot encode the JSON output: {e}")))?;
    print(&format!("{text}\n"))
}

/// Writes one JSON object on one line to stdout (streams: JSON Lines).
pub fn print_json_line(value: &serde_json::Value) -> Result<(), CliError> {
    print(&format!("{value}\n"))
}

/// Prints one line of progress text on stdout, above any progress bar (which is hidden while it
/// prints). Lines go to stdout whether or not stderr is a terminal, so logs and pipes keep them.
pub fn say(bar: &indicatif::ProgressBar, text: &str) {
    bar.suspend(|| {
        let mut stdout = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) must not abort the command over a progress line.
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    });
}

/// Prints `warning: <text>` on stderr, above any progress bar: warnings reach the user in
/// text and JSON mode alike without mixing into stdout's output.
pub fn warn(bar: &indicatif::ProgressBar, text: &str) {
    bar.suspend(|| {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "warning: {text}");
        let _ = stderr.flush();
    });
}

/// [`say`] for a group of bars.
pub fn say_multi(bars: &indicatif::MultiProgress, text: &str) {
    bars.suspend(|| {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    });
}

/// A price or other float as the shortest text that reads back to the same value.
pub fn number(value: f64) -> String {
    format!("{value}")
}

/// A fraction 0–1 as a percentage with one decimal: `61.2%`.
pub fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

/// Bytes for humans: `812 B`, `1.4 MiB`.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_text_left_and_numbers_right() {
        let mut table = Table::new(["symbol", "bars"]);
        table.row(["AAPL", "5"]);
        table.row(["EURUSD", "1200"]);
        assert_eq!(table.render(), "symbol  bars\nAAPL       5\nEURUSD  1200\n");
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        let mut table = Table::new(["a", "b"]);
        table.row(["x,y", "say \"hi\""]);
        assert_eq!(table.render_csv(), "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(812), "812 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(percent(0.6123), "61.2%");
    }
}
