//! `ktrdr train … --sweep PARAM=V1,V2 --seeds N`: the grid flags turned into a
//! `TrainingSweep`, and the sweep's events drawn as one bar over its points, a line per point
//! and a final table ranked by validation loss.
//!
//! Invariants: a flag the CLI can judge alone (an unknown parameter, an empty list, a value
//! that is not a number, a parameter given twice) is a usage error naming `--sweep`; the
//! limits (points, value ranges) are the server's, whose answers name the flags too.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ktrdr_proto::common::v1::JobState;
use ktrdr_proto::gateway::v1::{
    HiddenLayers, SweepPoint, SweepProgress, SweepStarted, SweepSummary, TrainingStarted,
    TrainingSweep,
};
use ktrdr_proto::training::v1::TrainingEvent;
use serde_json::json;

use crate::error::CliError;
use crate::json::{self as to_json, job_state, training_state};
use crate::output::{Table, percent, print, print_json_line, say};
use crate::time::human_duration;

/// The parameters `--sweep` accepts, as the user spells them.
const PARAMETERS: &str = "hidden (layer sizes, e.g. 64x32), learning_rate, batch_size, epochs";

/// One `--sweep PARAM=V1,V2,…` flag.
#[derive(Debug, Clone, PartialEq)]
pub enum SweepAxis {
    Hidden(Vec<HiddenLayers>),
    LearningRate(Vec<f64>),
    BatchSize(Vec<i32>),
    Epochs(Vec<i32>),
}

impl SweepAxis {
    fn name(&self) -> &'static str {
        match self {
            SweepAxis::Hidden(_) => "hidden",
            SweepAxis::LearningRate(_) => "learning_rate",
            SweepAxis::BatchSize(_) => "batch_size",
            SweepAxis::Epochs(_) => "epochs",
        }
    }
}

fn numbers<T: std::str::FromStr>(name: &str, values: &[&str]) -> Result<Vec<T>, String> {
    values
        .iter()
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| format!("{name} value {v:?} is not a number"))
        })
        .collect()
}

/// Parses `PARAM=V1,V2,…` (clap's value parser for `--sweep`).
pub fn parse_sweep_axis(raw: &str) -> Result<SweepAxis, String> {
    let Some((name, values)) = raw.split_once('=') else {
        return Err(format!(
            "expected PARAM=V1,V2,… with PARAM one of {PARAMETERS}"
        ));
    };
    let name = name.trim().to_ascii_lowercase().replace('-', "_");
    let values: Vec<&str> = values.split(',').map(str::trim).collect();
    if values.iter().any(|v| v.is_empty()) {
        return Err(format!(
            "{name} lists an empty value; give values separated by commas, e.g. {name}=…,…"
        ));
    }
    match name.as_str() {
        "hidden" | "hidden_layers" => values
            .iter()
            .map(|v| {
                v.split(['x', 'X'])
                    .map(|size| size.trim().parse::<i32>())
                    .collect::<Result<Vec<_>, _>>()
                    .map(|sizes| HiddenLayers { sizes })
                    .map_err(|_| format!("hidden value {v:?} is not layer sizes such as 64x32"))
            })
            .collect::<Result<_, _>>()
            .map(SweepAxis::Hidden),
        "learning_rate" | "lr" => numbers(&name, &values).map(SweepAxis::LearningRate),
        "batch_size" => numbers(&name, &values).map(SweepAxis::BatchSize),
        "epochs" => numbers(&name, &values).map(SweepAxis::Epochs),
        other => Err(format!(
            "unknown parameter {other:?}; sweepable: {PARAMETERS}"
        )),
    }
}

/// The sweep the flags ask for; `None` without `--sweep` and `--seeds`.
pub fn sweep_of(
    axes: &[SweepAxis],
    seeds: Option<i32>,
    parallel: Option<i32>,
) -> Result<Option<TrainingSweep>, CliError> {
    if axes.is_empty() && seeds.is_none() {
        if parallel.is_some() {
            return Err(CliError::Usage(
                "--parallel applies to sweeps: add --sweep PARAM=V1,V2 or --seeds N".to_owned(),
            ));
        }
        return Ok(None);
    }
    let mut sweep = TrainingSweep {
        seeds: seeds.unwrap_or(0),
        parallel: parallel.unwrap_or(0),
        ..TrainingSweep::default()
    };
    for (i, axis) in axes.iter().enumerate() {
        if axes[..i].iter().any(|a| a.name() == axis.name()) {
            return Err(CliError::Usage(format!(
                "--sweep gives {} twice; list all its values in one --sweep {}=…",
                axis.name(),
                axis.name()
            )));
        }
        match axis.clone() {
            SweepAxis::Hidden(v) => sweep.hidden_layers = v,
            SweepAxis::LearningRate(v) => sweep.learning_rates = v,
            SweepAxis::BatchSize(v) => sweep.batch_sizes = v,
            SweepAxis::Epochs(v) => sweep.epochs = v,
        }
    }
    Ok(Some(sweep))
}

fn hidden_text(p: &SweepPoint) -> String {
    p.hidden_layers.as_ref().map_or("-".to_owned(), |h| {
        h.sizes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("x")
    })
}

fn settings(p: &SweepPoint) -> String {
    format!(
        "hidden {}, learning rate {}, batch {}, epochs {}, seed {}",
        hidden_text(p),
        p.learning_rate,
        p.batch_size,
        p.epochs,
        p.seed
    )
}

/// Draws a sweep: one line per point as it starts and ends, one bar over the points.
pub struct SweepView {
    json: bool,
    bar: ProgressBar,
    pub sweep_id: String,
    points: Vec<SweepPoint>,
}

impl SweepView {
    pub fn new(json: bool, bars: &MultiProgress, started: &SweepStarted) -> Result<Self, CliError> {
        let bar = bars.add(ProgressBar::new(started.points.len() as u64));
        let style = ProgressStyle::with_template("{spinner} points [{bar:30}] {pos}/{len}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        let view = Self {
            json,
            bar,
            sweep_id: started.sweep_id.clone(),
            points: started.points.clone(),
        };
        if json {
            print_json_line(&json!({
                "event": "sweep_started",
                "sweep_id": started.sweep_id,
                "parallel": started.parallel,
                "points": started.points.iter().map(to_json::sweep_point).collect::<Vec<_>>(),
            }))?;
        } else {
            view.line(format!(
                "sweep {}: {} points, {} at a time — Ctrl+C cancels every session",
                started.sweep_id,
                started.points.len(),
                started.parallel
            ));
        }
        Ok(view)
    }

    fn line(&self, text: String) {
        if !self.json {
            say(&self.bar, &text);
        }
    }

    fn label(&self, point: i32) -> String {
        let settings = self
            .points
            .iter()
            .find(|p| p.point == point)
            .map(settings)
            .unwrap_or_default();
        format!("point {point}/{} ({settings})", self.points.len())
    }

    pub fn on_started(&self, point: i32, started: &TrainingStarted) -> Result<(), CliError> {
        if self.json {
            return print_json_line(&json!({
                "event": "training_started",
                "point": point,
                "session_id": started.session_id,
                "state": training_state(started.state()),
                "queue_position": started.queue_position,
                "local": started.local,
                "training_host_url": started.training_host_url,
            }));
        }
        self.line(format!(
            "{}: session {} started {}",
            self.label(point),
            started.session_id,
            if started.local {
                "in the gateway".to_owned()
            } else {
                format!("on {}", started.training_host_url)
            }
        ));
        Ok(())
    }

    /// A point's training event: a JSON line with the point; nothing on a terminal (the bar
    /// and the point's end line say enough).
    pub fn on_training(&self, point: i32, event: &TrainingEvent) -> Result<(), CliError> {
        if self.json {
            let mut line = to_json::training_event(event);
            line["point"] = point.into();
            print_json_line(&line)?;
        }
        Ok(())
    }

    pub fn on_progress(&mut self, progress: &SweepProgress) -> Result<(), CliError> {
        let Some(point) = &progress.point else {
            return Ok(());
        };
        if self.json {
            print_json_line(&json!({
                "event": "sweep_progress",
                "progress": to_json::progress(progress.progress.as_ref()),
                "point": to_json::sweep_point(point),
            }))?;
        }
        let outcome = match (&point.metrics, point.error.is_empty()) {
            (Some(m), _) if !point.model_id.is_empty() => format!(
                "validation loss {} accuracy {}; model {}",
                m.val_loss.map_or("-".to_owned(), |l| format!("{l:.4}")),
                m.val_accuracy.map_or("-".to_owned(), percent),
                point.model_id
            ),
            (_, false) => point.error.clone(),
            _ => String::new(),
        };
        self.line(format!(
            "{}: {}{}",
            self.label(point.point),
            training_state(point.state()),
            if outcome.is_empty() {
                String::new()
            } else {
                format!(" — {outcome}")
            }
        ));
        if let Some(slot) = self.points.iter_mut().find(|p| p.point == point.point) {
            *slot = point.clone();
        }
        self.bar.inc(1);
        Ok(())
    }

    /// Prints the ranked table (or the summary's JSON line); an error unless every point
    /// COMPLETED.
    pub fn finish(&self, summary: &SweepSummary) -> Result<(), CliError> {
        self.bar.finish_and_clear();
        if self.json {
            print_json_line(&to_json::sweep_summary(summary))?;
        } else {
            print(&summary_text(summary))?;
        }
        if summary.state() == JobState::Completed {
            return Ok(());
        }
        Err(CliError::Failed(format!(
            "sweep {} ended {}: {} of {} points completed, {} failed, {} cancelled",
            summary.sweep_id,
            job_state(summary.state()),
            summary.completed,
            summary.points.len(),
            summary.failed,
            summary.cancelled
        )))
    }
}

/// The ranked table and the best model.
pub fn summary_text(s: &SweepSummary) -> String {
    let mut table = Table::new([
        "rank",
        "point",
        "hidden",
        "learning rate",
        "batch",
        "epochs",
        "seed",
        "state",
        "val loss",
        "val acc",
        "test acc",
        "host",
        "model",
    ]);
    let dash = || "-".to_owned();
    for p in &s.points {
        let m = p.metrics.as_ref();
        table.row([
            if p.rank > 0 {
                p.rank.to_string()
            } else {
                dash()
            },
            p.point.to_string(),
            hidden_text(p),
            p.learning_rate.to_string(),
            p.batch_size.to_string(),
            p.epochs.to_string(),
            p.seed.to_string(),
            training_state(p.state()),
            m.and_then(|m| m.val_loss)
                .map_or_else(dash, |l| format!("{l:.4}")),
            m.and_then(|m| m.val_accuracy).map_or_else(dash, percent),
            m.and_then(|m| m.test_accuracy).map_or_else(dash, percent),
            if p.training_host_url.is_empty() {
                dash()
            } else {
                p.training_host_url.clone()
            },
            if p.model_id.is_empty() {
                dash()
            } else {
                p.model_id.clone()
            },
        ]);
    }
    let mut text = format!(
        "sweep {} {} in {}: {} completed, {} failed, {} cancelled\n",
        s.sweep_id,
        job_state(s.state()),
        human_duration(s.elapsed_ms),
        s.completed,
        s.failed,
        s.cancelled
    );
    text.push_str(&table.render());
    if s.best_point > 0 {
        text.push_str(&format!(
            "best: point {}, model {}\n",
            s.best_point, s.best_model_id
        ));
    } else {
        text.push_str("best: none (no point completed)\n");
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn sweep_flags_become_the_grid_with_hidden_sizes_split_at_x() {
        let axes = [
            parse_sweep_axis("hidden=32x16,64x32").unwrap(),
            parse_sweep_axis("learning-rate=0.001, 0.01").unwrap(),
        ];
        let sweep = sweep_of(&axes, Some(3), None).unwrap().unwrap();
        assert_eq!(
            sweep.hidden_layers,
            [
                HiddenLayers {
                    sizes: vec![32, 16]
                },
                HiddenLayers {
                    sizes: vec![64, 32]
                }
            ]
        );
        assert_eq!(sweep.learning_rates, [0.001, 0.01]);
        assert_eq!((sweep.seeds, sweep.parallel), (3, 0));
        assert_eq!(sweep_of(&[], None, None).unwrap(), None);
        let seeds_only = sweep_of(&[], Some(4), Some(2)).unwrap().unwrap();
        assert_eq!((seeds_only.seeds, seeds_only.parallel), (4, 2));
    }

    #[test]
    fn bad_sweep_flags_say_what_to_pass() {
        let unknown = parse_sweep_axis("dropout=0.1,0.2").unwrap_err();
        assert!(
            unknown.contains("unknown parameter \"dropout\""),
            "{unknown}"
        );
        assert!(unknown.contains("learning_rate"), "{unknown}");
        let empty = parse_sweep_axis("epochs=").unwrap_err();
        assert!(empty.contains("empty value"), "{empty}");
        let not_a_number = parse_sweep_axis("batch_size=32,big").unwrap_err();
        assert!(not_a_number.contains("\"big\""), "{not_a_number}");
        let no_equals = parse_sweep_axis("epochs").unwrap_err();
        assert!(no_equals.contains("PARAM=V1,V2"), "{no_equals}");
        assert!(parse_sweep_axis("hidden=64xa").is_err());
        let twice = [
            parse_sweep_axis("epochs=1,2").unwrap(),
            parse_sweep_axis("epochs=3").unwrap(),
        ];
        let error = sweep_of(&twice, None, None).unwrap_err();
        assert!(matches!(&error, CliError::Usage(m) if m.contains("--sweep gives epochs twice")));
        let parallel_alone = sweep_of(&[], None, Some(2)).unwrap_err();
        assert!(matches!(&parallel_alone, CliError::Usage(m) if m.contains("--parallel")));
    }

    #[test]
    fn the_summary_table_lists_points_by_rank_and_names_the_best_model() {
        let point = |n: i32, rank: i32, state: i32, model: &str| SweepPoint {
            point: n,
            rank,
            state,
            model_id: model.to_owned(),
            hidden_layers: Some(HiddenLayers {
                sizes: vec![64, 32],
            }),
            learning_rate: 0.01,
            ..SweepPoint::default()
        };
        let summary = SweepSummary {
            sweep_id: "sweep-1".into(),
            state: JobState::Failed as i32,
            points: vec![point(2, 1, 4, "s/EURUSD_1h_v2"), point(1, 0, 5, "")],
            best_model_id: "s/EURUSD_1h_v2".into(),
            best_point: 2,
            completed: 1,
            failed: 1,
            ..SweepSummary::default()
        };
        let text = summary_text(&summary);
        let rows: Vec<&str> = text.lines().skip(2).collect();
        assert!(
            rows[0].trim_start().starts_with("1 ") && rows[0].contains("64x32"),
            "{text}"
        );
        assert!(
            rows[1].trim_start().starts_with("- ") && rows[1].contains("FAILED"),
            "{text}"
        );
        assert!(
            text.ends_with("best: point 2, model s/EURUSD_1h_v2\n"),
            "{text}"
        );
    }
}
