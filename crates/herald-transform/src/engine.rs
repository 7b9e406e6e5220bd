//! One QuickJS runtime and what a run does with it. Owned by one sandbox thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use rquickjs::context::{EvalOptions, intrinsic};
use rquickjs::{Context, Ctx, Runtime, Value};

use crate::{CodeError, Failure, Limits, Outcome, Webhook};

/// The file name errors point into.
const FILE_NAME: &str = "transformation.js";

/// The interpreter's own stack budget. The sandbox threads get far more (see `pool`), so
/// QuickJS reports deep recursion (in the handler, or in `JSON.parse` of a deep payload) as
/// a `RangeError` long before the thread's stack could overflow.
const MAX_STACK_BYTES: usize = 1024 * 1024;

/// The built-ins a handler gets besides the base objects (`Object`, `Array`, `String`,
/// `Math`, `Error`, …): dates, regular expressions, JSON, maps and sets, `eval` (QuickJS needs
/// it to evaluate any script) and `Promise`. `Promise` is there although no job ever runs (a
/// handler answers synchronously; a Promise it returns is refused, one it leaves pending
/// never settles): without it an `async function` leaves QuickJS's heap in a state that
/// aborts the process when the runtime is freed (seen: `JS_FreeRuntime: Assertion
/// list_empty(&rt->gc_obj_list) failed`). Left out: typed arrays (they double the cost of a
/// context, 95 µs instead of 51 µs, measured in a release build), `Proxy`, `WeakRef`, and
/// `performance` (a precise clock is a timing side channel).
type Intrinsics = (
    intrinsic::Date,
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::MapSet,
    intrinsic::Promise,
);

/// Nanoseconds since `base` meaning "no run in progress".
const IDLE: u64 = u64::MAX;

pub(crate) struct Engine {
    runtime: Runtime,
    limits: Limits,
    base: Instant,
    /// When the current run must stop, in nanoseconds since `base`.
    deadline: Arc<AtomicU64>,
    /// Set by the interrupt handler when it stopped a run.
    interrupted: Arc<AtomicBool>,
}

impl Engine {
    pub(crate) fn new(limits: Limits) -> Result<Self, Failure> {
        let runtime = Runtime::new().map_err(|e| Failure::Unavailable(e.to_string()))?;
        runtime.set_memory_limit(limits.memory_bytes);
        runtime.set_max_stack_size(MAX_STACK_BYTES);
        let base = Instant::now();
        let deadline = Arc::new(AtomicU64::new(IDLE));
        let interrupted = Arc::new(AtomicBool::new(false));
        let (at, flag) = (deadline.clone(), interrupted.clone());
        // Polled by the interpreter every few thousand instructions; returning true raises an
        // exception the code cannot catch.
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let now = u64::try_from(base.elapsed().as_nanos()).unwrap_or(IDLE - 1);
            let stop = now >= at.load(Ordering::Relaxed);
            if stop {
                flag.store(true, Ordering::Relaxed);
            }
            stop
        })));
        Ok(Self {
            runtime,
            limits,
            base,
            deadline,
            interrupted,
        })
    }

    /// Whether a run left promise jobs queued. They are never run, and each holds its context
    /// alive: the runtime is replaced instead (freeing a runtime discards its queued jobs), so
    /// that they cannot pile up against the memory limit of later runs.
    pub(crate) fn has_leftovers(&self) -> bool {
        self.runtime.is_job_pending()
    }

    /// Compiles the code and checks that it defines a `handler` function.
    pub(crate) fn check(&self, code: &str) -> Result<(), Failure> {
        self.with_fresh_context(code, |_, _| Ok(String::new()))
            .map(drop)
    }

    /// Runs the handler over `webhook` and checks what it returns.
    pub(crate) fn run(&self, code: &str, webhook: &Webhook) -> Result<Outcome, Failure> {
        let input = input_json(webhook)?;
        let returned = self.with_fresh_context(code, |ctx, handler| {
            let input = ctx.json_parse(input).map_err(|e| self.failure(&ctx, e))?;
            let returned: Value = handler.call((input,)).map_err(|e| self.failure(&ctx, e))?;
            if returned.is_promise() {
                return Err(Failure::BadReturn(
                    "a Promise: the handler must return the webhook itself (no async, no await)"
                        .into(),
                ));
            }
            if !returned.is_object() || returned.is_array() || returned.is_function() {
                return Err(Failure::BadReturn(format!(
                    "{}: the handler must return the webhook object",
                    returned.type_name()
                )));
            }
            let text = ctx
                .json_stringify(returned)
                .map_err(|e| self.failure(&ctx, e))?
                .ok_or_else(|| Failure::BadReturn("a value JSON cannot represent".into()))?;
            text.to_string().map_err(|e| self.failure(&ctx, e))
        })?;
        Outcome::from_returned(&returned, webhook)
    }

    /// Evaluates `code` in a new context under the limits, finds `handler` and hands both to
    /// `then`. The context is dropped and the heap collected afterwards, so nothing one run
    /// leaves behind reaches the next.
    fn with_fresh_context(
        &self,
        code: &str,
        then: impl for<'js> FnOnce(Ctx<'js>, rquickjs::Function<'js>) -> Result<String, Failure>,
    ) -> Result<String, Failure> {
        let context = Context::custom::<Intrinsics>(&self.runtime).map_err(|_| {
            // Creating a context allocates its built-in objects: only the memory limit stops it.
            Failure::OutOfMemory(self.limits.memory_bytes)
        })?;
        let limit = u64::try_from(self.limits.time.as_nanos()).unwrap_or(IDLE - 1);
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(0);
        self.interrupted.store(false, Ordering::Relaxed);
        self.deadline
            .store(now.saturating_add(limit).min(IDLE - 1), Ordering::Relaxed);
        let result = context.with(|ctx| {
            let mut options = EvalOptions::default();
            options.strict = false;
            options.filename = Some(FILE_NAME.to_owned());
            ctx.eval_with_options::<(), _>(code, options).map_err(|e| {
                match self.failure(&ctx, e) {
                    Failure::Threw(e) => Failure::Code(e),
                    other => other,
                }
            })?;
            // `function handler` is a property of the global object; `const handler = …`
            // lives in the global scope only, which a second script sees.
            let handler: Value = ctx
                .eval("typeof handler === 'function' ? handler : undefined")
                .map_err(|e| self.failure(&ctx, e))?;
            match handler.into_function() {
                Some(handler) => then(ctx.clone(), handler),
                None => Err(Failure::Code(CodeError {
                    message: "the code defines no function `handler(webhook)`".into(),
                    line: None,
                    column: None,
                })),
            }
        });
        self.deadline.store(IDLE, Ordering::Relaxed);
        drop(context);
        self.runtime.run_gc();
        result
    }

    /// What an error out of QuickJS means: the limits first (a stopped run reports an error too).
    fn failure(&self, ctx: &Ctx<'_>, error: rquickjs::Error) -> Failure {
        let thrown = matches!(error, rquickjs::Error::Exception).then(|| ctx.catch());
        if self.interrupted.swap(false, Ordering::Relaxed) {
            return Failure::TimedOut(self.limits.time.as_millis());
        }
        if matches!(error, rquickjs::Error::Allocation) {
            return Failure::OutOfMemory(self.limits.memory_bytes);
        }
        let Some(thrown) = thrown else {
            return Failure::Threw(CodeError {
                message: error.to_string(),
                line: None,
                column: None,
            });
        };
        let described = describe(&thrown);
        if described.message.contains("out of memory") {
            return Failure::OutOfMemory(self.limits.memory_bytes);
        }
        Failure::Threw(described)
    }
}

/// A thrown value as a message, with the position of the innermost frame in the code.
fn describe(thrown: &Value<'_>) -> CodeError {
    if let Some(exception) = thrown.as_exception() {
        let name: Option<String> = exception.get("name").ok();
        let message = exception.message().unwrap_or_default();
        let (line, column) = exception
            .stack()
            .as_deref()
            .and_then(position_in_stack)
            .unzip();
        return CodeError {
            message: match name {
                Some(name) if !name.is_empty() => format!("{name}: {message}"),
                _ => message,
            },
            line,
            column,
        };
    }
    let message = match thrown.as_string().and_then(|s| s.to_string().ok()) {
        Some(text) => text,
        None => format!("a {} was thrown", thrown.type_name()),
    };
    CodeError {
        message,
        line: None,
        column: None,
    }
}

/// The first `transformation.js:LINE:COLUMN` of a stack trace.
fn position_in_stack(stack: &str) -> Option<(u32, u32)> {
    let start = stack.find(FILE_NAME)? + FILE_NAME.len();
    let mut parts = stack[start..].strip_prefix(':')?.splitn(2, ':');
    let line = parts.next()?.parse().ok()?;
    let column: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((line, column.parse().ok()?))
}

/// The handler's argument: the webhook, with `headers` to add to and `cancel` to set.
fn input_json(webhook: &Webhook) -> Result<String, Failure> {
    let mut value = serde_json::to_value(webhook)
        .map_err(|e| Failure::Unavailable(format!("cannot encode the webhook: {e}")))?;
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "headers".into(),
            serde_json::Value::Object(Default::default()),
        );
        map.insert("cancel".into(), serde_json::Value::Bool(false));
    }
    Ok(value.to_string())
}
