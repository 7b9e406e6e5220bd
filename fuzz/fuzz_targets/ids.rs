//! Ids and list iterators (`herald_core::id`, `herald_core::page`): every API path segment and
//! `iterator` query value reaches these parsers. An id that parses must print back unchanged,
//! its creation time must order it among other ids, and an iterator Herald hands out must read
//! back as the key and direction it was made from.
#![no_main]

use arbitrary::Arbitrary;
use chrono::{DateTime, Utc};
use herald_core::id::{
    ApiKeyId, AppId, AttemptId, BODY_LEN, EndpointId, Id, IdKind, InboxEntryId, InboxId, MessageId,
};
use herald_core::page::{Cursor, ListParams, Order};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    text: String,
    millis: i64,
    limit: u16,
    rows: u16,
    descending: bool,
}

/// Ids carry 48 bits of milliseconds; later times clamp to the last of them.
const MAX_MILLIS: i64 = (1 << 48) - 1;

fn check_id<K: IdKind>(text: &str) -> Option<Id<K>> {
    let id = Id::<K>::parse(text)?;
    assert_eq!(id.as_str(), text);
    assert_eq!(id.body().len(), BODY_LEN);
    assert!(text.starts_with(K::PREFIX));
    // The JSON form (request bodies, stored rows) agrees with the plain parser.
    let json = serde_json::to_string(text).unwrap();
    assert_eq!(serde_json::from_str::<Id<K>>(&json).unwrap(), id);
    if let Some(at) = id.timestamp() {
        // The smallest id of its millisecond is not after it, the next millisecond's is.
        assert!(Id::<K>::lower_bound_at(at) <= id);
        // (Unless it is in the last millisecond ids can carry: later times clamp to it.)
        if let Some(next) = at.checked_add_signed(chrono::Duration::milliseconds(1))
            && next.timestamp_millis() <= MAX_MILLIS
        {
            assert!(id < Id::<K>::lower_bound_at(next), "{text} at {at}");
        }
    }
    Some(id)
}

fuzz_target!(|input: Input| {
    let text = input.text.as_str();
    let parsed = [
        check_id::<herald_core::id::AppKind>(text).is_some(),
        check_id::<herald_core::id::EndpointKind>(text).is_some(),
        check_id::<herald_core::id::MessageKind>(text).is_some(),
        check_id::<herald_core::id::AttemptKind>(text).is_some(),
        check_id::<herald_core::id::ApiKeyKind>(text).is_some(),
        check_id::<herald_core::id::InboxKind>(text).is_some(),
        check_id::<herald_core::id::InboxEntryKind>(text).is_some(),
    ];
    // Prefixes tell kinds apart: a text is an id of one kind at most.
    assert!(parsed.iter().filter(|&&p| p).count() <= 1, "{text}");
    let _ = (
        AppId::parse(text),
        EndpointId::parse(text),
        MessageId::parse(text),
        AttemptId::parse(text),
        ApiKeyId::parse(text),
        InboxId::parse(text),
        InboxEntryId::parse(text),
    );

    // Time filters become id ranges: the bound of a time reads back as that time.
    if let Some(at) = DateTime::<Utc>::from_timestamp_millis(input.millis) {
        let bound = MessageId::lower_bound_at(at);
        check_id::<herald_core::id::MessageKind>(bound.as_str()).expect("a bound is an id");
        if (0..=MAX_MILLIS).contains(&input.millis) {
            assert_eq!(bound.timestamp(), Some(at), "{}", input.millis);
        } else if input.millis > MAX_MILLIS {
            let last = DateTime::<Utc>::from_timestamp_millis(MAX_MILLIS).unwrap();
            assert_eq!(bound.timestamp(), Some(last), "{}", input.millis);
        }
    }

    // Iterators.
    if let Some(cursor) = Cursor::parse(text) {
        assert!(!cursor.key.is_empty());
        let again = if cursor.backwards {
            Cursor::prev_iterator(&cursor.key)
        } else {
            Cursor::next_iterator(&cursor.key)
        };
        assert_eq!(Cursor::parse(&again), Some(cursor));
    }
    if !text.is_empty() {
        let next = Cursor::parse(&Cursor::next_iterator(text)).unwrap();
        assert_eq!((next.key.as_str(), next.backwards), (text, false));
        let prev = Cursor::parse(&Cursor::prev_iterator(text)).unwrap();
        assert_eq!((prev.key.as_str(), prev.backwards), (text, true));
    }

    // A page is never longer than asked, and its order is the list's.
    let params = ListParams {
        limit: usize::from(input.limit),
        cursor: Cursor::parse(text),
        order: if input.descending {
            Order::Descending
        } else {
            Order::Ascending
        },
    };
    let fetched = usize::from(input.rows).min(usize::try_from(params.fetch_limit()).unwrap());
    let rows: Vec<usize> = (0..fetched).collect();
    let page = params.finish(rows);
    assert!(page.items.len() <= params.limit);
    assert_eq!(page.more_in_scan_direction, fetched > params.limit);
    if page.backwards {
        assert!(page.items.windows(2).all(|w| w[0] > w[1]));
    } else {
        assert!(page.items.windows(2).all(|w| w[0] < w[1]));
    }
});
