//! `ktrdr strategies validate FILE…`: parse and check strategy files locally with the same code
//! the training host uses (`ktrdr-strategy`), without a server.

use std::path::PathBuf;

use clap::Subcommand;
use ktrdr_strategy::{LoadedStrategy, StrategyError};
use serde_json::json;

use crate::error::CliError;
use crate::output::{print, print_json};

#[derive(Debug, Subcommand)]
pub enum StrategiesCommand {
    /// Parse and validate strategy files (original v2 YAML); print a summary or the errors.
    Validate {
        /// Strategy files, e.g. strategies/*.yaml.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(json: bool, command: StrategiesCommand) -> Result<(), CliError> {
    let StrategiesCommand::Validate { files } = command;
    let mut reports = Vec::new();
    let mut text = String::new();
    let mut invalid = 0;
    for file in &files {
        let outcome = LoadedStrategy::from_file(file);
        if outcome.is_err() {
            invalid += 1;
        }
        if json {
            reports.push(report_json(file, &outcome));
        } else {
            text.push_str(&report_text(file, &outcome));
        }
    }
    if json {
        let document = if reports.len() == 1 {
            reports.swap_remove(0)
        } else {
            json!({ "strategies": reports })
        };
        print_json(&document)?;
    } else {
        print(&text)?;
    }
    if invalid > 0 {
        return Err(CliError::Failed(format!(
            "{invalid} of {} strategy file(s) invalid",
            files.len()
        )));
    }
    Ok(())
}

fn error_json(error: &StrategyError) -> serde_json::Value {
    match error {
        StrategyError::Parse { path, message } => {
            json!({ "kind": "parse", "path": path, "message": message })
        }
        StrategyError::Invalid { path, rule } => {
            json!({ "kind": "invalid", "path": path, "message": rule })
        }
        other => json!({ "kind": "io", "path": "", "message": other.to_string() }),
    }
}

fn report_json(
    file: &std::path::Path,
    outcome: &Result<LoadedStrategy, StrategyError>,
) -> serde_json::Value {
    match outcome {
        Err(error) => json!({
            "file": file.display().to_string(),
            "valid": false,
            "error": error_json(error),
        }),
        Ok(strategy) => {
            let config = &strategy.config;
            json!({
                "file": file.display().to_string(),
                "valid": true,
                "name": config.name,
                "symbols": strategy.symbols(),
                "timeframes": strategy.timeframes().iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                "indicators": config.indicators.iter().map(|i| i.id().to_owned()).collect::<Vec<_>>(),
                "fuzzy_sets": strategy.membership_names(),
                "format": if strategy.is_v3() { "v3" } else { "v2" },
                "hidden_layers": config.model.architecture.hidden_layers,
                "epochs": config.model.training.epochs,
                "warnings": strategy.warnings.iter().map(|w| json!({"path": w.path, "message": w.message})).collect::<Vec<_>>(),
            })
        }
    }
}

fn report_text(file: &std::path::Path, outcome: &Result<LoadedStrategy, StrategyError>) -> String {
    let strategy = match outcome {
        Err(error) => return format!("{}: INVALID\n  {error}\n", file.display()),
        Ok(strategy) => strategy,
    };
    let config = &strategy.config;
    let timeframes: Vec<&str> = strategy.timeframes().iter().map(|t| t.as_str()).collect();
    let indicators: Vec<&str> = config.indicators.iter().map(|i| i.id()).collect();
    let sets = strategy.membership_names();
    let fuzzy: usize = sets.values().map(Vec::len).sum();
    let mut text = format!(
        "{}: OK  {}\n  symbols     {}\n  timeframes  {}\n  indicators  {} ({})\n  fuzzy sets  {fuzzy} in {} set(s)\n  model       MLP {:?}, {} epochs\n",
        file.display(),
        config.name,
        strategy.symbols().join(", "),
        timeframes.join(", "),
        indicators.len(),
        indicators.join(", "),
        sets.len(),
        config.model.architecture.hidden_layers,
        config.model.training.epochs,
    );
    for warning in &strategy.warnings {
        text.push_str(&format!(
            "  warning     {}: {}\n",
            warning.path, warning.message
        ));
    }
    text
}
