//! What a Postgres run costs the database: its CPU time and the row versions it leaves dead.
//!
//! Svix's server delivers twice Herald's rate on the same Postgres with half its CPU, and the
//! difference was the `deliveries` table: every state change of a delivery rewrote its row,
//! leaving dead versions for vacuum (BENCHMARKS.md). These two figures say whether a change
//! to the write path helped.
//!
//! - **CPU**: the user and system time of every process named `postgres` on this machine
//!   (`/proc/<pid>/stat`), before and after the timed phase. Processes that end during the
//!   phase (an autovacuum worker) take their time with them, so the figure is a floor. Only a
//!   server on this machine can be measured; otherwise the figure is `null`.
//! - **Row versions**: `pg_stat_user_tables` for `deliveries`, read before and after. Each
//!   `UPDATE` leaves one dead version behind; a HOT update (no indexed column changed, room on
//!   the page) is pruned on the page without vacuum or index work.

use std::time::Duration;

use serde::Serialize;
use sqlx::Row as _;

/// Linux's `USER_HZ`: the unit of `/proc/<pid>/stat` times, 100 on every architecture Linux
/// supports today.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU milliseconds used so far by the processes named `postgres`; `None` if there are none.
pub fn postgres_cpu_ms() -> Option<f64> {
    let mut ticks = 0u64;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let path = entry.path();
        let is_postgres =
            std::fs::read_to_string(path.join("comm")).is_ok_and(|comm| comm.trim() == "postgres");
        if !is_postgres {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces): state is the first, utime
        // and stime the 12th and 13th.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let time = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        if let (Some(user), Some(system)) = (time(11), time(12)) {
            ticks += user + system;
            found = true;
        }
    }
    found.then(|| ticks as f64 * 1000.0 / TICKS_PER_SECOND)
}

/// Counters of the `deliveries` table.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableStats {
    pub inserted: i64,
    pub updated: i64,
    pub hot_updated: i64,
    pub dead: i64,
}

impl TableStats {
    /// Reads them, after waiting for the backends to report theirs (Postgres 15 flushes a
    /// backend's statistics at most once a second).
    pub async fn read(url: &str) -> Result<Self, String> {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .map_err(|e| e.to_string())?;
        let row = sqlx::query(
            "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd, n_dead_tup
             FROM pg_stat_user_tables WHERE relname = 'deliveries'",
        )
        .fetch_optional(&pool)
        .await
        .map_err(|e| e.to_string())?;
        pool.close().await;
        Ok(match row {
            Some(row) => Self {
                inserted: row.try_get(0).unwrap_or(0),
                updated: row.try_get(1).unwrap_or(0),
                hot_updated: row.try_get(2).unwrap_or(0),
                dead: row.try_get(3).unwrap_or(0),
            },
            None => Self::default(),
        })
    }

    /// What happened between `self` and `later`.
    pub fn since(self, later: Self) -> Self {
        Self {
            inserted: later.inserted - self.inserted,
            updated: later.updated - self.updated,
            hot_updated: later.hot_updated - self.hot_updated,
            dead: later.dead,
        }
    }
}

/// What a Postgres run cost the database server (`None` on SQLite, or when not measurable).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DatabaseCost {
    /// CPU time of the `postgres` processes per delivery, in milliseconds.
    pub postgres_cpu_ms_per_delivery: Option<f64>,
    /// `UPDATE`s of `deliveries` rows per delivery: each leaves one dead row version.
    pub row_updates_per_delivery: Option<f64>,
    /// Those that were not HOT, per delivery: each wrote an entry in every index and left a
    /// dead version that only vacuum reclaims (a HOT update's is pruned on its page).
    pub vacuum_updates_per_delivery: Option<f64>,
    /// The share of those updates that were HOT (pruned on the page, no vacuum needed).
    pub hot_update_pct: Option<f64>,
    /// Dead row versions in `deliveries` at the end of the run, not yet vacuumed.
    pub dead_rows_at_end: Option<i64>,
}
