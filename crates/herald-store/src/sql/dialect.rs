//! What differs between the SQL engines, stated once.
//!
//! The portable SQL (`sql/*.rs`) is `include!`d by each backend module and compiled there
//! against that backend's store type (`SqlStore`), which implements [`Dialect`]. Every place
//! where the engines differ reads one of these items, so a difference is a named, documented
//! choice of the engine rather than a value that happens to be empty on one of them.

/// The engine-specific parts of the SQL stores (see the module documentation).
pub(crate) trait Dialect {
    /// Whether write transactions lock the rows they are about to change, so that concurrent
    /// ones queue on them: true on Postgres, where several transactions run at once; false on
    /// SQLite, whose single writer connection serialises every write transaction anyway.
    const LOCKS_ROWS: bool;

    /// An endpoint's queue lock ($1 is the endpoint id), held until the end of the
    /// transaction, shared by publishes (see `touch_queues`; a release takes it exclusively).
    /// `None` where write transactions are serialised anyway (SQLite).
    const LOCK_QUEUE_SHARED_SQL: Option<&'static str>;

    /// Whether to make queues due with one multi-row upsert. False on Postgres, where the
    /// upsert would lock every queue row it meets, due already or not, so that publishes to a
    /// busy endpoint would queue behind each other's commits; there only rows that change are
    /// written.
    const QUEUE_UPSERT: bool;

    /// The function giving the position of a substring, case-sensitive (`instr`, `strpos`).
    const FIND_SUBSTRING_FN: &'static str;

    /// The condition (on `p`, a `poll_entries` row) that keeps a poll from reading past a
    /// publish still to commit (see `polls.rs`); empty where commit order is `seq` order.
    const POLL_HORIZON_SQL: &'static str;

    /// The clause a `SELECT` ends with to lock its rows for update until the transaction
    /// ends, where [`Dialect::LOCKS_ROWS`]; none otherwise.
    const FOR_UPDATE: &'static str = if Self::LOCKS_ROWS { " FOR UPDATE" } else { "" };

    /// The clause a `SELECT` ends with to keep its rows from changing until the transaction
    /// ends, where [`Dialect::LOCKS_ROWS`]; none otherwise.
    const FOR_SHARE: &'static str = if Self::LOCKS_ROWS { " FOR SHARE" } else { "" };
}
