//! Floating-point helpers that reproduce NumPy's and Python's arithmetic, so that metrics equal
//! backtesting.py's bit for bit in the common case (and to rounding otherwise): NumPy's
//! pairwise summation, pandas' two-pass variance, Python's float floor division.

/// NumPy's pairwise summation of a contiguous float64 array (`np.add.reduce`): blocks of 8
/// partial sums up to 128 values, halves above.
pub(crate) fn pairwise_sum(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 8 {
        let mut sum = -0.0;
        for &v in values {
            sum += v;
        }
        // NumPy starts from -0.0 as well; an empty sum is 0.
        if n == 0 { 0.0 } else { sum }
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&values[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for (j, partial) in r.iter_mut().enumerate() {
                *partial += values[i + j];
            }
            i += 8;
        }
        let mut sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            sum += values[i];
            i += 1;
        }
        sum
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sum(&values[..half]) + pairwise_sum(&values[half..])
    }
}

/// pandas' `Series.mean()`: NaN when empty.
pub(crate) fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    pairwise_sum(values) / values.len() as f64
}

/// pandas' `Series.var(ddof=1)` (two passes): NaN with fewer than two values.
pub(crate) fn variance(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return f64::NAN;
    }
    let avg = pairwise_sum(values) / n as f64;
    let squares: Vec<f64> = values.iter().map(|v| (avg - v) * (avg - v)).collect();
    pairwise_sum(&squares) / (n - 1) as f64
}

/// backtesting.py's `geometric_mean`: 0 when a return is ≤ -100 %, NaN when there are none.
pub(crate) fn geometric_mean(returns: &[f64]) -> f64 {
    if returns.iter().any(|r| r + 1.0 <= 0.0) {
        return 0.0;
    }
    if returns.is_empty() {
        return f64::NAN;
    }
    let logs: Vec<f64> = returns.iter().map(|r| (r + 1.0).ln()).collect();
    (pairwise_sum(&logs) / returns.len() as f64).exp() - 1.0
}

/// Python's `a // b` for floats (CPython's `float_floor_div`): exact where `(a / b).floor()`
/// can round up across an integer.
pub(crate) fn py_floordiv(a: f64, b: f64) -> f64 {
    let modulo = a % b;
    let mut div = (a - modulo) / b;
    if modulo != 0.0 && (b < 0.0) != (modulo < 0.0) {
        div -= 1.0;
    }
    if div != 0.0 {
        let mut floor = div.floor();
        if div - floor > 0.5 {
            floor += 1.0;
        }
        floor
    } else {
        0.0f64.copysign(a / b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_adds_every_value_whatever_the_length() {
        for n in [0usize, 1, 7, 8, 9, 127, 128, 129, 1000] {
            let values: Vec<f64> = (0..n).map(|i| i as f64).collect();
            assert_eq!(
                pairwise_sum(&values),
                (n * n.saturating_sub(1) / 2) as f64,
                "n={n}"
            );
        }
    }

    #[test]
    fn floor_division_matches_python_where_the_quotient_rounds_up() {
        // In Python: 1 // 0.1 == 9.0 although 1 / 0.1 == 10.0.
        assert_eq!(py_floordiv(1.0, 0.1), 9.0);
        assert_eq!(py_floordiv(7.0, 2.0), 3.0);
        assert_eq!(py_floordiv(-7.0, 2.0), -4.0);
        assert_eq!(py_floordiv(10_000.0 * 0.5, 101.0 + 101.0 * 0.002), 49.0);
    }

    #[test]
    fn variance_and_geometric_mean_follow_pandas_and_backtesting_py() {
        assert!(variance(&[1.0]).is_nan());
        assert_eq!(variance(&[1.0, 3.0]), 2.0);
        assert!(geometric_mean(&[]).is_nan());
        assert_eq!(geometric_mean(&[0.1, -1.0]), 0.0);
        let g = geometric_mean(&[0.21, 0.0]);
        assert!((g - 0.1).abs() < 1e-15, "{g}");
    }
}
