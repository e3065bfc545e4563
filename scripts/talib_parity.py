#!/usr/bin/env python3
"""Compares every ktrdr indicator that has a TA-Lib counterpart with TA-Lib.

Input (stdin, or a file named as the only argument): the JSON document written by
`cargo run --example indicator_dump` (ktrdr-strategy) -- seeded bars with flat runs, repeated
prices, price and time gaps and zero volume, and every indicator's output columns on them.

For every output column with a counterpart (a TA-Lib function, or a formula over TA-Lib
functions for composites such as %B), the column passes when
  - its first defined bar (first non-NaN index) is TA-Lib's, and
  - on every bar, both are NaN on the same bars and elsewhere
    |ours - talib| <= 1e-9 * max(|talib|, mean |talib| of the column)
    (relative error, measured against the column's own scale where it crosses zero).
    Every bar, not only after a warm-up: start-up rules and seeds are part of a definition.
A documented difference (the indicator's doc comment and the README's indicator table say
it) is either a convention for a value TA-Lib's definition leaves undefined (0/0), whose bars
are named by a rule below and left out of the comparison, or a whole column listed in
DIFFERENT, which is reported but not compared. A listed difference that no longer differs
fails, so the lists cannot go stale. Every indicator type in the document must be known here,
either with a counterpart or in NO_COUNTERPART: nothing is skipped silently.

Exits 1 on any failure; the last line is `talib: N passed, M failed`.
"""

import json
import sys

import numpy as np
import talib

# First bar compared; 0 = all of them (the seeds and start-up rules included).
START = 0
RTOL = 1e-9


def rolling(x, period, fn):
    """fn over each window of `period` values ending at each bar; NaN before."""
    out = np.full(len(x), np.nan)
    if len(x) >= period:
        windows = np.lib.stride_tricks.sliding_window_view(x, period)
        out[period - 1 :] = fn(windows, axis=1)
    return out


def shift(x, bars):
    out = np.full(len(x), np.nan)
    out[bars:] = x[: len(x) - bars]
    return out


def position(value, lower, upper):
    with np.errstate(divide="ignore", invalid="ignore"):
        return (value - lower) / (upper - lower)


def width(upper, lower, middle):
    with np.errstate(divide="ignore", invalid="ignore"):
        return (upper - lower) / middle


def source(b, name):
    o, h, l, c = b["open"], b["high"], b["low"], b["close"]
    return {
        "open": o,
        "high": h,
        "low": l,
        "close": c,
        "volume": b["volume"],
        "hl2": (h + l) / 2,
        "hlc3": (h + l + c) / 3,
        "ohlc4": (o + h + l + c) / 4,
    }[name]


def bands(upper, middle, lower, price):
    return {
        "upper": upper,
        "middle": middle,
        "lower": lower,
        "percent_b": position(price, lower, upper),
        "bandwidth": width(upper, lower, middle),
    }


def reference(k, b):
    """TA-Lib's value of each output column of indicator kind `k` on bars `b`."""
    h, l, c, v = b["high"], b["low"], b["close"], b["volume"]
    t = k["type"]
    if t == "rsi":
        return {"rsi": talib.RSI(source(b, k["source"]), k["period"])}
    if t == "sma":
        return {"sma": talib.SMA(source(b, k["source"]), k["period"])}
    if t == "ema":
        return {"ema": talib.EMA(source(b, k["source"]), k["period"])}
    if t == "macd":
        x = source(b, k["source"])
        fast, slow, signal = k["fast_period"], k["slow_period"], k["signal_period"]
        _, sig, hist = talib.MACD(x, fast, slow, signal)
        # One TA-Lib call returns its three columns from the signal's first bar; the line on
        # its own is the same call with a 1-bar signal.
        line = talib.MACD(x, fast, slow, 1)[0]
        return {"macd": line, "signal": sig, "histogram": hist}
    if t == "adx":
        p = k["period"]
        return {
            "adx": talib.ADX(h, l, c, p),
            "plus_di": talib.PLUS_DI(h, l, c, p),
            "minus_di": talib.MINUS_DI(h, l, c, p),
        }
    if t == "aroon":
        down, up = talib.AROON(h, l, k["period"])
        return {"up": up, "down": down, "oscillator": talib.AROONOSC(h, l, k["period"])}
    if t == "parabolic_sar":
        init, step, top = k["initial_af"], k["step_af"], k["max_af"]
        if init == step:
            sar = talib.SAR(h, l, init, top)
        else:
            # SAREXT reports a short position's SAR as a negative number.
            sar = np.abs(talib.SAREXT(h, l, 0, 0, init, step, top, init, step, top))
        return {"sar": sar}
    if t == "ichimoku":
        tenkan = talib.MIDPRICE(h, l, k["tenkan_period"])
        kijun = talib.MIDPRICE(h, l, k["kijun_period"])
        d = k["displacement"]
        return {
            "tenkan": tenkan,
            "kijun": kijun,
            "senkou_a": shift((tenkan + kijun) / 2, d),
            "senkou_b": shift(talib.MIDPRICE(h, l, k["senkou_b_period"]), d),
        }
    if t == "super_trend":
        line, trend = talib.SUPERTREND(h, l, c, k["period"], k["multiplier"])
        direction = np.where(np.isnan(line), np.nan, trend.astype(float))
        return {"supertrend": line, "direction": direction}
    if t == "distance_from_ma":
        x = source(b, k["source"])
        ma = talib.EMA(x, k["period"]) if k["use_ema"] else talib.SMA(x, k["period"])
        return {"distance": 100 * (x - ma) / ma}
    if t == "stochastic":
        kp, dp, sk = k["k_period"], k["d_period"], k["smooth_k"]
        # As for MACD: %K on its own is the call with a 1-bar %D.
        slow_k = talib.STOCH(h, l, c, kp, sk, 0, 1, 0)[0]
        slow_d = talib.STOCH(h, l, c, kp, sk, 0, dp, 0)[1]
        return {"k": slow_k, "d": slow_d}
    if t == "williams_r":
        return {"williams_r": talib.WILLR(h, l, c, k["period"])}
    if t == "cci":
        return {"cci": talib.CCI(h, l, c, k["period"])}
    if t == "momentum":
        return {"momentum": talib.MOM(source(b, k["source"]), k["period"])}
    if t == "roc":
        return {"roc": talib.ROC(source(b, k["source"]), k["period"])}
    if t == "mfi":
        return {"mfi": talib.MFI(h, l, c, v, k["period"])}
    if t == "atr":
        return {"atr": talib.ATR(h, l, c, k["period"])}
    if t in ("bollinger_bands", "bollinger_band_width"):
        x = source(b, k["source"])
        up, mid, low = talib.BBANDS(x, k["period"], k["std_dev"], k["std_dev"], 0)
        out = bands(up, mid, low, x)
        return out if t == "bollinger_bands" else {"bandwidth": out["bandwidth"]}
    if t == "keltner_channels":
        up, mid, low = talib.KC(h, l, c, k["period"], k["atr_period"], k["multiplier"])
        return bands(up, mid, low, c)
    if t == "donchian_channels":
        up, mid, low = talib.DONCHIAN(h, l, k["period"])
        return bands(up, mid, low, c)
    if t == "squeeze_intensity":
        bu, _, bl = talib.BBANDS(c, k["bb_period"], k["bb_std_dev"], k["bb_std_dev"], 0)
        ku, _, kl = talib.KC(h, l, c, k["kc_period"], k["kc_atr_period"], k["kc_multiplier"])
        with np.errstate(divide="ignore", invalid="ignore"):
            return {"intensity": 1 - (bu - bl) / (ku - kl)}
    if t == "obv":
        return {"obv": talib.OBV(c, v)}
    if t == "vwap":
        price = talib.TYPPRICE(h, l, c) if k["use_typical_price"] else c
        return {"vwap": talib.VWMA(price, v, k["period"])}
    if t == "ad_line":
        ad = talib.AD(h, l, c, v)
        if k["use_sma_smoothing"]:
            ad = talib.SMA(ad, k["smoothing_period"])
        return {"ad_line": ad}
    if t == "cmf":
        return {"cmf": talib.CMF(h, l, c, v, k["period"])}
    if t == "volume_ratio":
        return {"volume_ratio": talib.RVOL(v, k["period"])}
    return None


NO_COUNTERPART = {
    "zig_zag": "not an indicator in TA-Lib (ZigZag pivots look ahead; used for labels only)",
    "rvi": "TA-Lib's RVI is the Relative Volatility Index; the Relative Vigor Index is not in TA-Lib",
    "fisher_transform": "the Fisher Transform is not in TA-Lib",
}


def flat_window(x_high, x_low, period):
    """Bars whose `period`-bar window has highest high == lowest low."""
    return talib.MAX(x_high, period) == talib.MIN(x_low, period)


def any_in_window(mask, period):
    """Bars with `mask` true on any of the last `period` bars."""
    return rolling(mask.astype(float), period, np.max) > 0


def never_moved(x):
    """Bars up to which `x` has not changed since the first bar."""
    moved = np.concatenate([[False], np.diff(x) != 0])
    return np.cumsum(moved) == 0


def no_money_flow(b, period):
    """Bars whose MFI window has no money flow: no typical-price change (beyond TA-Lib's tie
    band) with volume."""
    tp = (b["high"] + b["low"] + b["close"]) / 3
    moved = np.abs(np.diff(tp)) > 1e-14 * (np.abs(tp[1:]) + np.abs(tp[:-1]))
    flow = np.concatenate([[0.0], np.where(moved, (tp * b["volume"])[1:], 0.0)])
    return rolling(flow, period, np.sum) == 0


def no_prior_volume(v, period):
    """Bars whose previous `period` bars have no volume."""
    return shift(rolling(v, period, np.sum), 1) == 0


def flat_source(b, k):
    x = source(b, k["source"])
    return talib.MAX(x, k["period"]) == talib.MIN(x, k["period"])


# Conventions for values TA-Lib's definition leaves undefined (0/0), each stated in the
# indicator's doc comment and the README: the bars a rule names are left out of the
# comparison. (type, column) -> (what we do there, rule(bars, kind) -> mask).
UNDEFINED = {
    ("rsi", "rsi"): (
        "no gain and no loss yet: ours 50, TA-Lib 0",
        lambda b, k: never_moved(source(b, k["source"])),
    ),
    ("stochastic", "k"): (
        "a window with no high-low range: raw %K ours 50, TA-Lib 0",
        lambda b, k: any_in_window(flat_window(b["high"], b["low"], k["k_period"]), k["smooth_k"]),
    ),
    ("stochastic", "d"): (
        "a window with no high-low range: raw %K ours 50, TA-Lib 0",
        lambda b, k: any_in_window(
            flat_window(b["high"], b["low"], k["k_period"]), k["smooth_k"] + k["d_period"] - 1
        ),
    ),
    ("williams_r", "williams_r"): (
        "a window with no high-low range: ours -50, TA-Lib 0",
        lambda b, k: flat_window(b["high"], b["low"], k["period"]),
    ),
    ("mfi", "mfi"): (
        "a window without money flow: ours 50, TA-Lib 0",
        lambda b, k: no_money_flow(b, k["period"]),
    ),
    ("bollinger_bands", "percent_b"): (
        "bands of width 0: ours 0.5, the formula 0/0",
        flat_source,
    ),
    ("donchian_channels", "percent_b"): (
        "a channel of width 0: ours 0.5, the formula 0/0",
        lambda b, k: flat_window(b["high"], b["low"], k["period"]),
    ),
    ("vwap", "vwap"): (
        "no volume in the window: ours NaN, TA-Lib NaN or +-inf (running-sum residue / 0)",
        lambda b, k: rolling(b["volume"], k["period"], np.sum) == 0,
    ),
    ("volume_ratio", "volume_ratio"): (
        "no volume in the averaging window: ours NaN, TA-Lib NaN or +inf",
        lambda b, k: no_prior_volume(b["volume"], k["period"]),
    ),
}

# Whole columns that differ by design: (type, column) -> why.
DIFFERENT = {}


def compare(ours, ref, exempt):
    """None when `ours` matches `ref`, else what differs."""
    first_ours = int(np.argmax(~np.isnan(ours))) if (~np.isnan(ours)).any() else None
    first_ref = int(np.argmax(~np.isnan(ref))) if (~np.isnan(ref)).any() else None
    if first_ours != first_ref:
        return f"first defined bar {first_ours}, TA-Lib {first_ref}"
    a, r = ours[START:], ref[START:]
    keep = ~exempt[START:]
    a, r = a[keep], r[keep]
    nan_a, nan_r = np.isnan(a), np.isnan(r)
    if (nan_a != nan_r).any():
        i = int(np.argmax(nan_a != nan_r))
        return f"NaN on different bars ({nan_a.sum()} vs {nan_r.sum()}; first at compared bar {i}: {float(a[i])} vs {float(r[i])})"
    a, r = a[~nan_a], r[~nan_r]
    if len(r) == 0:
        return None
    if not np.isfinite(r).all():
        return "TA-Lib gives infinite values"
    scale = np.maximum(np.abs(r), np.abs(r).mean())
    scale[scale == 0] = 1.0
    err = np.abs(a - r) / scale
    worst = int(np.argmax(err))
    if err[worst] > RTOL:
        bad = int((err > RTOL).sum())
        return f"max relative error {err[worst]:.3g} on {bad} bars (ours {float(a[worst])!r}, TA-Lib {float(r[worst])!r})"
    return None


def main():
    stream = open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin
    doc = json.load(stream)
    b = {name: np.array(col, dtype=float) for name, col in doc["bars"].items()}
    n = len(b["close"])
    print(f"talib {talib.__version__} (TA-Lib {talib.__ta_version__.decode()}), numpy {np.__version__}, {n} bars, seed {doc['seed']}")
    passed, failed = 0, 0
    documented = []
    if n < 20_000:
        print(f"FAIL: only {n} bars; the comparison needs at least 20 000")
        failed += 1
    for ind in doc["indicators"]:
        k, name = ind["kind"], ind["id"]
        cols = {c: np.array([np.nan if x is None else x for x in vals], dtype=float) for c, vals in ind["columns"].items()}
        refs = reference(k, b)
        if refs is None:
            if k["type"] in NO_COUNTERPART:
                print(f"  {name}: no TA-Lib counterpart ({NO_COUNTERPART[k['type']]})")
            else:
                print(f"FAIL {name}: type {k['type']!r} has neither a TA-Lib counterpart here nor a NO_COUNTERPART entry")
                failed += 1
            continue
        for col, ours in cols.items():
            key = (k["type"], col)
            if col not in refs:
                print(f"FAIL {name}.{col}: no TA-Lib reference for this column")
                failed += 1
                continue
            ref = refs[col]
            if key in DIFFERENT:
                problem = compare(ours, ref, np.zeros(n, dtype=bool))
                if problem is None:
                    print(f"FAIL {name}.{col}: listed as a documented difference but matches TA-Lib; remove it from DIFFERENT")
                    failed += 1
                else:
                    documented.append(f"{name}.{col}: {DIFFERENT[key]} ({problem})")
                continue
            exempt = np.zeros(n, dtype=bool)
            note = ""
            if key in UNDEFINED:
                what, rule = UNDEFINED[key]
                exempt = rule(b, k)
                count = int(exempt[START:].sum())
                note = f" ({count} bars where {what})"
            problem = compare(ours, ref, exempt)
            both = exempt & ~(np.isnan(ours) & np.isnan(ref))
            if problem is None and both.any() and np.array_equal(ours[both], ref[both]):
                problem = "listed in UNDEFINED but matches TA-Lib on those bars too; remove the rule"
            if problem is None:
                print(f"  ok {name}.{col}{note}")
                passed += 1
            else:
                print(f"FAIL {name}.{col}: {problem}{note}")
                failed += 1
    for line in documented:
        print(f"  documented difference {line}")
    print(f"talib: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
