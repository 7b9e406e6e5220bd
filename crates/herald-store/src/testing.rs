//! Test support: a fresh Postgres database per test, so that tests sharing one server can run
//! at once without seeing each other's rows (and the queue's leases, which are global to a
//! database).
//!
//! Tests that need Postgres run when `HERALD_TEST_DATABASE_URL` names a database they may use
//! to create others (`postgres://postgres@127.0.0.1:5432/test`), and skip saying so otherwise.

// Test support: a failed step is a failed check, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::ConnectOptions;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// The variable naming the Postgres server tests may use.
pub const DATABASE_URL_VAR: &str = "HERALD_TEST_DATABASE_URL";

/// Test databases are named `herald_t_<unix seconds>_<random>`; ones older than this are left
/// over from a test that panicked or was killed, and are dropped by the next test.
const STALE_AFTER_SECS: u64 = 3600;

/// The URL in `HERALD_TEST_DATABASE_URL`, or `None` after printing that `test` is skipped.
pub fn postgres_url_or_skip(test: &str) -> Option<String> {
    match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipping {test}: set {DATABASE_URL_VAR} to run it against Postgres");
            None
        }
    }
}

/// A database created for one test and dropped (with its connections) when this is dropped.
pub struct TestDatabase {
    /// Where to connect to the new database.
    pub url: String,
    /// The database's name (`herald_t_<unix seconds>_<random>`), dropped with this value.
    pub name: String,
    admin: PgConnectOptions,
}

impl TestDatabase {
    /// Creates an empty database on the server of `base_url`.
    pub async fn create(base_url: &str) -> Self {
        let admin = PgConnectOptions::from_str(base_url).expect("a valid Postgres URL");
        let mut conn = admin.connect().await.expect("the test Postgres answers");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is past 1970")
            .as_secs();
        drop_stale(&mut conn, now).await;
        let name = format!(
            "herald_t_{now}_{}",
            herald_core::token::random_base62(8).to_lowercase()
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        conn.close().await.ok();
        Self {
            url: with_database(base_url, &name),
            name,
            admin,
        }
    }

    /// Ends every connection to the test database except the caller's, as a database restart
    /// would; returns how many it ended.
    pub async fn terminate_connections(&self, conn: &mut PgConnection) -> u64 {
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .fetch_all(&mut *conn)
        .await
        .map(|rows| rows.len() as u64)
        .unwrap_or(0)
    }

    /// A connection to the server's own database (not the test database), for the test's
    /// administrative statements.
    pub async fn admin_connection(&self) -> PgConnection {
        self.admin
            .connect()
            .await
            .expect("the test Postgres answers")
    }
}

/// Makes the `COMMIT` of every transaction that stored a message fail, after all of its
/// statements succeeded: a deferred constraint trigger on `messages` that raises the SQLSTATE
/// it is given, or ends its own connection (`disconnect`), while Postgres commits.
pub struct CommitFault {
    conn: PgConnection,
}

impl CommitFault {
    /// Installs the trigger in the (migrated) test database, failing nothing yet.
    pub async fn install(db: &TestDatabase) -> Self {
        let mut conn = PgConnection::connect(&db.url)
            .await
            .expect("the test database answers");
        sqlx::raw_sql(
            "CREATE TABLE commit_fault (what TEXT NOT NULL);
             CREATE FUNCTION fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$
             DECLARE what TEXT;
             BEGIN
               SELECT f.what INTO what FROM commit_fault f LIMIT 1;
               IF what = 'disconnect' THEN
                 PERFORM pg_terminate_backend(pg_backend_pid());
               ELSIF what IS NOT NULL THEN
                 RAISE EXCEPTION 'injected at commit' USING ERRCODE = what;
               END IF;
               RETURN NULL;
             END $$;
             CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT ON messages
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_commit();",
        )
        .execute(&mut conn)
        .await
        .expect("the commit fault installs");
        Self { conn }
    }

    /// From now on commits fail with SQLSTATE `what`, or by ending the connection
    /// (`disconnect`).
    pub async fn fail_with(&mut self, what: &str) {
        self.clear().await;
        sqlx::query("INSERT INTO commit_fault (what) VALUES ($1)")
            .bind(what)
            .execute(&mut self.conn)
            .await
            .expect("the commit fault is set");
    }

    /// Commits succeed again.
    pub async fn clear(&mut self) {
        sqlx::query("DELETE FROM commit_fault")
            .execute(&mut self.conn)
            .await
            .expect("the commit fault is cleared");
    }
}

/// `base` with its database (the URL's path) replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let (main, query) = match base.split_once('?') {
        Some((main, query)) => (main, format!("?{query}")),
        None => (base, String::new()),
    };
    let authority = main.find("://").map_or(0, |i| i + 3);
    let path = main[authority..]
        .find('/')
        .map_or(main.len(), |i| authority + i);
    format!("{}/{name}{query}", &main[..path])
}

async fn drop_stale(conn: &mut PgConnection, now: u64) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'herald\\_t\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for name in names {
        let created = name
            .split('_')
            .nth(2)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(now);
        if created + STALE_AFTER_SECS < now {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs outside any runtime's reach (perhaps while a test panics): a thread with its
        // own small runtime does the clean-up.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for clean-up");
            runtime.block_on(async move {
                if let Ok(mut conn) = admin.connect().await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            super::with_database("postgres://u:p@h:5432/test?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://h", "x"), "postgres://h/x");
    }
}
