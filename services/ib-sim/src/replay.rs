//! Bars replayed from CSV files instead of generated: `<dir>/<SYMBOL>_<tf>.csv` in the original
//! ktrdr format (first column the UTC bar time, `2024-01-02T14:30:00Z`,
//! `2024-01-02 14:30:00+00:00` or `2024-01-02`; then open, high, low, close, volume).
//! A contract with a file for the requested bar size is served from the file; everything else
//! still comes from the generator.

use std::collections::HashMap;
use std::path::Path;

use time::{Date, PrimitiveDateTime, Time};

use crate::market::{Bar, BarSize, BarTime, SimContract};

/// One row: bar time (unix seconds) and open, high, low, close, volume.
type Row = (i64, [f64; 5]);

/// Every replayed file's rows, ascending by time, by (ktrdr symbol, bar size).
#[derive(Debug, Clone, Default)]
pub struct Replay {
    series: HashMap<(String, BarSize), Vec<Row>>,
}

/// ktrdr's timeframe names for IB bar sizes.
fn timeframe(bar: BarSize) -> Option<&'static str> {
    Some(match bar {
        BarSize::Seconds(60) => "1m",
        BarSize::Seconds(300) => "5m",
        BarSize::Seconds(900) => "15m",
        BarSize::Seconds(1800) => "30m",
        BarSize::Seconds(3600) => "1h",
        BarSize::Seconds(14_400) => "4h",
        BarSize::Day => "1d",
        BarSize::Week => "1w",
        _ => return None,
    })
}

const BAR_SIZES: &[BarSize] = &[
    BarSize::Seconds(60),
    BarSize::Seconds(300),
    BarSize::Seconds(900),
    BarSize::Seconds(1800),
    BarSize::Seconds(3600),
    BarSize::Seconds(14_400),
    BarSize::Day,
    BarSize::Week,
];

/// ktrdr's symbol for a contract: "AAPL", "EURUSD", "ES".
pub fn ktrdr_symbol(c: &SimContract) -> String {
    if c.sec_type == "CASH" {
        c.local_symbol.replace('.', "")
    } else {
        c.symbol.to_owned()
    }
}

fn parse_time(raw: &str) -> Option<i64> {
    let raw = raw.trim().trim_matches('"');
    let raw = raw
        .strip_suffix('Z')
        .or_else(|| raw.strip_suffix("+00:00"))
        .unwrap_or(raw);
    let (date, clock) = match raw.split_once(['T', ' ']) {
        Some((d, c)) => (d, Some(c)),
        None => (raw, None),
    };
    let mut parts = date.split('-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    let date = Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let time = match clock {
        None => Time::MIDNIGHT,
        Some(c) => {
            let mut p = c.split(':');
            let h: u8 = p.next()?.parse().ok()?;
            let m: u8 = p.next()?.parse().ok()?;
            let s: f64 = p.next().unwrap_or("0").parse().ok()?;
            Time::from_hms(h, m, s as u8).ok()?
        }
    };
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

fn parse_csv(text: &str) -> Result<Vec<Row>, String> {
    let mut rows = vec![];
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').collect();
        let Some(t) = cells.first().and_then(|c| parse_time(c)) else {
            if n == 0 {
                continue; // the header
            }
            return Err(format!(
                "line {}: unreadable time {:?}",
                n + 1,
                cells.first()
            ));
        };
        let mut v = [0.0; 5];
        for (i, slot) in v.iter_mut().enumerate() {
            *slot = cells
                .get(i + 1)
                .and_then(|c| c.trim().parse().ok())
                .ok_or_else(|| format!("line {}: column {} is not a number", n + 1, i + 2))?;
        }
        rows.push((t, v));
    }
    rows.sort_by_key(|r| r.0);
    rows.dedup_by_key(|r| r.0);
    Ok(rows)
}

impl Replay {
    /// Reads every `<SYMBOL>_<tf>.csv` of `dir` that names a known contract.
    pub fn load(dir: &Path, contracts: &[SimContract]) -> Result<Self, String> {
        let mut replay = Self::default();
        for c in contracts {
            let symbol = ktrdr_symbol(c);
            for bar in BAR_SIZES {
                let Some(tf) = timeframe(*bar) else { continue };
                let path = dir.join(format!("{symbol}_{tf}.csv"));
                if !path.is_file() {
                    continue;
                }
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let rows = parse_csv(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                tracing::info!(file = %path.display(), bars = rows.len(), "replaying bars");
                replay.series.insert((symbol.clone(), *bar), rows);
            }
        }
        Ok(replay)
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The earliest replayed bar of a contract, if any.
    pub fn head(&self, c: &SimContract) -> Option<i64> {
        let symbol = ktrdr_symbol(c);
        self.series
            .iter()
            .filter(|((s, _), _)| *s == symbol)
            .filter_map(|(_, rows)| rows.first().map(|r| r.0))
            .min()
    }

    /// The replayed bars in `[start, end)`, or `None` when the contract has no file for the
    /// bar size.
    pub fn bars(&self, c: &SimContract, bar: BarSize, start: i64, end: i64) -> Option<Vec<Bar>> {
        let rows = self.series.get(&(ktrdr_symbol(c), bar))?;
        let from = rows.partition_point(|r| r.0 < start);
        let to = rows.partition_point(|r| r.0 < end);
        Some(
            rows[from..to]
                .iter()
                .map(|(t, [open, high, low, close, volume])| Bar {
                    time: match bar {
                        BarSize::Seconds(_) => BarTime::Unix(*t),
                        _ => BarTime::Date(
                            time::OffsetDateTime::from_unix_timestamp(*t)
                                .map(|d| d.date())
                                .unwrap_or(Date::MIN),
                        ),
                    },
                    open: *open,
                    high: *high,
                    low: *low,
                    close: *close,
                    volume: *volume,
                    wap: (open + high + low + close) / 4.0,
                    count: -1,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_the_original_csv_format() {
        let dir = std::env::temp_dir().join(format!("ktrdr-ib-sim-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("AAPL_1h.csv"),
            "date,open,high,low,close,volume\n\
             2024-01-02T15:00:00Z,10,11,9,10.5,1000\n\
             2024-01-02T14:30:00Z,9.5,10,9,10,2000\n\
             2024-01-02 16:00:00+00:00,10.5,12,10,11,500\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("EURUSD_1d.csv"),
            ",open,high,low,close,volume\n2024-01-02,1.1,1.2,1.0,1.15,-1\n",
        )
        .unwrap();
        let contracts = crate::market::contracts();
        let replay = Replay::load(&dir, &contracts).unwrap();
        let aapl = &contracts[0];
        let t0 = parse_time("2024-01-02T14:30:00Z").unwrap();
        let bars = replay
            .bars(aapl, BarSize::Seconds(3600), t0, t0 + 3600)
            .unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].time, BarTime::Unix(t0));
        assert_eq!(bars[0].volume, 2000.0);
        assert_eq!(replay.head(aapl), Some(t0));
        assert!(
            replay
                .bars(aapl, BarSize::Seconds(60), 0, i64::MAX)
                .is_none()
        );
        let eur = contracts
            .iter()
            .find(|c| c.local_symbol == "EUR.USD")
            .unwrap();
        let daily = replay.bars(eur, BarSize::Day, 0, i64::MAX).unwrap();
        assert!(matches!(daily[0].time, BarTime::Date(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
