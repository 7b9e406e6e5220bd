#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn webhook(payload: Value) -> Webhook {
    Webhook {
        method: Method::Post,
        url: "https://example.com/hook".into(),
        event_type: "user.created".into(),
        payload,
        variables: BTreeMap::from([("token".into(), "s3cret".into())]),
    }
}

fn sandbox() -> Sandbox {
    Sandbox::start(2, Limits::default()).unwrap()
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn run(code: &str, payload: Value) -> Result<Outcome, Failure> {
    block(sandbox().run(Arc::from(code), webhook(payload)))
}

use std::sync::Arc;

#[test]
fn a_handler_rewrites_the_payload_url_method_and_headers() {
    let out = run(
        r##"function handler(webhook) {
            webhook.payload = { text: `New user ${webhook.payload.name} (${webhook.eventType})`,
                                token: webhook.variables.token };
            webhook.url = webhook.url + "?channel=" + encodeURIComponent("#ops");
            webhook.method = "PUT";
            webhook.headers["X-Slack"] = "1";
            return webhook;
        }"##,
        json!({"name": "Ada"}),
    )
    .unwrap();
    assert_eq!(
        out.payload,
        json!({"text": "New user Ada (user.created)", "token": "s3cret"})
    );
    assert_eq!(out.url, "https://example.com/hook?channel=%23ops");
    assert_eq!(out.method, Method::Put);
    assert_eq!(out.headers["X-Slack"], "1");
    assert!(!out.cancel);
}

#[test]
fn a_handler_may_cancel() {
    let out = run(
        "function handler(w) { if (w.payload.skip) { w.cancel = true; } return w; }",
        json!({"skip": true}),
    )
    .unwrap();
    assert!(out.cancel);
}

#[test]
fn an_endless_loop_is_stopped_at_the_time_limit_and_the_thread_serves_on() {
    let sandbox = Sandbox::start(1, Limits::default()).unwrap();
    let started = Instant::now();
    let out = block(sandbox.run(
        Arc::from("function handler(w) { for (;;) { try { while (true) {} } catch (e) {} } }"),
        webhook(json!({})),
    ));
    assert_eq!(out, Err(Failure::TimedOut(50)));
    assert!(started.elapsed() < Duration::from_secs(2));
    // The interpreter stopped it: the caller's deadline did not have to.
    assert_eq!(sandbox.stuck_runs(), 0);
    // The same thread (there is one) runs the next transformation normally.
    let next = block(sandbox.run(
        Arc::from("function handler(w) { return w; }"),
        webhook(json!({"a": 1})),
    ));
    assert_eq!(next.unwrap().payload, json!({"a": 1}));
}

#[test]
fn top_level_code_that_loops_is_stopped_when_checked() {
    let out = block(sandbox().check("while (true) {} function handler(w) { return w; }"));
    assert_eq!(out, Err(Failure::TimedOut(50)));
}

#[test]
fn allocating_without_bound_is_stopped_at_the_memory_limit() {
    let sandbox = Sandbox::start(1, Limits::default()).unwrap();
    let out = block(sandbox.run(
        Arc::from("function handler(w) { const a = []; for (;;) { a.push('x'.repeat(1 << 16) + a.length); } }"),
        webhook(json!({})),
    ));
    assert_eq!(out, Err(Failure::OutOfMemory(16 * 1024 * 1024)));
    // Caught out-of-memory errors do not help: the time limit stops the retries. Near the
    // limit a built-in can run long without the interpreter polling its interrupt; the caller
    // stops waiting shortly after the limit and a new thread takes the stuck one's place.
    let started = Instant::now();
    let out = block(sandbox.run(
        Arc::from(
            "function handler(w) { const a = []; for (;;) { try { a.push(new Array(1e6).fill(1)); } catch (e) {} } }",
        ),
        webhook(json!({})),
    ));
    assert!(
        matches!(out, Err(Failure::TimedOut(_) | Failure::OutOfMemory(_))),
        "{out:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    // And the memory is back for the next run.
    let next = block(sandbox.run(
        Arc::from("function handler(w) { w.payload = new Array(1000).fill(7).length; return w; }"),
        webhook(json!({})),
    ));
    assert_eq!(next.unwrap().payload, json!(1000));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_syntax_error_names_its_line_and_column() {
    let out = block(sandbox().check("function handler(w) {\n  return w +;\n}"));
    let Err(Failure::Code(error)) = out else {
        panic!("{out:?}")
    };
    assert!(error.message.contains("SyntaxError"), "{error:?}");
    assert_eq!(error.line, Some(2), "{error:?}");
    assert!(error.column.is_some(), "{error:?}");
}

#[test]
fn code_without_a_handler_is_refused() {
    for code in ["function other(w) { return w; }", "var handler = 3;", ""] {
        let out = block(sandbox().check(code));
        assert!(
            matches!(&out, Err(Failure::Code(e)) if e.message.contains("handler")),
            "{code}: {out:?}"
        );
    }
    block(sandbox().check("const handler = (w) => w;")).unwrap();
}

#[test]
fn a_throw_is_reported_with_its_position() {
    let out = run(
        "function handler(w) {\n  throw new TypeError('no ' + w.eventType);\n}",
        json!({}),
    );
    let Err(Failure::Threw(error)) = out else {
        panic!("{out:?}")
    };
    assert_eq!(error.message, "TypeError: no user.created");
    assert_eq!(error.line, Some(2));
    let out = run("function handler(w) { throw 'plain'; }", json!({}));
    assert!(
        matches!(&out, Err(Failure::Threw(e)) if e.message == "plain"),
        "{out:?}"
    );
}

#[test]
fn bad_return_values_are_named() {
    for (code, expected) in [
        ("function handler(w) { }", "undefined"),
        ("function handler(w) { return 3; }", "int"),
        ("function handler(w) { return [w]; }", "array"),
        ("async function handler(w) { return w; }", "Promise"),
        ("function handler(w) { return {url: 'x'}; }", "payload"),
        (
            "function handler(w) { w.method = 'DELETE'; return w; }",
            "DELETE",
        ),
        ("function handler(w) { w.url = 7; return w; }", "url 7"),
        (
            "function handler(w) { w.headers = {a: 1}; return w; }",
            "header a",
        ),
        (
            "function handler(w) { w.cancel = 'yes'; return w; }",
            "cancel",
        ),
        (
            "function handler(w) { w.payload = {}; w.payload.self = w.payload; return w; }",
            "circular",
        ),
    ] {
        let out = run(code, json!({}));
        let text = match &out {
            Err(Failure::BadReturn(what)) => what.clone(),
            Err(Failure::Threw(e)) => e.message.clone(),
            other => panic!("{code}: {other:?}"),
        };
        assert!(
            text.to_lowercase().contains(&expected.to_lowercase()),
            "{code}: {text}"
        );
    }
}

#[test]
fn deep_recursion_and_deep_payloads_are_errors_not_crashes() {
    let out = run(
        "function handler(w) { function f(n) { return f(n + 1) + 1; } return f(0); }",
        json!({}),
    );
    assert!(
        matches!(&out, Err(Failure::Threw(e)) if e.message.contains("stack")),
        "{out:?}"
    );
    // A payload nested far deeper than serde_json would build: made by hand as text.
    let depth = 100_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let code = format!("function handler(w) {{ w.payload = JSON.parse('{deep}'); return w; }}");
    let out = run(&code, json!({}));
    assert!(out.is_err(), "{out:?}");
}

#[test]
fn nothing_of_the_host_is_reachable() {
    for probe in [
        "typeof require",
        "typeof setTimeout",
        "typeof fetch",
        "typeof XMLHttpRequest",
        "typeof std",
        "typeof os",
        "typeof process",
        "typeof console",
        "typeof performance",
    ] {
        let code = format!("function handler(w) {{ w.payload = {probe}; return w; }}");
        assert_eq!(
            run(&code, json!({})).unwrap().payload,
            json!("undefined"),
            "{probe}"
        );
    }
    // Nothing survives from one run to the next.
    let sandbox = Sandbox::start(1, Limits::default()).unwrap();
    let code: Arc<str> = Arc::from(
        "function handler(w) { globalThis.count = (globalThis.count || 0) + 1; w.payload = globalThis.count; return w; }",
    );
    for _ in 0..3 {
        let out = block(sandbox.run(code.clone(), webhook(json!({})))).unwrap();
        assert_eq!(out.payload, json!(1));
    }
}

/// Promise jobs a handler leaves queued never run, and do not pile up: a thousand runs that
/// each leave some, on one thread with 4 MiB, all succeed; and the runtimes they were left in
/// are freed without aborting the process.
#[test]
fn leftover_promise_jobs_never_run_and_never_pile_up() {
    let sandbox = Sandbox::start(
        1,
        Limits {
            memory_bytes: 4 << 20,
            time: Duration::from_millis(50),
        },
    )
    .unwrap();
    let code: Arc<str> = Arc::from(
        "async function later(w) { await null; w.payload = 'ran'; for (;;) {} }
         function handler(w) { const big = 'x'.repeat(20000); later({payload: big}); return w; }",
    );
    block(async {
        for _ in 0..1000 {
            let out = sandbox.run(code.clone(), webhook(json!({"a": 1}))).await;
            assert_eq!(out.unwrap().payload, json!({"a": 1}));
        }
    });
    drop(sandbox);
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn runs_proceed_in_parallel_on_the_threads() {
    let sandbox = Sandbox::start(2, Limits::default()).unwrap();
    let slow: Arc<str> = Arc::from("function handler(w) { while (true) {} }");
    let fast: Arc<str> = Arc::from("function handler(w) { return w; }");
    block(async {
        let stuck = sandbox.run(slow, webhook(json!({})));
        let quick = async {
            let started = Instant::now();
            let out = sandbox.run(fast, webhook(json!({}))).await;
            (out, started.elapsed())
        };
        let (stuck, (quick, _)) = tokio::join!(stuck, quick);
        assert!(matches!(stuck, Err(Failure::TimedOut(_))));
        quick.unwrap();
    });
}

#[test]
fn oversized_code_is_refused_before_it_runs() {
    let code = format!(
        "function handler(w) {{ return w; }} //{}",
        "x".repeat(MAX_CODE_BYTES)
    );
    let out = block(sandbox().check(&code));
    assert!(
        matches!(&out, Err(Failure::Code(e)) if e.message.contains("bytes")),
        "{out:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// No code, however malformed, aborts the process: every input gets an answer.
    #[test]
    fn any_code_gets_an_answer(code in "\\PC{0,200}") {
        let sandbox = Sandbox::start(1, Limits { memory_bytes: 4 << 20, time: Duration::from_millis(20) }).unwrap();
        let _ = block(sandbox.check(&code));
        let _ = block(sandbox.run(Arc::from(code.as_str()), webhook(json!({"a": [1, 2, {"b": null}]}))));
    }

    /// Any code built from a handler around arbitrary statements gets an answer too.
    #[test]
    fn any_handler_body_gets_an_answer(body in "[a-z0-9 ={}()\\[\\];.+*'\"-]{0,120}") {
        let sandbox = Sandbox::start(1, Limits { memory_bytes: 4 << 20, time: Duration::from_millis(20) }).unwrap();
        let code = format!("function handler(webhook) {{ {body} ; return webhook; }}");
        let _ = block(sandbox.run(Arc::from(code.as_str()), webhook(json!({"x": 1}))));
    }
}
