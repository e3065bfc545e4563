//! Reading an indicator's parameters from its strategy-file entry, with YAML paths in errors
//! and a warning for every parameter the indicator does not use.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Result, StrategyError};
use crate::spec::ConfigWarning;

pub(crate) struct Params<'a> {
    values: &'a BTreeMap<String, serde_norway::Value>,
    path: &'a str,
    used: RefCell<BTreeSet<String>>,
}

impl<'a> Params<'a> {
    pub fn new(values: &'a BTreeMap<String, serde_norway::Value>, path: &'a str) -> Self {
        Self {
            values,
            path,
            used: RefCell::new(BTreeSet::new()),
        }
    }

    /// The first of `names` present (aliases: the original's classes spelled some differently).
    fn lookup(&self, names: &[&str]) -> Option<(&'a str, &'a serde_norway::Value)> {
        for name in names {
            if let Some((key, value)) = self.values.get_key_value(*name) {
                self.used.borrow_mut().insert(key.clone());
                return Some((key.as_str(), value));
            }
        }
        None
    }

    fn error(&self, key: &str, rule: impl Into<String>) -> StrategyError {
        StrategyError::invalid(format!("{}.{key}", self.path), rule)
    }

    /// A whole number ≥ `min`.
    pub fn count(&self, names: &[&str], default: usize, min: usize) -> Result<usize> {
        let Some((key, value)) = self.lookup(names) else {
            return Ok(default);
        };
        let parsed = match value {
            serde_norway::Value::Number(n) => n.as_u64().or_else(|| {
                // 14.0 is a fine period; 14.5 is not.
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            }),
            _ => None,
        };
        match parsed.and_then(|v| usize::try_from(v).ok()) {
            Some(v) if v >= min => Ok(v),
            _ => Err(self.error(key, format!("must be a whole number ≥ {min}"))),
        }
    }

    /// A finite number for which `ok` holds (`rule` says what `ok` checks).
    pub fn number(
        &self,
        names: &[&str],
        default: f64,
        rule: &str,
        ok: impl Fn(f64) -> bool,
    ) -> Result<f64> {
        let Some((key, value)) = self.lookup(names) else {
            return Ok(default);
        };
        match value.as_f64() {
            Some(v) if v.is_finite() && ok(v) => Ok(v),
            _ => Err(self.error(key, format!("must be a number {rule}"))),
        }
    }

    pub fn boolean(&self, names: &[&str], default: bool) -> Result<bool> {
        let Some((key, value)) = self.lookup(names) else {
            return Ok(default);
        };
        value
            .as_bool()
            .ok_or_else(|| self.error(key, "must be true or false"))
    }

    /// One of `allowed` (lower-cased).
    pub fn choice(&self, names: &[&str], default: &str, allowed: &[&str]) -> Result<String> {
        let Some((key, value)) = self.lookup(names) else {
            return Ok(default.to_owned());
        };
        match value.as_str().map(str::to_lowercase) {
            Some(v) if allowed.contains(&v.as_str()) => Ok(v),
            _ => Err(self.error(key, format!("must be one of {}", allowed.join(", ")))),
        }
    }

    /// Every parameter nobody asked for, as warnings.
    pub fn unused_warnings(&self) -> Vec<ConfigWarning> {
        let used = self.used.borrow();
        self.values
            .keys()
            .filter(|k| !used.contains(*k))
            .map(|k| ConfigWarning {
                path: format!("{}.{k}", self.path),
                message: "unknown parameter for this indicator, ignored".to_owned(),
            })
            .collect()
    }
}
