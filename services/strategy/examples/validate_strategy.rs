//! Loads strategy files and prints their warnings, or the error that rejects them.
//!
//! `cargo run -p ktrdr-strategy --example validate_strategy -- strategies/*.yaml`

use ktrdr_strategy::LoadedStrategy;
use ktrdr_strategy::features::feature_names;

fn main() {
    let mut failed = false;
    for path in std::env::args().skip(1) {
        match LoadedStrategy::from_file(&path) {
            Ok(s) => {
                let features = feature_names(&s).map(|n| n.len()).unwrap_or(0);
                println!(
                    "{path}: ok ({} indicators, {features} features)",
                    s.indicators.len()
                );
                for w in &s.warnings {
                    println!("  warning: {}: {}", w.path, w.message);
                }
            }
            Err(e) => {
                failed = true;
                println!("{path}: error: {e}");
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
