//! Fuzzy membership functions, evaluated over whole columns.
//!
//! Every function maps a value to a membership in [0, 1]; a NaN input gives NaN (unknown), so
//! indicator warm-up stays visible downstream. Output columns are named `{indicator}_{set}`.

use crate::error::{Result, StrategyError};
use crate::spec::{FuzzySetKind, FuzzySetSpec};

/// A validated membership function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MembershipFunction {
    /// Rises from `a` to 1 at `b`, falls to 0 at `c`. `a == b` (or `b == c`) makes a shoulder:
    /// membership 1 at and left (right) of the peak inside `[a, c]`.
    Triangular { a: f64, b: f64, c: f64 },
    /// Rises from `a` to 1 at `b`, stays 1 to `c`, falls to 0 at `d`.
    Trapezoidal { a: f64, b: f64, c: f64, d: f64 },
    /// `exp(−(x − mean)² / (2 σ²))`.
    Gaussian { mean: f64, sigma: f64 },
}

impl MembershipFunction {
    /// Builds and checks one from a strategy file's set; `path` is the YAML path of its
    /// `parameters` for errors.
    pub fn from_spec(spec: &FuzzySetSpec, path: &str) -> Result<Self> {
        let p = &spec.parameters;
        if let Some(i) = p.iter().position(|v| !v.is_finite()) {
            return Err(StrategyError::invalid(
                format!("{path}[{i}]"),
                "must be a finite number",
            ));
        }
        let expect = |n: usize, shape: &str| -> Result<()> {
            if p.len() == n {
                Ok(())
            } else {
                Err(StrategyError::invalid(
                    path,
                    format!(
                        "a {shape} set takes exactly {n} parameters, got {}",
                        p.len()
                    ),
                ))
            }
        };
        let ordered = |what: &str| -> Result<()> {
            if p.windows(2).all(|w| w[0] <= w[1]) {
                Ok(())
            } else {
                Err(StrategyError::invalid(
                    path,
                    format!("{what} must be in non-decreasing order"),
                ))
            }
        };
        match spec.kind {
            FuzzySetKind::Triangular => {
                expect(3, "triangular")?;
                ordered("[a, b, c]")?;
                if p[0] == p[2] {
                    return Err(StrategyError::invalid(path, "a triangle needs a < c"));
                }
                Ok(Self::Triangular {
                    a: p[0],
                    b: p[1],
                    c: p[2],
                })
            }
            FuzzySetKind::Trapezoidal => {
                expect(4, "trapezoidal")?;
                ordered("[a, b, c, d]")?;
                if p[0] == p[3] {
                    return Err(StrategyError::invalid(path, "a trapezoid needs a < d"));
                }
                Ok(Self::Trapezoidal {
                    a: p[0],
                    b: p[1],
                    c: p[2],
                    d: p[3],
                })
            }
            FuzzySetKind::Gaussian => {
                expect(2, "gaussian")?;
                if p[1] <= 0.0 {
                    return Err(StrategyError::invalid(
                        format!("{path}[1]"),
                        "sigma must be > 0",
                    ));
                }
                Ok(Self::Gaussian {
                    mean: p[0],
                    sigma: p[1],
                })
            }
        }
    }

    /// Membership of one value.
    #[inline]
    pub fn membership(&self, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        match *self {
            Self::Triangular { a, b, c } => ramp(x, a, b, b, c),
            Self::Trapezoidal { a, b, c, d } => ramp(x, a, b, c, d),
            Self::Gaussian { mean, sigma } => {
                let z = (x - mean) / sigma;
                (-0.5 * z * z).exp()
            }
        }
    }

    /// Memberships of a whole column (one tight loop, no per-element dispatch on the shape).
    pub fn evaluate(&self, xs: &[f64]) -> Vec<f64> {
        match *self {
            Self::Triangular { a, b, c } => {
                xs.iter().map(|&x| nan_or(x, ramp(x, a, b, b, c))).collect()
            }
            Self::Trapezoidal { a, b, c, d } => {
                xs.iter().map(|&x| nan_or(x, ramp(x, a, b, c, d))).collect()
            }
            Self::Gaussian { .. } => xs.iter().map(|&x| self.membership(x)).collect(),
        }
    }
}

#[inline]
fn nan_or(x: f64, value: f64) -> f64 {
    if x.is_nan() { f64::NAN } else { value }
}

/// Trapezoid `a ≤ b ≤ c ≤ d` (a triangle `a, b, c` is the trapezoid `a, b, b, c`): 0 outside
/// `[a, d]`, rising on `[a, b]`, 1 on `[b, c]`, falling on `[c, d]`. Vertical edges (`a == b`,
/// `c == d`) are 1 at the edge.
#[inline]
fn ramp(x: f64, a: f64, b: f64, c: f64, d: f64) -> f64 {
    // Both slopes are computed whichever applies, so a column's loop has no branches and
    // vectorises; the one that does not apply is discarded (a vertical edge's 0/0 with it).
    let rising = (x - a) / (b - a);
    let falling = (d - x) / (d - c);
    if x < a || x > d {
        0.0
    } else if x < b {
        rising
    } else if x <= c {
        1.0
    } else {
        falling
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::test_support::*;

    fn set(kind: FuzzySetKind, parameters: &[f64]) -> Result<MembershipFunction> {
        MembershipFunction::from_spec(
            &FuzzySetSpec {
                kind,
                parameters: parameters.to_vec(),
            },
            "p",
        )
    }

    #[test]
    fn triangular_hand_worked() {
        let f = set(FuzzySetKind::Triangular, &[0.0, 20.0, 35.0]).unwrap();
        // 10 is halfway up: 0.5; 20 peak: 1; 30: (35−30)/15 = 1/3; outside: 0.
        assert_close(
            &f.evaluate(&[-1.0, 0.0, 10.0, 20.0, 30.0, 35.0, 50.0, NAN]),
            &[0.0, 0.0, 0.5, 1.0, 1.0 / 3.0, 0.0, 0.0, NAN],
            1e-12,
        );
        // Left shoulder: a == b.
        let f = set(FuzzySetKind::Triangular, &[0.0, 0.0, 10.0]).unwrap();
        assert_close(&f.evaluate(&[0.0, 5.0, -0.1]), &[1.0, 0.5, 0.0], 1e-12);
    }

    #[test]
    fn trapezoidal_and_gaussian_hand_worked() {
        let f = set(FuzzySetKind::Trapezoidal, &[0.0, 10.0, 20.0, 40.0]).unwrap();
        assert_close(
            &f.evaluate(&[5.0, 15.0, 30.0, 41.0]),
            &[0.5, 1.0, 0.5, 0.0],
            1e-12,
        );
        let g = set(FuzzySetKind::Gaussian, &[50.0, 10.0]).unwrap();
        // one σ away: exp(−1/2) = 0.6065306597126334
        assert_close(
            &g.evaluate(&[50.0, 60.0, 40.0]),
            &[1.0, 0.6065306597126334, 0.6065306597126334],
            1e-15,
        );
    }

    #[test]
    fn invalid_sets_are_rejected_with_their_path() {
        let err = set(FuzzySetKind::Triangular, &[0.0, 30.0, 20.0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "p: [a, b, c] must be in non-decreasing order"
        );
        assert!(set(FuzzySetKind::Triangular, &[0.0, 1.0]).is_err());
        assert!(set(FuzzySetKind::Triangular, &[1.0, 1.0, 1.0]).is_err());
        assert!(
            set(FuzzySetKind::Gaussian, &[1.0, 0.0])
                .unwrap_err()
                .to_string()
                .starts_with("p[1]")
        );
        assert!(set(FuzzySetKind::Trapezoidal, &[0.0, 1.0, 2.0, f64::INFINITY]).is_err());
    }
}
