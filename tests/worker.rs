//! The worker protocol (`trtlens worker`, `trtlens.job/1`) with the real binary: typed JSON events,
//! errors with their kind, a worker that dies (abort) reported clearly while the caller survives,
//! and sessions that store the request (and still read the argv-based `trtlens.session/1`).

mod common;

use std::path::{Path, PathBuf};

use trtlens::error::{Error, ErrorKind};
use trtlens::job::client::{Update, Worker};
use trtlens::job::{Event, Job, JobResult, Request};
use trtlens::tui::app::BuildState;
use trtlens::tui::keys::KeyMap;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_trtlens"))
}

fn compare_job(model: &Path, dir: &Path) -> Request {
    let mut request = common::compare_request(model);
    request.save_runs = Some(dir.join("runs"));
    Request::new("test compare", Job::Compare { request, report: dir.join("report.json") })
}

/// Every stdout line of `trtlens worker` is one JSON event: started, progress..., result.
#[test]
fn worker_streams_typed_events_and_ends_with_the_result() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let req = compare_job(&common::sample("regression_overflow"), tmp.path());
    let file = tmp.path().join("req.json");
    std::fs::write(&file, req.to_json()?)?;
    let out = std::process::Command::new(exe()).arg("worker").arg(&file).output()?;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let events: Vec<Event> =
        String::from_utf8(out.stdout)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert!(matches!(events.first(), Some(Event::Started { label, .. }) if label == "test compare"));
    let phases: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress { phase, .. } => Some(phase.as_str()),
            _ => None,
        })
        .collect();
    assert!(phases.contains(&"reference") && phases.contains(&"candidate"), "{phases:?}");
    let fractions: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress { fraction, .. } => Some(*fraction),
            _ => None,
        })
        .collect();
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "progress never goes back: {fractions:?}");
    assert!(fractions.iter().all(|f| (0.0..1.0).contains(f)));
    match events.last() {
        Some(Event::Result { result: JobResult::Compare { report, verdict, runs_dir } }) => {
            assert_eq!(verdict, "fail", "regression_overflow fails in FP16");
            assert!(report.is_file());
            assert!(runs_dir.as_ref().is_some_and(|d| d.join("reference").is_dir() && d.join("candidate").is_dir()));
        }
        other => panic!("last event should be the result, got {other:?}"),
    }
    Ok(())
}

/// A bad request and a failing job end with an error event carrying the kind, and exit 2.
#[test]
fn errors_are_events_with_their_kind() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{\"protocol\": \"trtlens.job/99\"}")?;
    let out = std::process::Command::new(exe()).arg("worker").arg(&bad).output()?;
    assert_eq!(out.status.code(), Some(2));
    let last: Event = serde_json::from_str(String::from_utf8(out.stdout)?.lines().last().ok_or("no event")?)?;
    assert!(matches!(last, Event::Error { kind: ErrorKind::Usage, .. }), "{last:?}");

    let req = compare_job(&tmp.path().join("missing.onnx"), tmp.path());
    let worker = Worker::spawn(&exe(), &req, &tmp.path().join("req.json"))?;
    match worker.wait(&mut |_| {}) {
        Err(Error::Remote { kind: ErrorKind::Model, message, .. }) => {
            assert!(message.contains("missing.onnx"), "{message}");
        }
        other => panic!("expected a model error from the worker, got {other:?}"),
    }
    Ok(())
}

/// A worker that aborts (as a crashing backend would) is a clear `worker_died` error naming the
/// signal; the caller keeps running.
#[test]
fn an_aborting_worker_is_a_clear_error() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let req = compare_job(&common::sample("mlp_overflow"), tmp.path());
    for when in ["after-start", "after-progress"] {
        let file = tmp.path().join(format!("req-{when}.json"));
        let worker = Worker::spawn(&aborting_exe(tmp.path(), when)?, &req, &file)?;
        let mut saw = Vec::new();
        let result = worker.wait(&mut |e| saw.push(e));
        match result {
            Err(e @ Error::WorkerDied { .. }) => {
                assert_eq!(e.kind(), ErrorKind::WorkerDied);
                assert!(e.to_string().contains("SIGABRT"), "{e}");
                assert!(e.to_string().contains("test compare"), "{e}");
            }
            other => panic!("{when}: expected worker_died, got {other:?}"),
        }
        assert!(saw.iter().any(|e| matches!(e, Event::Started { .. })), "{when}: {saw:?}");
    }
    Ok(())
}

/// The inspector survives a dying worker: the job fails with the reason, the app keeps its state
/// and can start another job.
#[test]
fn the_inspector_survives_a_dying_worker() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let keys = KeyMap::default();
    let mut app =
        trtlens::tui::start(&common::inspect_launch(&common::sample("regression_overflow"), tmp.path()), &keys)?;
    common::wait_job(&mut app)?;
    let before = app.report.clone();
    let cmd = |app: &mut trtlens::tui::app::App, c| app.update(trtlens::tui::action::Action::Cmd(c));
    cmd(&mut app, trtlens::tui::action::Command::FirstDivergence);
    cmd(&mut app, trtlens::tui::action::Command::TogglePrecision);
    let good = std::mem::replace(&mut app.ctx.exe, aborting_exe(tmp.path(), "after-start")?);
    cmd(&mut app, trtlens::tui::action::Command::Rebuild);
    let err = common::wait_job(&mut app).expect_err("the rebuild fails");
    assert!(err.contains("died") && err.contains("SIGABRT"), "{err}");
    assert!(matches!(app.build, BuildState::Failed(_)));
    assert_eq!(app.report, before, "the previous report stays");
    assert!(!app.pending().is_empty(), "the pending edit is kept for the next rebuild");
    app.ctx.exe = good;
    cmd(&mut app, trtlens::tui::action::Command::Rebuild);
    common::wait_job(&mut app)?;
    assert_eq!(app.report.as_ref().map(|r| r.verdict.as_str()), Some("pass"));
    Ok(())
}

/// Sessions store the comparison request (not argument vectors) and still read `session/1` files.
#[test]
fn sessions_store_the_request_and_read_the_old_format() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let keys = KeyMap::default();
    let mut app =
        trtlens::tui::start(&common::inspect_launch(&common::sample("regression_overflow"), tmp.path()), &keys)?;
    common::wait_job(&mut app)?;
    app.update(trtlens::tui::action::Action::Cmd(trtlens::tui::action::Command::SaveSession));
    let dir = tmp.path().join("sessions").join("regression_overflow");
    let file = dir.join("session.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    assert_eq!(json["schema"], "trtlens.session/2");
    assert_eq!(json["request"]["candidate"], "cpu-fp16");
    assert_eq!(json["request"]["tolerance"]["atol"], 1e-2);
    assert!(json.get("compare_args").is_none() && json.get("input_args").is_none());
    let loaded = trtlens::session::load(&dir)?;
    assert_eq!(loaded.file.request()?.reference, app.ctx.request.reference);

    // The same session as an older trtlens wrote it.
    let mut old = json.clone();
    let obj = old.as_object_mut().ok_or("object")?;
    obj.remove("request");
    obj.insert("schema".into(), "trtlens.session/1".into());
    obj.insert("input_args".into(), serde_json::json!(["--seed", "1", "--iterations", "1"]));
    obj.insert(
        "compare_args".into(),
        serde_json::json!(["--rule", "allclose", "--atol", "1e-2", "--rtol", "0.01", "--top-k", "5"]),
    );
    std::fs::write(&file, serde_json::to_string_pretty(&old)?)?;
    let loaded = trtlens::session::load(&dir)?;
    let r = loaded.file.request()?;
    assert_eq!((r.tolerance.atol, r.tolerance.rtol), (1e-2, 1e-2));
    assert_eq!(r.candidate.describe(), "cpu-fp16");
    let again = trtlens::tui::start(&common::inspect_launch(&dir, tmp.path()), &keys)?;
    assert!(!again.busy() && again.report.is_some());
    Ok(())
}

/// Progress reaches the caller while the worker runs (not only at the end).
#[test]
fn poll_delivers_events_before_the_end() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let req = compare_job(&common::sample("cnn_bn_relu"), tmp.path());
    let mut worker = Worker::spawn(&exe(), &req, &tmp.path().join("req.json"))?;
    let t0 = std::time::Instant::now();
    let mut events = Vec::new();
    let mut done = None;
    while done.is_none() && t0.elapsed() < std::time::Duration::from_mins(1) {
        for u in worker.poll() {
            match u {
                Update::Event(e) => events.push(e),
                Update::Done(r) => done = Some(r),
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let result = done.ok_or("the worker did not finish in a minute")??;
    assert!(matches!(result, JobResult::Compare { ref verdict, .. } if verdict == "pass"), "{result:?}");
    assert!(events.iter().any(|e| matches!(e, Event::Progress { .. })));
    Ok(())
}

/// An executable that runs this build's `trtlens` with `TRTLENS_TEST_WORKER_ABORT=when` in its
/// environment (only that child's: the test process environment is never changed).
fn aborting_exe(dir: &Path, when: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(format!("trtlens-abort-{when}"));
    let script =
        format!("#!/bin/sh\n{}={when} exec '{}' \"$@\"\n", trtlens::job::worker::TEST_ABORT_ENV, exe().display());
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}
