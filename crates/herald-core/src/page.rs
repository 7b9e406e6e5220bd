//! Keyset pagination shared by every list route.
//!
//! A list is ordered by a unique key (an id or an event type name). A page is asked for with the
//! key to continue after (`iterator`) or, when the iterator starts with `-`, the key to go back
//! before (`prevIterator`). Because the cursor is a key and not an offset, inserting items
//! between two page requests can never make an existing item be skipped or shown twice.

use serde::{Deserialize, Serialize};

/// Default and maximum page sizes of the API.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 250;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Ascending,
    Descending,
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The key of the last (or, going back, first) item the client has seen.
    pub key: String,
    /// `true` for a `prevIterator`: the page holds the items just before `key`.
    pub backwards: bool,
}

impl Cursor {
    /// Reads an iterator as the API hands it out (see [`Cursor::next_iterator`] and
    /// [`Cursor::prev_iterator`]).
    pub fn parse(iterator: &str) -> Option<Self> {
        let (key, backwards) = match iterator.as_bytes().first() {
            None => return None,
            Some(b'-') => (&iterator[1..], true),
            Some(b'+') => (&iterator[1..], false),
            Some(_) => (iterator, false),
        };
        (!key.is_empty()).then(|| Self {
            key: key.to_owned(),
            backwards,
        })
    }

    /// The iterator continuing after `key`: the key itself (ids are plain), with a `+` in front
    /// when the key itself starts with `-` or `+` (event type names may), so it cannot be read
    /// as going back.
    pub fn next_iterator(key: &str) -> String {
        if key.starts_with(['-', '+']) {
            format!("+{key}")
        } else {
            key.to_owned()
        }
    }

    /// The iterator going back before `key`: `-key`.
    pub fn prev_iterator(key: &str) -> String {
        format!("-{key}")
    }
}

/// A page request as the store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    pub limit: usize,
    pub cursor: Option<Cursor>,
    pub order: Order,
}

impl ListParams {
    pub fn first(limit: usize, order: Order) -> Self {
        Self {
            limit,
            cursor: None,
            order,
        }
    }

    /// The order in which the store must scan the key: the list order, flipped when going back.
    pub fn scan_ascending(&self) -> bool {
        let backwards = self.cursor.as_ref().is_some_and(|c| c.backwards);
        (self.order == Order::Ascending) != backwards
    }

    /// Fetch one more than the limit so that `Page::more` can be told without a count.
    pub fn fetch_limit(&self) -> i64 {
        i64::try_from(self.limit).unwrap_or(i64::MAX - 1) + 1
    }

    /// Turns the rows a store read (in scan order, up to `fetch_limit`) into a page in list order.
    pub fn finish<T>(&self, mut rows: Vec<T>) -> Page<T> {
        let more = rows.len() > self.limit;
        rows.truncate(self.limit);
        let backwards = self.cursor.as_ref().is_some_and(|c| c.backwards);
        if backwards {
            rows.reverse();
        }
        Page {
            items: rows,
            more_in_scan_direction: more,
            backwards,
        }
    }
}

/// One page of items, in list order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Whether the scan found more items beyond this page (in its own direction).
    pub more_in_scan_direction: bool,
    pub backwards: bool,
}

impl<T> Page<T> {
    /// `done` in the API sense: nothing follows this page in list order. A page reached by going
    /// back always has the page it came from after it.
    pub fn done(&self) -> bool {
        !self.backwards && !self.more_in_scan_direction
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            more_in_scan_direction: self.more_in_scan_direction,
            backwards: self.backwards,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iterators() {
        assert_eq!(
            Cursor::parse("-app_1"),
            Some(Cursor {
                key: "app_1".into(),
                backwards: true
            })
        );
        assert_eq!(Cursor::parse("-"), None);
        assert_eq!(Cursor::parse(""), None);
        // Keys starting with `-` survive both directions.
        for key in ["-b", "+c", "plain", "--x"] {
            let next = Cursor::parse(&Cursor::next_iterator(key)).unwrap();
            assert_eq!((next.key.as_str(), next.backwards), (key, false));
            let prev = Cursor::parse(&Cursor::prev_iterator(key)).unwrap();
            assert_eq!((prev.key.as_str(), prev.backwards), (key, true));
        }
    }

    #[test]
    fn finish_reverses_backward_pages() {
        let params = ListParams {
            limit: 2,
            cursor: Cursor::parse("-c"),
            order: Order::Ascending,
        };
        assert!(!params.scan_ascending());
        let page = params.finish(vec!["b", "a", "0"]);
        assert_eq!(page.items, vec!["a", "b"]);
        assert!(!page.done());
        let forward = ListParams::first(5, Order::Descending);
        assert!(!forward.scan_ascending());
        assert!(forward.finish(vec![3, 2, 1]).done());
    }
}
