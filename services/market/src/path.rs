//! File-system names built from outside input (strategy names, model ids, session ids): the
//! one rule for a name that may become a directory, and the one checked join under a root.
//!
//! Invariants: a [`safe_name`] is a single path component that is neither hidden nor reserved
//! (`A–Z a–z 0–9 . _ -`, starting with a letter or digit, at most [`MAX_NAME_LEN`] bytes), so
//! it can never climb out of its directory, collide with `_sessions`-style internal
//! directories or hide itself; [`join_under`] returns a path inside its root or an error, never
//! anything else.

use std::path::{Component, Path, PathBuf};

use crate::shown::shown;

/// The longest name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// What a [`safe_name`] may be, for error messages.
pub const SAFE_NAME_RULE: &str = "letters, digits, '.', '_' and '-', starting with a letter or \
                                  digit, at most 64 characters";

/// What keeps a name from being a safe single path component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Empty,
    TooLong(usize),
    Char(char),
    Start,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => write!(f, "must not be empty"),
            Self::TooLong(max) => write!(f, "is longer than {max} characters"),
            Self::Char(c) => write!(f, "contains {c:?}"),
            Self::Start => write!(f, "must start with a letter or digit"),
        }
    }
}

/// The rule [`safe_name`] and symbols ([`crate::normalize_symbol`]) share: `A–Z a–z 0–9 . _ -`,
/// starting with a letter or digit, at most `max_len` bytes.
pub(crate) fn fault(name: &str, max_len: usize) -> Option<Fault> {
    if name.is_empty() {
        Some(Fault::Empty)
    } else if name.len() > max_len {
        Some(Fault::TooLong(max_len))
    } else if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(Fault::Char(bad))
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        Some(Fault::Start)
    } else {
        None
    }
}

/// `raw` if it is a safe single path component (see the module doc); otherwise what is wrong
/// with it, with `raw` cut to a readable length.
pub fn safe_name(raw: &str) -> Result<&str, String> {
    match fault(raw, MAX_NAME_LEN) {
        None => Ok(raw),
        Some(fault) => Err(format!(
            "{} {fault}; allowed are {SAFE_NAME_RULE}",
            shown(raw)
        )),
    }
}

/// `root` joined with `relative`, refused unless the result stays inside `root`: every
/// component of `relative` must be a plain name (no `..`, no `.`, no root or drive prefix, no
/// empty path) and carry no NUL.
pub fn join_under(root: &Path, relative: impl AsRef<Path>) -> Result<PathBuf, String> {
    let relative = relative.as_ref();
    let text = relative.to_string_lossy();
    if relative.as_os_str().is_empty() {
        return Err(format!(
            "an empty path is not a name under {}",
            root.display()
        ));
    }
    if text.contains('\0') || text.contains('\\') {
        return Err(format!(
            "{} is not a plain path under {}",
            shown(&text),
            root.display()
        ));
    }
    for component in relative.components() {
        if !matches!(component, Component::Normal(_)) {
            return Err(format!(
                "{} leaves {} (only plain names are allowed, no '..', '.' or leading '/')",
                shown(&text),
                root.display()
            ));
        }
    }
    let joined = root.join(relative);
    if !joined.starts_with(root) {
        return Err(format!("{} leaves {}", shown(&text), root.display()));
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_safe() {
        for ok in ["tiny_rsi", "v3_multi_timeframe_example", "A.b-c", "9lives"] {
            assert_eq!(safe_name(ok), Ok(ok));
        }
        assert!(safe_name(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn hidden_reserved_and_climbing_names_are_refused_saying_what_is_allowed() {
        for bad in [
            "",
            "_sessions",
            ".hidden",
            "...",
            "..",
            ".",
            "a/b",
            "/abs",
            "a\\b",
            "nul\0byte",
            " padded",
            "with space",
            &"x".repeat(65),
        ] {
            let err = safe_name(bad).unwrap_err();
            assert!(
                err.contains("allowed are letters, digits"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn joins_stay_under_the_root() {
        let root = Path::new("/models");
        assert_eq!(
            join_under(root, "tiny/EURUSD_1h_v1"),
            Ok(PathBuf::from("/models/tiny/EURUSD_1h_v1"))
        );
        for bad in [
            "",
            "/EURUSD_1h_v1",
            "../etc",
            "a/../../b",
            "./a",
            "a\\..\\b",
            "a\0b",
        ] {
            assert!(join_under(root, bad).is_err(), "{bad:?}");
        }
    }
}
