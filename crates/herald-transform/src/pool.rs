//! The sandbox threads: each owns a QuickJS runtime; runs reach them through one queue.
//!
//! The interpreter polls its interrupt handler between instructions, not inside a built-in
//! function, and a few built-ins can run for a long time near the memory limit (each failed
//! allocation there costs a garbage collection: `new Array(1e6).fill(1)` in a loop that catches
//! the errors took 53 s of one thread in a debug build). So the caller does not rely on the
//! interpreter alone: a run that has not answered `GRACE` after its time limit is reported as
//! timed out, and a new thread takes the stuck one's place; the stuck one finishes its run
//! and then leaves. Such a run is bounded all the same: a built-in's work is bounded by the
//! memory limit, and the interrupt handler is polled every 10,000 calls or backward jumps, so
//! a stuck run ends within seconds to tens of seconds (22 s for that loop, optimised). At most
//! `SPARE_PER_THREAD` replacements per pool thread run at once, so the memory held stays
//! bounded (`(1 + SPARE_PER_THREAD) × threads × memory limit`); past that the pool serves with
//! fewer threads until the stuck runs end.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::engine::Engine;
use crate::{CodeError, Failure, Limits, MAX_CODE_BYTES, Outcome, Webhook};

/// Each thread's stack: far above the interpreter's own budget (`engine::MAX_STACK_BYTES`), so
/// the interpreter's depth check always fires first.
const THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

/// How long past its time limit a run may go before the caller stops waiting.
const GRACE: Duration = Duration::from_millis(250);

/// Replacements for stuck threads that may run at once, per pool thread.
const SPARE_PER_THREAD: usize = 4;

enum Work {
    Check,
    Run(Box<Webhook>),
}

enum Answer {
    Checked(Result<(), Failure>),
    Ran(Result<Outcome, Failure>),
}

struct Job {
    code: Arc<str>,
    work: Work,
    /// Told when a thread takes the job: the time limit counts from then, not from the queue.
    started: oneshot::Sender<()>,
    reply: oneshot::Sender<Answer>,
}

struct Threads {
    queue: Mutex<mpsc::Receiver<Job>>,
    limits: Limits,
    /// Threads to start at most beyond the pool's size, in place of stuck ones.
    spare: usize,
    /// Threads started in place of stuck ones and not yet gone.
    extra: AtomicUsize,
    /// Threads that should leave after their current run (one per replacement started).
    retiring: AtomicUsize,
    /// Runs the caller stopped waiting for (for the metrics).
    stuck: AtomicU64,
}

/// Runs transformations on a fixed set of threads, each with its own runtime and limits.
/// Cloning shares the threads; they stop when the last clone is dropped.
#[derive(Clone)]
pub struct Sandbox {
    jobs: mpsc::Sender<Job>,
    threads: Arc<Threads>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.threads.limits)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts `threads` sandbox threads (at least one).
    pub fn start(threads: usize, limits: Limits) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let count = threads.max(1);
        let shared = Arc::new(Threads {
            queue: Mutex::new(queue),
            limits,
            spare: count * SPARE_PER_THREAD,
            extra: AtomicUsize::new(0),
            retiring: AtomicUsize::new(0),
            stuck: AtomicU64::new(0),
        });
        for n in 0..count {
            spawn(&shared, n)?;
        }
        Ok(Self {
            jobs,
            threads: shared,
        })
    }

    pub fn limits(&self) -> Limits {
        self.threads.limits
    }

    /// How many runs went past their time limit inside a built-in, so that their caller stopped
    /// waiting and a thread was replaced (see the module documentation).
    pub fn stuck_runs(&self) -> u64 {
        self.threads.stuck.load(Ordering::Relaxed)
    }

    /// Compiles `code` and checks it defines `handler`, under the same limits as a run (top-level
    /// code runs when it is evaluated, and may loop).
    pub async fn check(&self, code: &str) -> Result<(), Failure> {
        match self.submit(Arc::from(code), Work::Check).await? {
            Answer::Checked(result) => result,
            Answer::Ran(_) => Err(Failure::Unavailable("mismatched answer".into())),
        }
    }

    /// Runs `code`'s handler over `webhook`.
    pub async fn run(&self, code: Arc<str>, webhook: Webhook) -> Result<Outcome, Failure> {
        match self.submit(code, Work::Run(Box::new(webhook))).await? {
            Answer::Ran(result) => result,
            Answer::Checked(_) => Err(Failure::Unavailable("mismatched answer".into())),
        }
    }

    async fn submit(&self, code: Arc<str>, work: Work) -> Result<Answer, Failure> {
        if code.len() > MAX_CODE_BYTES {
            return Err(Failure::Code(CodeError {
                message: format!(
                    "the code is {} bytes; at most {MAX_CODE_BYTES} are accepted",
                    code.len()
                ),
                line: None,
                column: None,
            }));
        }
        let gone = || Failure::Unavailable("the sandbox threads have stopped".into());
        let (started, on_start) = oneshot::channel();
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                code,
                work,
                started,
                reply,
            })
            .map_err(|_| gone())?;
        on_start.await.map_err(|_| gone())?;
        let limits = self.threads.limits;
        match tokio::time::timeout(limits.time + GRACE, answer).await {
            Ok(answer) => answer.map_err(|_| gone()),
            Err(_) => {
                self.threads.stuck.fetch_add(1, Ordering::Relaxed);
                self.replace_a_stuck_thread();
                Err(Failure::TimedOut(limits.time.as_millis()))
            }
        }
    }

    /// Starts a thread in place of one stuck in a run, unless as many are stuck already as the
    /// pool has threads (then the pool serves with fewer until they finish).
    fn replace_a_stuck_thread(&self) {
        let threads = &self.threads;
        let took = threads
            .extra
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < threads.spare).then_some(n + 1)
            });
        if let Ok(n) = took {
            if spawn(threads, threads.spare + n).is_ok() {
                threads.retiring.fetch_add(1, Ordering::SeqCst);
            } else {
                threads.extra.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

fn spawn(threads: &Arc<Threads>, n: usize) -> std::io::Result<()> {
    let threads = threads.clone();
    thread::Builder::new()
        .name(format!("herald-js-{n}"))
        .stack_size(THREAD_STACK_BYTES)
        .spawn(move || serve(&threads))
        .map(drop)
}

/// A sandbox thread: takes jobs until every [`Sandbox`] is dropped, or until it is told to
/// retire. A panic inside the engine (a bug, never the code's doing) fails that one job and
/// replaces the runtime.
fn serve(threads: &Threads) {
    let mut engine: Option<Engine> = None;
    loop {
        let job = {
            let Ok(queue) = threads.queue.lock() else {
                return;
            };
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        // The caller may have gone (its delivery was cancelled): then skip the run.
        if job.started.send(()).is_err() {
            continue;
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let engine = match &mut engine {
                Some(engine) => engine,
                slot => match Engine::new(threads.limits) {
                    Ok(new) => slot.insert(new),
                    Err(e) => return failed(&job.work, e),
                },
            };
            match &job.work {
                Work::Check => Answer::Checked(engine.check(&job.code)),
                Work::Run(webhook) => Answer::Ran(engine.run(&job.code, webhook)),
            }
        }));
        let answer = outcome.unwrap_or_else(|_| {
            engine = None;
            failed(
                &job.work,
                Failure::Unavailable("the engine failed; the run was abandoned".into()),
            )
        });
        if engine.as_ref().is_some_and(Engine::has_leftovers) {
            engine = None;
        }
        let _ = job.reply.send(answer);
        let retire = threads
            .retiring
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if retire.is_ok() {
            threads.extra.fetch_sub(1, Ordering::SeqCst);
            return;
        }
    }
}

fn failed(work: &Work, failure: Failure) -> Answer {
    match work {
        Work::Check => Answer::Checked(Err(failure)),
        Work::Run(_) => Answer::Ran(Err(failure)),
    }
}
