//! The SQLite writer: one thread owns the write connection and runs whole transactions on it.
//!
//! Why a thread of our own. sqlx runs each SQLite connection on a thread of its own and every
//! statement is a message to that thread and back: about 300 µs on a loaded 2-core machine,
//! against a few microseconds for the statement itself (BENCHMARKS.md, "the profile"). A group
//! of 16 deliveries cost some 25 of those round trips. Here a job is a closure that runs on
//! the writer's thread with the connection in hand (rusqlite, prepared statements cached), so
//! a transaction costs its statements, not their hops.
//!
//! Why batches. Jobs that are waiting at the same moment (publishes, task claims, attempt
//! results, releases, from any task of the process) go into one transaction, each inside a
//! savepoint of its own, and one commit: one disk flush for all of them. A job's own error (a
//! duplicate `eventId`, say) undoes its savepoint only, and it alone fails; a failure of the
//! database (a full disk, an I/O error, SQLite rolling the transaction back by itself) fails
//! the batch, every job with it. A job is answered only after the `COMMIT` holding it
//! succeeded.
//!
//! Durability per batch. A batch that holds a durable job (a publish, a result) commits with
//! `synchronous = FULL`: on disk when the commit returns. A batch of lease bookkeeping only
//! (claims, releases, renewals) commits with `NORMAL`: a power cut may undo it, which only puts
//! tasks back in the queue (see `sqlite.rs`).
//!
//! The rest of the store still writes through sqlx (creating an endpoint is not on anybody's
//! hot path). Both writers take the same turn ([`WriteTurn`], a fair queue) before writing, so
//! that neither spins on `SQLITE_BUSY` while the other holds the database.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc, oneshot};

use crate::{Result, StoreError};

/// Jobs per transaction, at most.
const BATCH: usize = 256;

/// Jobs waiting for the thread, at most (callers wait beyond that).
const QUEUE: usize = 4 * BATCH;

/// Opens a write connection (again, after a failure left one in doubt).
pub(crate) type Open = Box<dyn Fn() -> rusqlite::Result<Connection> + Send>;

/// The right to write to the database, taken by the writer thread for each batch and by the
/// sqlx writes for each of theirs. A tokio mutex: first come, first served. Whoever holds it
/// must not wait for the writer thread (the thread would wait for the turn in turn): sqlx's
/// transactions never call the hot paths.
#[derive(Clone, Default)]
pub(crate) struct WriteTurn(Arc<Mutex<()>>);

impl WriteTurn {
    /// Waits for the turn (async callers).
    pub(crate) async fn take(&self) -> OwnedMutexGuard<()> {
        self.0.clone().lock_owned().await
    }
}

/// How a job's commit must reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// On disk when the commit returns (`synchronous = FULL`).
    Durable,
    /// Lease bookkeeping: may be undone by a power cut (`synchronous = NORMAL`).
    Bookkeeping,
}

/// What became of a job in its savepoint.
enum Step {
    /// Keep what it wrote.
    Keep,
    /// Undo what it wrote; it failed on its own.
    Undo,
    /// The database failed: the whole batch fails with this.
    Fail(StoreError),
}

/// A job, with its result's type erased.
trait Job: Send {
    fn durability(&self) -> Durability;
    fn run(&mut self, conn: &Connection) -> Step;
    /// Answers the caller: `failure` is the batch's, if it failed.
    fn answer(self: Box<Self>, failure: Option<&StoreError>);
}

struct Call<T, F> {
    work: Option<F>,
    outcome: Option<Result<T>>,
    answer: oneshot::Sender<Result<T>>,
    durability: Durability,
}

impl<T, F> Job for Call<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn run(&mut self, conn: &Connection) -> Step {
        let Some(work) = self.work.take() else {
            return Step::Keep;
        };
        match work(conn) {
            Ok(value) => {
                self.outcome = Some(Ok(value));
                Step::Keep
            }
            Err(e) if e.is_transient() => Step::Fail(e),
            Err(e) => {
                self.outcome = Some(Err(e));
                Step::Undo
            }
        }
    }

    fn answer(self: Box<Self>, failure: Option<&StoreError>) {
        let outcome = match (self.outcome, failure) {
            // Its own error: nothing of it is stored, whatever happened to the batch.
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(value)), None) => Ok(value),
            (_, Some(failure)) => Err(failure.for_another_waiter()),
            (None, None) => Err(gone()),
        };
        let _ = self.answer.send(outcome);
    }
}

enum Message {
    Run(Box<dyn Job>),
    Stop(oneshot::Sender<()>),
}

/// The handle on the writer thread. Dropping every handle (or [`Writer::stop`]) ends it.
pub(crate) struct Writer {
    jobs: mpsc::Sender<Message>,
}

fn gone() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolClosed)
}

impl Writer {
    /// Starts the thread with the connection `open` makes (now, and again after a failure).
    pub(crate) fn start(open: Open, turn: WriteTurn) -> Result<Self> {
        let conn = open().map_err(|e| from_rusqlite(e, "duplicate value"))?;
        let (jobs, queued) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("herald-sqlite-writer".into())
            .spawn(move || serve(conn, open, turn, queued))
            .map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?;
        Ok(Self { jobs })
    }

    /// Runs `work` in a transaction on the writer's thread, with whatever else is waiting;
    /// `Ok` once that transaction has committed (see [`Durability`]). An error of `work`'s own
    /// undoes only what `work` wrote.
    pub(crate) async fn run<T, F>(&self, durability: Durability, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job = Call {
            work: Some(work),
            outcome: None,
            answer,
            durability,
        };
        self.jobs
            .send(Message::Run(Box::new(job)))
            .await
            .map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }

    /// Finishes the jobs already queued, closes the connection and ends the thread.
    pub(crate) async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.jobs.send(Message::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    }
}

/// The thread: batch after batch until stopped or every handle is gone.
fn serve(conn: Connection, open: Open, turn: WriteTurn, mut queued: mpsc::Receiver<Message>) {
    let mut conn = Some(conn);
    // The connection's `synchronous` level: FULL as opened.
    let mut level = Durability::Durable;
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(BATCH);
    let mut stop = None;
    while stop.is_none() {
        match queued.blocking_recv() {
            Some(Message::Run(job)) => batch.push(job),
            Some(Message::Stop(done)) => stop = Some(done),
            None => break,
        }
        let failure = {
            // The batch is whatever came while the turn was awaited, too.
            let _turn = turn.0.blocking_lock();
            while stop.is_none() && batch.len() < BATCH {
                match queued.try_recv() {
                    Ok(Message::Run(job)) => batch.push(job),
                    Ok(Message::Stop(done)) => stop = Some(done),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                continue;
            }
            if conn.is_none() {
                match open() {
                    Ok(fresh) => {
                        conn = Some(fresh);
                        level = Durability::Durable;
                    }
                    Err(e) => tracing::error!(error = %e, "cannot reopen the SQLite writer"),
                }
            }
            match &conn {
                Some(c) => match run_batch(c, &mut batch, &mut level) {
                    Ok(()) => None,
                    Err(Failed { error, in_doubt }) => {
                        if in_doubt {
                            // Closing rolls back whatever SQLite still had open; the next
                            // batch gets a fresh connection.
                            conn = None;
                        }
                        Some(error)
                    }
                },
                None => Some(gone()),
            }
        };
        for job in batch.drain(..) {
            job.answer(failure.as_ref());
        }
    }
    drop(conn);
    if let Some(done) = stop {
        let _ = done.send(());
    }
}

/// A batch that failed as a whole.
struct Failed {
    error: StoreError,
    /// The connection may be left inside a transaction: close it.
    in_doubt: bool,
}

/// Runs a batch in one transaction, each job in a savepoint when there are several.
fn run_batch(
    conn: &Connection,
    batch: &mut [Box<dyn Job>],
    level: &mut Durability,
) -> std::result::Result<(), Failed> {
    let wanted = if batch.iter().any(|j| j.durability() == Durability::Durable) {
        Durability::Durable
    } else {
        Durability::Bookkeeping
    };
    if *level != wanted {
        let pragma = match wanted {
            Durability::Durable => "PRAGMA synchronous = FULL",
            Durability::Bookkeeping => "PRAGMA synchronous = NORMAL",
        };
        exec(conn, pragma).map_err(|error| Failed {
            error,
            in_doubt: true,
        })?;
        *level = wanted;
    }
    exec(conn, "BEGIN IMMEDIATE").map_err(|error| abort(conn, error))?;
    let alone = batch.len() == 1;
    for job in batch.iter_mut() {
        if !alone {
            exec(conn, "SAVEPOINT job").map_err(|error| abort(conn, error))?;
        }
        let step = catch_unwind(AssertUnwindSafe(|| job.run(conn)))
            .unwrap_or_else(|_| Step::Fail(StoreError::Unavailable(sqlx::Error::WorkerCrashed)));
        match step {
            Step::Keep if alone => {}
            Step::Keep => exec(conn, "RELEASE job").map_err(|error| abort(conn, error))?,
            // SQLite rolled the whole transaction back by itself (an interrupt, an I/O
            // error): the others' work is gone too.
            Step::Undo if conn.is_autocommit() => {
                return Err(abort(conn, lost_transaction()));
            }
            Step::Undo if alone => {
                // Its own error, and nothing else in the transaction: no commit needed.
                exec(conn, "ROLLBACK").map_err(|error| abort(conn, error))?;
                return Ok(());
            }
            Step::Undo => exec(conn, "ROLLBACK TO job; RELEASE job")
                .map_err(|error| abort(conn, error.into_database_failure()))?,
            Step::Fail(error) => return Err(abort(conn, error)),
        }
    }
    exec(conn, "COMMIT").map_err(|error| abort(conn, error))
}

/// Ends a failed transaction: rolled back if SQLite has not done so itself, and the connection
/// in doubt if even that fails.
fn abort(conn: &Connection, error: StoreError) -> Failed {
    let in_doubt = !conn.is_autocommit() && exec(conn, "ROLLBACK").is_err();
    Failed {
        error: error.into_database_failure(),
        in_doubt,
    }
}

fn lost_transaction() -> StoreError {
    StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(
        "SQLite rolled the transaction back by itself",
    )))
}

fn exec(conn: &Connection, sql: &str) -> Result<()> {
    conn.execute_batch(sql)
        .map_err(|e| from_rusqlite(e, "duplicate value"))
}

/// Maps a rusqlite error as [`StoreError::from_sqlx`] maps sqlx's: a broken uniqueness rule is
/// `conflict`, a full disk `StorageFull`, a database that cannot do it now `Unavailable`.
pub(crate) fn from_rusqlite(err: rusqlite::Error, conflict: &'static str) -> StoreError {
    let wrap = |e: rusqlite::Error| sqlx::Error::Io(std::io::Error::other(e));
    match &err {
        rusqlite::Error::SqliteFailure(code, _) => {
            let code = u32::try_from(code.extended_code).unwrap_or(0);
            crate::classify_sqlite(code, conflict, wrap(err))
        }
        _ => StoreError::Other(wrap(err)),
    }
}

/// rusqlite errors inside jobs: `?` maps them as [`from_rusqlite`] does.
impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        from_rusqlite(err, "duplicate value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(conn: &Connection) -> Result<i64> {
        Ok(conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?)
    }

    fn writer_on(dir: &tempfile::TempDir) -> Writer {
        writer_with_turn(dir, WriteTurn::default())
    }

    fn writer_with_turn(dir: &tempfile::TempDir, turn: WriteTurn) -> Writer {
        let path = dir.path().join("writer.db");
        let open: Open = Box::new(move || {
            let conn = Connection::open(&path)?;
            conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
            Ok(conn)
        });
        Writer::start(open, turn).unwrap()
    }

    /// A batch of bookkeeping only commits unflushed (`NORMAL`, 1); a batch with anything
    /// durable in it commits with `FULL` (2), whatever ran before it.
    #[tokio::test]
    async fn a_durable_batch_always_commits_with_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let turn = WriteTurn::default();
        let writer = writer_with_turn(&dir, turn.clone());
        assert_eq!(writer.run(Durability::Bookkeeping, level).await.unwrap(), 1);
        assert_eq!(writer.run(Durability::Durable, level).await.unwrap(), 2);
        assert_eq!(writer.run(Durability::Bookkeeping, level).await.unwrap(), 1);
        // Both in one batch: the durable job decides. The turn is held while both are queued,
        // so that the thread, waiting for it with the first, takes the second into the same
        // batch (without it, a loaded machine may run the first alone).
        let held = turn.take().await;
        let release = async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            drop(held);
        };
        let ((a, b), ()) = tokio::join!(
            async {
                tokio::join!(
                    writer.run(Durability::Bookkeeping, level),
                    writer.run(Durability::Durable, level)
                )
            },
            release
        );
        assert_eq!((a.unwrap(), b.unwrap()), (2, 2));
        assert_eq!(writer.run(Durability::Durable, level).await.unwrap(), 2);
        writer.stop().await;
    }

    /// A job's own error undoes its writes only; a panic in a job fails its batch as the
    /// database's failure, and the thread goes on.
    #[tokio::test]
    async fn a_failing_job_undoes_only_itself_and_a_panic_does_not_end_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer_on(&dir);
        writer
            .run(Durability::Durable, |c| {
                Ok(c.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")?)
            })
            .await
            .unwrap();
        let insert =
            |x: i64| move |c: &Connection| Ok(c.execute("INSERT INTO t VALUES (?1)", [x])?);
        let (first, duplicate, third) = tokio::join!(
            writer.run(Durability::Durable, insert(1)),
            writer.run(Durability::Durable, insert(1)),
            writer.run(Durability::Durable, insert(3)),
        );
        assert_eq!(first.unwrap(), 1);
        assert!(
            matches!(duplicate, Err(StoreError::Conflict(_))),
            "{duplicate:?}"
        );
        assert_eq!(third.unwrap(), 1);
        let panicked = writer
            .run(Durability::Durable, |c: &Connection| -> Result<()> {
                c.execute("INSERT INTO t VALUES (4)", [])?;
                panic!("a bug in a job")
            })
            .await;
        assert!(
            matches!(panicked, Err(StoreError::Unavailable(_))),
            "{panicked:?}"
        );
        let rows: Vec<i64> = writer
            .run(Durability::Durable, |c| {
                let mut select = c.prepare("SELECT x FROM t ORDER BY x")?;
                let rows = select.query_map([], |row| row.get(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<i64>>>()?)
            })
            .await
            .unwrap();
        assert_eq!(rows, vec![1, 3]);
        writer.stop().await;
        let after = writer.run(Durability::Durable, |_| Ok(())).await;
        assert!(
            matches!(after, Err(StoreError::Unavailable(_))),
            "stopped: {after:?}"
        );
    }
}
