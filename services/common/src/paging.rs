//! Paging of the List* RPCs. Page tokens are offsets into the filtered, ordered list: stateless
//! for the server, and stable while the list does not change between pages.

use crate::error::ServiceError;

/// The page size of the List RPCs of jobs, training sessions, models and backtests when a
/// request gives none (the data service's dataset list states its own).
pub const DEFAULT_SIZE: usize = 50;
/// The largest page those List RPCs return.
pub const MAX_SIZE: usize = 500;

/// One page of a list, as a request asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

/// A page of items with what the response reports besides them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Empty on the last page.
    pub next_page_token: String,
    /// Items over all pages.
    pub total_size: i32,
}

impl Page {
    /// The page a request asks for: `size` 0 means `default`, larger than `max` means `max`;
    /// `token` is empty for the first page. `INVALID_ARGUMENT` for a negative size or a token
    /// this server did not issue.
    pub fn parse(size: i32, token: &str, default: usize, max: usize) -> Result<Self, ServiceError> {
        let limit = match usize::try_from(size) {
            Ok(0) => default,
            Ok(n) => n.min(max),
            Err(_) => {
                return Err(ServiceError::invalid_argument(
                    "page_size",
                    format!("{size} is negative"),
                ));
            }
        };
        let offset = if token.is_empty() {
            0
        } else {
            token.parse().map_err(|_| {
                ServiceError::invalid_argument(
                    "page_token",
                    "not a token from a previous response of this list",
                )
            })?
        };
        Ok(Self { offset, limit })
    }

    /// [`Page::parse`] with the usual sizes, [`DEFAULT_SIZE`] and [`MAX_SIZE`].
    pub fn usual(size: i32, token: &str) -> Result<Self, ServiceError> {
        Self::parse(size, token, DEFAULT_SIZE, MAX_SIZE)
    }

    /// The token of the page after this one in a list of `total` items; empty when this is
    /// the last.
    pub fn next_token(self, total: usize) -> String {
        let next = self.offset.saturating_add(self.limit);
        if next < total {
            next.to_string()
        } else {
            String::new()
        }
    }

    /// This page of `items` (the whole filtered, ordered list).
    pub fn of<T>(self, items: Vec<T>) -> Paged<T> {
        let total = items.len();
        Paged {
            next_page_token: self.next_token(total),
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
            items: items
                .into_iter()
                .skip(self.offset)
                .take(self.limit)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_walk_the_list_and_the_last_has_no_token() {
        let first = Page::parse(2, "", 50, 500).unwrap();
        let page = first.of(vec![1, 2, 3]);
        assert_eq!((page.items, page.total_size), (vec![1, 2], 3));
        let second = Page::parse(2, &page.next_page_token, 50, 500).unwrap();
        let page = second.of(vec![1, 2, 3]);
        assert_eq!(page.items, vec![3]);
        assert!(page.next_page_token.is_empty());
    }

    #[test]
    fn sizes_default_and_cap_and_bad_input_names_its_field() {
        assert_eq!(Page::parse(0, "", 50, 500).unwrap().limit, 50);
        assert_eq!(Page::parse(10_000, "", 50, 500).unwrap().limit, 500);
        for (size, token, field) in [(-1, "", "page_size"), (5, "x", "page_token")] {
            match Page::parse(size, token, 50, 500).unwrap_err() {
                ServiceError::InvalidArgument { violations, .. } => {
                    assert_eq!(violations[0].field, field);
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
