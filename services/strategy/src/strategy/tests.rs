use super::*;

const ORIGINAL: &str = include_str!("../../tests/fixtures/universal_zero_shot_model.yaml");

fn load(yaml: &str) -> Result<LoadedStrategy> {
    LoadedStrategy::from_yaml_str(yaml)
}

fn err(yaml: &str) -> String {
    load(yaml).unwrap_err().to_string()
}

#[test]
fn original_example_loads_unchanged() {
    let s = load(ORIGINAL).unwrap();
    let c = &s.config;
    assert_eq!(c.name, "universal_zero_shot_model");
    assert_eq!(c.version.as_deref(), Some("2.0"));
    assert_eq!(c.scope, Some(Scope::Universal));
    assert_eq!(s.symbols(), vec!["EURUSD", "GBPUSD"]);
    assert_eq!(s.timeframes(), vec![Timeframe::H1]);
    assert_eq!(c.indicators.len(), 3);
    assert_eq!(
        c.indicators[1].params["fast_period"],
        serde_norway::Value::from(12)
    );
    assert_eq!(
        c.fuzzy_sets["rsi"]["oversold"].parameters,
        vec![0.0, 20.0, 35.0]
    );
    assert_eq!(c.model.architecture.hidden_layers, vec![128, 64, 32]);
    assert_eq!(c.model.features.lookback_periods, 5);
    assert_eq!(c.model.input_size, Some(36));
    assert_eq!(c.training.labels.zigzag_threshold, 0.02);
    assert_eq!(c.training.data_split.train, 0.7);
    // Nothing unknown in it; the known-but-ignored fields and the unused MACD are reported.
    let paths: Vec<&str> = s.warnings.iter().map(|w| w.path.as_str()).collect();
    assert!(
        !s.warnings.iter().any(|w| w.message.starts_with("unknown")),
        "{paths:?}"
    );
    for expected in [
        "training_data.history_required",
        "indicators[1]",
        "model.features.include_price_context",
        "model.features.scale_features",
        "training.labels.label_lookahead",
    ] {
        assert!(
            paths.contains(&expected),
            "missing warning {expected} in {paths:?}"
        );
    }
}

#[test]
fn example_input_size_matches_our_feature_count() {
    // 6 fuzzy columns (rsi × 3 + sma × 3) + 6 × 5 lags = 36, as the reference says.
    let s = load(ORIGINAL).unwrap();
    let names = crate::features::feature_names(&s).unwrap();
    assert_eq!(names.len(), 36);
    assert!(!s.warnings.iter().any(|w| w.path == "model.input_size"));
    let s = load(&ORIGINAL.replace("input_size: 36", "input_size: 40")).unwrap();
    let w = s
        .warnings
        .iter()
        .find(|w| w.path == "model.input_size")
        .unwrap();
    assert!(w.message.contains("give 36 inputs"), "{}", w.message);
}

#[test]
fn shipped_strategies_load_without_unknown_keys() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../strategies");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let s =
            LoadedStrategy::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            !s.warnings.iter().any(|w| w.message.starts_with("unknown")),
            "{}: {:?}",
            path.display(),
            s.warnings
        );
        count += 1;
    }
    assert!(count >= 3);
}

#[test]
fn unknown_keys_are_warnings_with_paths() {
    let yaml = ORIGINAL
        .replace("scope: \"universal\"", "scope: \"universal\"\nauthor: me")
        .replace("    dropout: 0.2", "    dropout: 0.2\n    batch_norm: true")
        .replace(
            "    period: 14\n",
            "    period: 14\n    smoothing: wilder\n",
        );
    let s = load(&yaml).unwrap();
    let unknown: Vec<&str> = s
        .warnings
        .iter()
        .filter(|w| w.message.starts_with("unknown"))
        .map(|w| w.path.as_str())
        .collect();
    assert_eq!(
        unknown,
        vec![
            "author",
            "model.architecture.batch_norm",
            "indicators[0].smoothing"
        ]
    );
}

#[test]
fn type_errors_name_the_yaml_path() {
    let yaml = ORIGINAL.replace("dropout: 0.2", "dropout: lots");
    let e = err(&yaml);
    assert!(e.starts_with("model.architecture.dropout:"), "{e}");
    let yaml = ORIGINAL.replace(
        "timeframe: \"1h\"\n  history",
        "timeframe: \"2h\"\n  history",
    );
    let e = err(&yaml);
    assert!(e.starts_with("training_data.timeframes.timeframe:"), "{e}");
    let yaml = ORIGINAL.replace("hidden_layers: [128, 64, 32]", "hidden_layers: [128, -1]");
    assert!(
        err(&yaml).starts_with("model.architecture.hidden_layers[1]:"),
        "{}",
        err(&yaml)
    );
    let e = err("name: [");
    assert_eq!(
        e,
        "name: invalid type: sequence, expected a string at line 1 column 7"
    );
    let e = err("name: 'unterminated");
    assert!(e.contains("unexpected end of stream at line 1"), "{e}");
}

#[test]
fn rule_violations_name_path_and_rule() {
    let cases = [
        (
            "dropout: 0.2",
            "dropout: 1.5",
            "model.architecture.dropout: must be in [0, 1)",
        ),
        (
            "    period: 14\n",
            "    period: 0\n",
            "indicators[0].period: must be a whole number ≥ 1",
        ),
        (
            "parameters: [0, 20, 35]",
            "parameters: [0, 40, 35]",
            "fuzzy_sets.rsi.oversold.parameters: [a, b, c] must be in non-decreasing order",
        ),
        (
            "zigzag_threshold: 0.02",
            "zigzag_threshold: 2",
            "training.labels.zigzag_threshold: must be a fraction in (0, 1), e.g. 0.02 for 2 %",
        ),
        (
            "    test: 0.15",
            "    test: 0.25",
            "training.data_split: train + validation + test must sum to 1 (they sum to 1.1)",
        ),
        (
            "  - name: \"rsi\"",
            "  - name: \"rsx\"",
            "indicators[0].name: unknown indicator \"rsx\"",
        ),
        (
            "fast_period: 12",
            "fast_period: 30",
            "indicators[1].fast_period: must be smaller than slow_period",
        ),
        (
            "learning_rate: 0.001",
            "learning_rate: 0",
            "model.training.learning_rate: must be a positive number",
        ),
        ("    symbol: x", "", ""),
    ];
    for (from, to, expected) in cases {
        if expected.is_empty() {
            continue;
        }
        assert!(ORIGINAL.contains(from), "fixture lacks {from:?}");
        let e = err(&ORIGINAL.replacen(from, to, 1));
        assert!(e.starts_with(expected), "{from} → {to}: got {e}");
    }
}

#[test]
fn fuzzy_sets_must_name_a_single_indicator() {
    let yaml = ORIGINAL.replace("  sma:\n    below:", "  ema:\n    below:");
    let e = err(&yaml);
    assert!(
        e.starts_with("fuzzy_sets.ema: no indicator has the name or feature_id \"ema\""),
        "{e}"
    );
    // Two SMAs need feature_ids; with them, each gets its own sets.
    let yaml = ORIGINAL.replace(
        "  - name: \"sma\"\n    period: 20\n",
        "  - name: \"sma\"\n    period: 20\n  - name: \"sma\"\n    period: 50\n",
    );
    assert!(err(&yaml).contains("give each a distinct feature_id"));
    let yaml = ORIGINAL.replace(
        "  - name: \"sma\"\n    period: 20\n",
        "  - name: \"sma\"\n    period: 20\n  - name: \"sma\"\n    feature_id: sma_50\n    period: 50\n",
    );
    let s = load(&yaml).unwrap();
    assert_eq!(s.indicators[3].id, "sma_50");
}

#[test]
fn symbols_and_timeframes_rules() {
    let yaml = ORIGINAL.replace(
        "list: [\"EURUSD\", \"GBPUSD\"]",
        "list: [\"EURUSD\", \"EURUSD\"]",
    );
    assert!(err(&yaml).starts_with("training_data.symbols.list[1]"));
    let yaml = ORIGINAL.replace("list: [\"EURUSD\", \"GBPUSD\"]", "list: []");
    assert!(err(&yaml).starts_with("training_data.symbols.list"));
    let yaml = ORIGINAL.replace(
        "    mode: \"single\"\n    timeframe: \"1h\"\n  history",
        "    mode: \"multi_timeframe\"\n    list: [\"4h\", \"1h\"]\n    base_timeframe: \"4h\"\n  history",
    );
    assert!(
        err(&yaml).starts_with("training_data.timeframes.base_timeframe"),
        "{}",
        err(&yaml)
    );
    let yaml = ORIGINAL.replace(
        "    mode: \"single\"\n    timeframe: \"1h\"\n  history",
        "    mode: \"multi_timeframe\"\n    list: [\"1d\", \"1h\"]\n  history",
    );
    let s = load(&yaml).unwrap();
    assert_eq!(s.timeframes(), vec![Timeframe::H1, Timeframe::D1]);
    assert_eq!(s.base_timeframe(), Some(Timeframe::H1));
}

#[test]
fn zigzag_cannot_be_a_feature() {
    let yaml = ORIGINAL.replace(
        "  - name: \"sma\"\n",
        "  - name: \"zigzag\"\n    threshold: 0.05\n  - name: \"sma\"\n",
    ) + "  zigzag:\n    up:\n      type: triangular\n      parameters: [0, 1, 2]\n";
    // The appended block lands under training.data_split, so put it under fuzzy_sets instead.
    let yaml = yaml.replace(
        "fuzzy_sets:\n",
        "fuzzy_sets:\n  zigzag:\n    up:\n      type: triangular\n      parameters: [0, 1, 2]\n",
    );
    let yaml = yaml.trim_end_matches(
        "  zigzag:\n    up:\n      type: triangular\n      parameters: [0, 1, 2]\n",
    );
    let e = err(yaml);
    assert!(
        e.starts_with("fuzzy_sets.zigzag: zigzag cannot be a feature"),
        "{e}"
    );
}

#[test]
fn indicator_types_resolve_from_type_or_name() {
    let yaml = ORIGINAL.replace(
        "  - name: \"sma\"\n",
        "  - name: \"bb\"\n    type: \"BollingerBands\"\n    period: 10\n  - name: \"sma\"\n",
    );
    let s = load(&yaml).unwrap();
    assert!(matches!(
        s.indicators[2].kind,
        crate::indicators::IndicatorKind::BollingerBands { period: 10, .. }
    ));
    // `params:` nesting is flattened.
    let yaml = ORIGINAL.replace(
        "    period: 20\n    source: \"close\"\n",
        "    params:\n      period: 30\n",
    );
    let s = load(&yaml).unwrap();
    assert!(matches!(
        s.indicators[2].kind,
        crate::indicators::IndicatorKind::Sma { period: 30, .. }
    ));
}

#[test]
fn source_on_multi_column_indicators_is_accepted_as_the_original_did() {
    let yaml = ORIGINAL.replace(
        "  - name: \"sma\"\n",
        "  - name: \"adx\"\n    period: 14\n    source: \"close\"\n  - name: \"atr\"\n    source: \"open\"\n  - name: \"sma\"\n",
    );
    let s = load(&yaml).unwrap();
    let paths: Vec<&str> = s.warnings.iter().map(|w| w.path.as_str()).collect();
    assert!(!paths.contains(&"indicators[2].source"), "{paths:?}");
    let w = s
        .warnings
        .iter()
        .find(|w| w.path == "indicators[3].source")
        .unwrap();
    assert!(w.message.starts_with("ignored"), "{}", w.message);
}

#[test]
fn rvi_signal_period_other_than_four_is_a_warning() {
    let yaml = ORIGINAL.replace(
        "  - name: \"sma\"\n",
        "  - name: \"rvi\"\n    signal_period: 6\n  - name: \"sma\"\n",
    );
    let s = load(&yaml).unwrap();
    assert!(
        s.warnings
            .iter()
            .any(|w| w.path == "indicators[2].signal_period")
    );
}

const V3: &str = include_str!("../../../../strategies/v3_multi_timeframe.yaml");

#[test]
fn a_v3_strategy_loads_with_its_explicit_inputs_in_order() {
    let s = load(V3).unwrap();
    assert!(s.is_v3());
    let c = &s.config;
    assert_eq!(c.name, "v3_multi_timeframe_example");
    assert_eq!(c.version.as_deref(), Some("3.0"));
    assert_eq!(
        s.timeframes(),
        vec![Timeframe::H1, Timeframe::H4, Timeframe::D1]
    );
    let ids: Vec<&str> = s.indicators.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["rsi_14", "adx_14"]);
    let extreme = &c.fuzzy_set_definitions[1];
    assert_eq!(extreme.id, "rsi_extreme");
    // The shorthand is a triangle; memberships keep the file's order.
    assert_eq!(extreme.memberships[0].0, "very_oversold");
    assert_eq!(extreme.memberships[0].1.kind, FuzzySetKind::Triangular);
    assert_eq!(extreme.memberships[1].1.parameters, vec![80.0, 90.0, 100.0]);
    assert_eq!(
        c.fuzzy_set_definitions[2].indicator_ref(),
        ("adx_14", Some("plus_di"))
    );
    assert!(
        !s.warnings.iter().any(|w| w.message.starts_with("unknown")),
        "{:?}",
        s.warnings
    );

    let names = crate::features::feature_names(&s).unwrap();
    let unlagged = [
        "1h_rsi_fast_oversold",
        "1h_rsi_fast_neutral",
        "1h_rsi_fast_overbought",
        "4h_rsi_fast_oversold",
        "4h_rsi_fast_neutral",
        "4h_rsi_fast_overbought",
        "1d_rsi_fast_oversold",
        "1d_rsi_fast_neutral",
        "1d_rsi_fast_overbought",
        "1d_rsi_extreme_very_oversold",
        "1d_rsi_extreme_very_overbought",
        "1h_di_plus_low",
        "1h_di_plus_high",
        "4h_di_plus_low",
        "4h_di_plus_high",
    ];
    assert_eq!(names[..unlagged.len()], unlagged);
    assert_eq!(names.len(), unlagged.len() * 3, "two lags");
    assert_eq!(names[unlagged.len()], "1h_rsi_fast_oversold_lag_1");
}

#[test]
fn a_v3_strategy_computes_its_features_and_survives_a_saved_config() {
    let s = load(V3).unwrap();
    let base = crate::synthetic::generate(&crate::synthetic::PathSpec {
        bars: 2_000,
        ..Default::default()
    });
    let bars: BTreeMap<Timeframe, ktrdr_market::Bars> = s
        .timeframes()
        .into_iter()
        .map(|tf| (tf, base.resample(tf).unwrap()))
        .collect();
    let features = crate::features::compute_features(&s, &bars).unwrap();
    assert_eq!(features.names, crate::features::feature_names(&s).unwrap());
    let last = features.rows() - 1;
    assert!(features.row_is_complete(last));
    // DI+ memberships read the plus_di output, not the ADX line.
    let adx = s.indicators[1].kind.compute(&bars[&Timeframe::H1]);
    let plus_di = adx.column("plus_di").unwrap()[last];
    let low = &s.config.fuzzy_set_definitions[2].memberships[0].1;
    let expected = crate::fuzzy::MembershipFunction::from_spec(low, "x")
        .unwrap()
        .evaluate(&[plus_di])[0];
    let column = features
        .names
        .iter()
        .position(|n| n == "1h_di_plus_low")
        .unwrap();
    assert_eq!(features.columns[column][last], expected);

    // config.json keeps the v3 form and reloads to the same features.
    let json = serde_json::to_string(&s.config).unwrap();
    let reloaded = LoadedStrategy::from_config(serde_json::from_str(&json).unwrap()).unwrap();
    assert!(reloaded.is_v3());
    assert_eq!(reloaded.config, s.config);
    // Debug text compares NaN (warm-up) as equal, unlike `==`.
    assert_eq!(
        format!(
            "{:?}",
            crate::features::compute_features(&reloaded, &bars).unwrap()
        ),
        format!("{features:?}")
    );
}

#[test]
fn v3_references_are_validated_with_their_paths() {
    let cases = [
        (
            V3.replace("indicator: rsi_14\n    very", "indicator: rsi_99\n    very"),
            "fuzzy_sets.rsi_extreme.indicator: no indicator has the id \"rsi_99\"",
        ),
        (
            V3.replace("adx_14.plus_di", "adx_14.plus"),
            "fuzzy_sets.di_plus.indicator: indicator \"adx_14\" has no output \"plus\"",
        ),
        (
            V3.replace("fuzzy_set: rsi_extreme", "fuzzy_set: rsi_slow"),
            "nn_inputs[1].fuzzy_set: no fuzzy set \"rsi_slow\"",
        ),
        (
            V3.replace("timeframes: [\"1d\"]", "timeframes: [\"5m\"]"),
            "nn_inputs[1].timeframes[0]: 5m is not a training timeframe",
        ),
        (V3.replace("timeframes: [\"1d\"]", "timeframes: all"), ""),
        (
            V3.replace(
                "timeframes: [\"1h\", \"4h\"]",
                "timeframes: [\"1h\", \"1h\"]",
            ),
            "nn_inputs[2].timeframes[1]: di_plus on 1h is already an input",
        ),
        (
            V3.replace(
                "very_overbought: [80, 90, 100]",
                "very_overbought: [90, 80, 100]",
            ),
            "fuzzy_sets.rsi_extreme.very_overbought.parameters: [a, b, c] must be in non-decreasing order",
        ),
        (
            V3.replace(
                "    period: 14\n    source: close",
                "    period: 0\n    source: close",
            ),
            "indicators.rsi_14",
        ),
    ];
    for (yaml, expected) in cases {
        match load(&yaml) {
            Ok(_) if expected.is_empty() => {}
            Ok(_) => panic!("accepted, expected {expected}"),
            Err(e) => assert!(
                !expected.is_empty() && e.to_string().starts_with(expected),
                "{e} does not start with {expected}"
            ),
        }
    }
    // nn_inputs is required once indicators are a map.
    let start = V3.find("nn_inputs:").unwrap();
    let end = V3.find("model:").unwrap();
    let without = format!("{}{}", &V3[..start], &V3[end..]);
    assert!(err(&without).starts_with("nn_inputs"), "{}", err(&without));
    // An unused fuzzy set and an unused indicator are warnings.
    let yaml = V3
        .replace("  - fuzzy_set: rsi_extreme\n    timeframes: [\"1d\"]\n", "")
        .replace(
            "indicators:\n",
            "indicators:\n  ema_9:\n    type: ema\n    period: 9\n",
        );
    let s = load(&yaml).unwrap();
    let warned: Vec<&str> = s.warnings.iter().map(|w| w.path.as_str()).collect();
    assert!(warned.contains(&"fuzzy_sets.rsi_extreme"), "{warned:?}");
    assert!(warned.contains(&"indicators.ema_9"), "{warned:?}");
}

#[test]
fn v2_strategies_still_load_as_v2() {
    let s = load(ORIGINAL).unwrap();
    assert!(!s.is_v3());
    assert!(s.config.nn_inputs.is_empty());
    let json = serde_json::to_value(&s.config).unwrap();
    assert!(
        json.get("nn_inputs").is_none(),
        "v2 config.json is unchanged"
    );
}

#[test]
fn symbols_are_normalised_at_load_and_unsafe_ones_refused_naming_the_field() {
    let yaml = ORIGINAL.replace(
        "list: [\"EURUSD\", \"GBPUSD\"]",
        "list: [\"EUR/USD\", \"gbp.usd\"]",
    );
    assert_eq!(load(&yaml).unwrap().symbols(), ["EURUSD", "GBPUSD"]);
    let yaml = ORIGINAL.replace(
        "list: [\"EURUSD\", \"GBPUSD\"]",
        "list: [\"EURUSD\", \"EUR/USD\"]",
    );
    assert!(
        err(&yaml).starts_with("training_data.symbols.list[1]"),
        "the same pair spelt twice is a duplicate: {}",
        err(&yaml)
    );
    for bad in ["/EURUSD", "../etc", "EU/RUSD"] {
        let yaml = ORIGINAL.replace(
            "list: [\"EURUSD\", \"GBPUSD\"]",
            &format!("list: [\"EURUSD\", \"{bad}\"]"),
        );
        let e = err(&yaml);
        assert!(e.starts_with("training_data.symbols.list[1]"), "{bad}: {e}");
    }
    let single = |symbol: &str| {
        ORIGINAL
            .replace("mode: \"multi_symbol\"", "mode: \"single\"")
            .replace(
                "list: [\"EURUSD\", \"GBPUSD\"]",
                &format!("symbol: \"{symbol}\""),
            )
    };
    assert_eq!(load(&single("EUR/USD")).unwrap().symbols(), ["EURUSD"]);
    let e = err(&single("/EURUSD"));
    assert!(e.starts_with("training_data.symbols.symbol"), "{e}");
}

#[test]
fn names_that_are_not_a_safe_directory_name_are_refused_saying_what_is_allowed() {
    for bad in [
        "_sessions",
        ".hidden",
        "...",
        "a/b",
        "a\\\\b",
        "",
        &"n".repeat(65),
    ] {
        let yaml = ORIGINAL.replace(
            "name: \"universal_zero_shot_model\"",
            &format!("name: \"{bad}\""),
        );
        let e = err(&yaml);
        assert!(e.starts_with("name: "), "{bad:?}: {e}");
        assert!(e.contains("allowed are letters, digits"), "{bad:?}: {e}");
    }
}
