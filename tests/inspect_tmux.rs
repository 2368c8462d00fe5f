//! End to end: the real `trtlens inspect` binary in a real terminal (tmux), on an overflow sample.
//! It opens the model, jumps to the first divergence, keeps that node FP32, rebuilds, sees the
//! outputs pass, saves the session, quits (the terminal is restored), and reopens the session.
//! Needs `tmux`; outside CI the test is skipped (with a message) when tmux is missing.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]);
        c
    }

    fn start(&self, dir: &Path, shell_cmd: &str) -> TestResult {
        let st = self
            .cmd()
            .args(["new-session", "-d", "-s", "e2e", "-x", "120", "-y", "36", "-c"])
            .arg(dir)
            .arg(shell_cmd)
            .env("TERM", "xterm-256color")
            .status()?;
        assert!(st.success(), "tmux new-session");
        Ok(())
    }

    fn screen(&self) -> String {
        self.cmd()
            .args(["capture-pane", "-p", "-t", "e2e"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn keys(&self, keys: &str) -> TestResult {
        assert!(self.cmd().args(["send-keys", "-t", "e2e", keys]).status()?.success());
        Ok(())
    }

    fn wait_for(&self, what: &str) -> Result<String, String> {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(what) {
                return Ok(s);
            }
            if t0.elapsed() > Duration::from_mins(1) {
                return Err(format!("waited 60 s for '{what}'; the screen:\n{s}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

fn have_tmux() -> bool {
    Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
}

#[test]
fn inspect_fix_an_overflow_save_and_reopen_under_tmux() -> TestResult {
    if !have_tmux() {
        assert!(!common::in_ci(), "CI must install tmux for the end-to-end test");
        eprintln!("skipped: tmux is not installed");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let bin = env!("CARGO_BIN_EXE_trtlens");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/regression_overflow.onnx");
    let t = Tmux { socket: format!("trtlens-e2e-{}", std::process::id()) };
    t.start(
        tmp.path(),
        &format!("'{bin}' inspect '{}' --reference tract; echo EXITED $?; sleep 120", model.display()),
    )?;

    t.wait_for("compared 3 tensors: outputs 0/1 pass")?;
    t.keys("f")?;
    t.wait_for("first divergence: targets")?;
    t.keys("Space")?;
    let s = t.wait_for("FP16→FP32*")?;
    assert!(s.contains("1 pending"), "{s}");
    t.keys("r")?;
    let s = t.wait_for("outputs 0/1 → 1/1 pass")?;
    assert!(s.contains("PASS") && s.contains("FP32 user"), "{s}");
    t.keys("s")?;
    t.wait_for("session saved to sessions/regression_overflow")?;
    t.keys("q")?;
    let s = t.wait_for("EXITED 0")?;
    assert!(!s.contains("layers 3/3"), "the alternate screen is gone after quitting:\n{s}");
    assert!(tmp.path().join("sessions/regression_overflow/session.json").is_file());
    drop(t);

    let t = Tmux { socket: format!("trtlens-e2e2-{}", std::process::id()) };
    t.start(tmp.path(), &format!("'{bin}' inspect sessions/regression_overflow; echo EXITED $?; sleep 120"))?;
    let s = t.wait_for("reopened (nothing re-run)")?;
    assert!(s.contains("FP32 user") && s.contains("PASS") && s.contains("session regression_overflow"), "{s}");
    t.keys("?")?;
    t.wait_for("keys (esc or ? closes")?;
    t.keys("Escape")?;
    t.keys("q")?;
    t.wait_for("EXITED 0")?;
    Ok(())
}

#[test]
fn a_panic_restores_the_terminal() -> TestResult {
    if !have_tmux() {
        assert!(!common::in_ci(), "CI must install tmux for the end-to-end test");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let bin = env!("CARGO_BIN_EXE_trtlens");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/mlp_overflow.onnx");
    let t = Tmux { socket: format!("trtlens-panic-{}", std::process::id()) };
    t.start(
        tmp.path(),
        &format!(
            "RUST_BACKTRACE=0 TRTLENS_TEST_PANIC_AFTER_DRAW=1 '{bin}' inspect '{}' --reference tract; stty -a | grep -o ' icanon' ; echo EXITED $?; sleep 120",
            model.display()
        ),
    )?;
    let s = t.wait_for("EXITED")?;
    assert!(s.contains("panicking on purpose"), "the panic message is printed on the normal screen:\n{s}");
    assert!(s.contains(" icanon"), "raw mode is off again (canonical input restored):\n{s}");
    assert!(!s.contains("layers"), "the alternate screen is gone:\n{s}");
    Ok(())
}

#[test]
fn inspect_without_a_terminal_is_a_clear_error() -> TestResult {
    let out = Command::new(env!("CARGO_BIN_EXE_trtlens"))
        .args(["inspect"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/mlp_overflow.onnx"))
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)?.contains("needs a terminal"));
    Ok(())
}

#[test]
fn bad_arguments_fail_before_the_terminal_is_touched() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let bad_keys = tmp.path().join("keys.toml");
    std::fs::write(&bad_keys, "[bindings]\nfly = [\"x\"]\n")?;
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/mlp_overflow.onnx");
    for (args, want) in [
        (
            vec!["inspect".into(), model.display().to_string(), "--keys".into(), bad_keys.display().to_string()],
            "unknown command 'fly'",
        ),
        (vec!["inspect".into(), tmp.path().join("nope.onnx").display().to_string()], "no such model or session"),
        (vec!["inspect".into(), model.display().to_string(), "--atol".into(), "abc".into()], "--atol"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_trtlens")).args(&args).output()?;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr)?;
        assert!(err.contains(want), "{args:?}: {err}");
    }
    Ok(())
}
