//! Keyset pagination shared by every list route.
//!
//! A list is ordered by a unique key (an id or an event type name). A page is asked for with the
//! key to continue after (`iterator`) or, when the iterator starts with `-`, the key to go back
//! before (`prevIterator`). Because the cursor is a key and not an offset, inserting items
//! between two page requests can never make an existing item be skipped or shown twice.
//!
//! An iterator ends with a check of what comes before it (`~` and six characters of a digest):
//! one that Herald did not hand out (mistyped, cut short, made up) is refused rather than
//! read as a position that silently answers an empty page. The check is not a secret: a
//! position is no privilege, and any key an iterator could name is one the caller may list.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The page size when a request gives no `limit`.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `limit` the API accepts; a larger one is refused.
pub const MAX_LIMIT: usize = 250;

/// The direction a list is sorted in by its key (`order` in the API: `ascending`, `descending`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Smallest key first (oldest first for time-ordered ids).
    #[default]
    Ascending,
    /// Largest key first (newest first for time-ordered ids).
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
    /// The page after `key`.
    pub fn after(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            backwards: false,
        }
    }

    /// The page before `key`.
    pub fn before(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            backwards: true,
        }
    }

    /// Reads an iterator as the API hands it out (see [`Cursor::next_iterator`] and
    /// [`Cursor::prev_iterator`]); `None` for anything else.
    pub fn parse(iterator: &str) -> Option<Self> {
        let (body, check) = iterator.rsplit_once('~')?;
        if check != self::check(body) {
            return None;
        }
        let (key, backwards) = match body.as_bytes().first() {
            None => return None,
            Some(b'-') => (&body[1..], true),
            Some(b'+') => (&body[1..], false),
            Some(_) => (body, false),
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
            checked(format!("+{key}"))
        } else {
            checked(key.to_owned())
        }
    }

    /// The iterator going back before `key`: `-key`.
    pub fn prev_iterator(key: &str) -> String {
        checked(format!("-{key}"))
    }
}

/// `body~check`.
fn checked(body: String) -> String {
    let check = check(&body);
    format!("{body}~{check}")
}

/// Six base62 characters of a digest of an iterator's body.
fn check(body: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digest = Sha256::digest([b"herald iterator\0", body.as_bytes()].concat());
    digest[..6]
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// A page request as the store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    /// Most items on the page, at most [`MAX_LIMIT`].
    pub limit: usize,
    /// Where the page starts; `None` for the first page.
    pub cursor: Option<Cursor>,
    /// The order of the list.
    pub order: Order,
}

impl ListParams {
    /// The first page of a list: no cursor.
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
    /// The page's items, in list order even when reached by going back.
    pub items: Vec<T>,
    /// Whether the scan found more items beyond this page (in its own direction).
    pub more_in_scan_direction: bool,
    /// Whether the page was reached by going back (a `prevIterator`).
    pub backwards: bool,
}

impl<T> Page<T> {
    /// `done` in the API sense: nothing follows this page in list order. A page reached by going
    /// back always has the page it came from after it.
    pub fn done(&self) -> bool {
        !self.backwards && !self.more_in_scan_direction
    }

    /// Converts the items, keeping the paging facts.
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
            Cursor::parse(&Cursor::prev_iterator("app_1")),
            Some(Cursor::before("app_1"))
        );
        assert_eq!(Cursor::parse("-"), None);
        assert_eq!(Cursor::parse(""), None);
        // Only iterators handed out read back: not a bare key, a changed key or check, a key
        // cut short.
        let issued = Cursor::next_iterator("msg_2");
        for made_up in [
            "msg_2",
            "-app_1",
            &issued.replace("msg_2", "msg_3"),
            &issued[..issued.len() - 1],
            &format!("{issued}x"),
            "~",
            &format!("~{}", &issued[issued.len() - 6..]),
        ] {
            assert_eq!(Cursor::parse(made_up), None, "{made_up}");
        }
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
            cursor: Some(Cursor::before("c")),
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
