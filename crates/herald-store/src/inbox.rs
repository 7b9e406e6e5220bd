//! What the store keeps for inboxes: the records passed to and from the [`crate::Store`]
//! methods, and their rows. The tree model they implement is in `herald_core::inbox::tree`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::id::{AppId, EndpointId, Id, InboxEntryId, InboxId};
use herald_core::inbox::body::Encoding;
use herald_core::inbox::tree::{ChildQuery, Location, Write};
use herald_core::inbox::{Forward, Inbox, SealedVerification, VerificationConfig};
use herald_core::model::Message;
use herald_core::page::{ListParams, Page};

use crate::rows::{time, to_json};
use crate::{Result, StoreError};

/// One accepted write as stored: a request's value at `path`/`key`, with how it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEntry {
    /// The entry's id; it starts with the time it was received.
    pub id: InboxEntryId,
    /// The inbox that accepted the write.
    pub inbox_id: InboxId,
    /// The parent location, slash-joined (`""` at the root).
    pub path: String,
    /// The last segment of the location written (for a POST, the generated key).
    pub key: String,
    /// The request's HTTP method (`POST`, `PUT`, `PATCH`, …).
    pub method: String,
    /// The value as JSON text: what the tree holds here now (a PATCH's row holds the merge;
    /// later writes below may have pruned it).
    pub value: String,
    /// How the body arrived, and so how to give it back.
    pub encoding: Encoding,
    /// Request headers, names lowercased, repeated ones joined with `, `.
    pub headers: Vec<(String, String)>,
    /// The client's IP address, when the server knew it.
    pub source: Option<String>,
    /// When the request was received.
    pub received_at: DateTime<Utc>,
}

/// A signed request's mark against replays (see `Store::write_inbox`).
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    /// What identifies the request (`herald_core::signing::replay_key`).
    pub key: String,
    /// Marks from before this are forgotten: their signatures can no longer be presented.
    pub forget_before: DateTime<Utc>,
}

/// A write to store (see `Store::write_inbox`).
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The entry's id, chosen by the caller.
    pub id: InboxEntryId,
    /// The inbox written to.
    pub inbox_id: InboxId,
    /// Where the row goes: for a POST, the path written to plus the generated key.
    pub location: Location,
    /// The request's HTTP method.
    pub method: String,
    /// The value to apply at `location`.
    pub write: Write,
    /// How the body arrived.
    pub encoding: Encoding,
    /// Request headers to keep (the inbox's `dropHeaders` already left out), as in
    /// [`InboxEntry::headers`].
    pub headers: Vec<(String, String)>,
    /// The client's IP address, when known.
    pub source: Option<String>,
    /// When the request was received; the entry's time.
    pub received_at: DateTime<Utc>,
    /// Set for a verified request: the write is refused (`Conflict`) if the same request was
    /// accepted since `forget_before`.
    pub replay: Option<ReplayGuard>,
}

/// Which entries a list or an export covers.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    /// Only entries at this location or below it.
    pub under: Option<Location>,
    /// Only entries received after this time.
    pub after: Option<DateTime<Utc>>,
    /// Only entries received before this time.
    pub before: Option<DateTime<Utc>>,
    /// Only entries up to this id (an export fixes it when it starts, so that its passes see
    /// the same entries).
    pub up_to: Option<InboxEntryId>,
}

/// The answer of a tree read.
#[derive(Debug, Clone, PartialEq)]
pub enum TreeRead {
    /// The JSON at the location (`null` when there is nothing).
    Value(serde_json::Value),
    /// The read would need more rows than allowed: narrow it or export.
    TooLarge,
}

#[derive(sqlx::FromRow)]
pub(crate) struct InboxRow {
    id: String,
    name: String,
    app_id: Option<String>,
    description: String,
    token_hash: Vec<u8>,
    verification: Option<String>,
    verify_secret: Option<Vec<u8>>,
    max_body_bytes: Option<i64>,
    rate_limit: Option<i64>,
    forward: Option<String>,
    drop_headers: Option<String>,
    public_write: bool,
    rejected_count: i64,
    created_at: i64,
    updated_at: i64,
}

/// An inbox's columns; its `name` is the one its application gave it (`local_name`).
pub(crate) const INBOX_COLUMNS: &str = "id, COALESCE(local_name, name) AS name, app_id, \
    description, token_hash, verification, verify_secret, max_body_bytes, rate_limit, forward, \
    drop_headers, public_write, rejected_count, created_at, updated_at";

fn json_column<T: serde::de::DeserializeOwned>(
    column: &str,
    text: Option<String>,
) -> Result<Option<T>> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
    })
    .transpose()
}

impl TryFrom<InboxRow> for Inbox {
    type Error = StoreError;
    fn try_from(r: InboxRow) -> Result<Self> {
        let config: Option<VerificationConfig> = json_column("verification", r.verification)?;
        let verification = match (config, r.verify_secret) {
            (Some(config), Some(secret)) => Some(SealedVerification { config, secret }),
            (None, None) => None,
            _ => {
                return Err(StoreError::Corrupt(
                    "verification without its secret".into(),
                ));
            }
        };
        Ok(Inbox {
            id: Id::from_trusted(r.id),
            name: r.name,
            app_id: r.app_id.map(Id::from_trusted),
            description: r.description,
            token_hash: r.token_hash,
            verification,
            max_body_bytes: r.max_body_bytes.and_then(|v| u32::try_from(v).ok()),
            rate_limit: r.rate_limit.and_then(|v| u32::try_from(v).ok()),
            forward: json_column::<Forward>("forward", r.forward)?,
            drop_headers: json_column::<Vec<String>>("drop_headers", r.drop_headers)?
                .unwrap_or_default(),
            public_write: r.public_write,
            rejected_count: r.rejected_count,
            created_at: time(r.created_at)?,
            updated_at: time(r.updated_at)?,
        })
    }
}

pub(crate) fn verification_column(inbox: &Inbox) -> (Option<String>, Option<Vec<u8>>) {
    match &inbox.verification {
        Some(v) => (Some(to_json(&v.config)), Some(v.secret.clone())),
        None => (None, None),
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EntryRow {
    id: String,
    inbox_id: String,
    path: String,
    key: String,
    method: String,
    value: String,
    encoding: String,
    headers: String,
    source: Option<String>,
    received_at: i64,
}

pub(crate) const ENTRY_COLUMNS: &str =
    "id, inbox_id, path, key, method, value, encoding, headers, source, received_at";

impl TryFrom<EntryRow> for InboxEntry {
    type Error = StoreError;
    fn try_from(r: EntryRow) -> Result<Self> {
        let headers: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&r.headers)
            .map_err(|e| StoreError::Corrupt(format!("headers: {e}")))?;
        Ok(InboxEntry {
            id: Id::from_trusted(r.id),
            inbox_id: Id::from_trusted(r.inbox_id),
            path: r.path,
            key: r.key,
            method: r.method,
            value: r.value,
            encoding: Encoding::parse(&r.encoding)
                .ok_or_else(|| StoreError::Corrupt(format!("encoding: {}", r.encoding)))?,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                .collect(),
            source: r.source,
            received_at: time(r.received_at)?,
        })
    }
}

/// `dropHeaders` as stored: a JSON array, or NULL when empty.
pub(crate) fn drop_headers_column(inbox: &Inbox) -> Option<String> {
    (!inbox.drop_headers.is_empty()).then(|| to_json(&inbox.drop_headers))
}

pub(crate) fn headers_column(headers: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    to_json(&map)
}

/// The smallest string greater than every string that starts with `prefix`: `prefix` with its
/// last byte incremented. Used with `/`-terminated prefixes (`'a/'` → `'a0'`), so the result is
/// always valid UTF-8.
pub(crate) fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8(bytes).expect("only `/` is incremented")
}

/// The inbox role (see `herald_core::inbox` and ARCHITECTURE.md, "Inboxes"): inboxes, the
/// writes they accept and the JSON tree those build.
#[async_trait]
pub trait InboxStore: Send + Sync {
    /// Fails with `Conflict` when its application (or, for an inbox of no application, another
    /// inbox of none) has one of that name.
    async fn create_inbox(&self, inbox: &Inbox) -> Result<()>;
    /// Looks an inbox up by id, or else by the name the older `/in/{name}/…` form resolves: the
    /// name of an inbox of no application or of one made before names were per application.
    async fn get_inbox(&self, id_or_name: &str) -> Result<Option<Inbox>>;
    /// Looks an application's inbox up by the name the application gave it.
    async fn get_inbox_of(&self, app: &AppId, name: &str) -> Result<Option<Inbox>>;
    /// Every inbox with this id or name, in any application (at most 100): `/in/{name}/…`
    /// takes the one whose token the request presents.
    async fn find_inboxes_named(&self, name: &str) -> Result<Vec<Inbox>>;
    /// Lists inboxes; `only` restricts the list to one application's (an app-scoped token).
    async fn list_inboxes(&self, params: &ListParams, only: Option<&AppId>) -> Result<Page<Inbox>>;
    /// Saves every field but the counters.
    async fn update_inbox(&self, inbox: &Inbox) -> Result<()>;
    /// Deletes an inbox with its entries.
    async fn delete_inbox(&self, id: &InboxId) -> Result<bool>;
    /// Counts one request refused for its signature.
    async fn count_inbox_rejection(&self, id: &InboxId) -> Result<()>;

    /// Applies a write to the inbox's tree and stores it as an entry, in one transaction with
    /// `forward` (a message and its delivery tasks, as `create_message`): either both are
    /// committed or neither. Returns the stored entry and the endpoints that got a task.
    /// `NotFound` when the inbox is gone; `Conflict` when the message's `eventId` is taken.
    async fn write_inbox(
        &self,
        entry: &NewEntry,
        forward: Option<&Message>,
    ) -> Result<(InboxEntry, Vec<EndpointId>)>;
    /// The JSON at `at`, with `query` applied to its children, reading at most `max_rows` rows.
    async fn read_inbox_tree(
        &self,
        inbox: &InboxId,
        at: &Location,
        query: &ChildQuery,
        max_rows: usize,
    ) -> Result<TreeRead>;
    /// Firebase's `shallow=true` read at `at`: a primitive as it is, otherwise each child
    /// that holds data mapped to `true` (as `herald_core::inbox::tree::shallow` of the full
    /// read), found without reading the children's values; `TooLarge` beyond `max_keys`
    /// children.
    async fn read_inbox_shallow(
        &self,
        inbox: &InboxId,
        at: &Location,
        max_keys: usize,
    ) -> Result<TreeRead>;
    /// Lists entries, keyset-paginated on their (time-ordered) ids.
    async fn list_inbox_entries(
        &self,
        inbox: &InboxId,
        filter: &EntryFilter,
        params: &ListParams,
    ) -> Result<Page<InboxEntry>>;
    /// How many entries of `inbox` match `filter`.
    async fn count_inbox_entries(&self, inbox: &InboxId, filter: &EntryFilter) -> Result<u64>;
    /// The newest entry's id, if any.
    async fn last_inbox_entry(
        &self,
        inbox: &InboxId,
    ) -> Result<Option<herald_core::id::InboxEntryId>>;
}
