//! Running a TensorRT build in a child process (`trtlens build ...`), so that an abort, a segfault
//! or an out-of-memory kill inside TensorRT ends the child and the caller gets an error naming the
//! signal with the last lines of the child's log, instead of dying with it.
//!
//! This is the isolation the inspector relies on (its jobs are child processes) and the function
//! a worker process can call for a build request; cancelling kills the child.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind, Result};

/// Log lines kept for the error message of a crashed child.
const TAIL: usize = 20;

/// How a child process ended, in words (`exit 2`, `SIGABRT (aborted)`, `SIGKILL (killed, e.g. out of memory)`).
#[must_use]
pub fn describe_exit(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(sig) = status.signal() {
            let what = match sig {
                6 => "SIGABRT (aborted)",
                11 => "SIGSEGV (segmentation fault)",
                7 => "SIGBUS (bus error)",
                4 => "SIGILL (illegal instruction)",
                8 => "SIGFPE (arithmetic fault)",
                9 => "SIGKILL (killed, e.g. out of memory)",
                15 => "SIGTERM (terminated)",
                _ => return format!("signal {sig}"),
            };
            return what.to_string();
        }
    }
    match status.code() {
        Some(c) => format!("exit {c}"),
        None => "an unknown status".to_string(),
    }
}

/// Run `exe` with `args` (a `build` command line), forwarding each stderr line to `on_line`. Returns
/// when the child exits 0. A child that reports an error (`error: ...`, exit 2) gives that error
/// with its kind; a child that dies gives [`Error::WorkerDied`] with the signal and the log tail;
/// setting `cancel` kills the child and gives [`Error::Cancelled`].
pub fn run_build(
    exe: &Path,
    args: &[OsString],
    cancel: Option<&AtomicBool>,
    on_line: &mut dyn FnMut(&str),
) -> Result<()> {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .spawn()
        .map_err(|e| Error::runner("build", format!("cannot start {}: {e}", exe.display())))?;
    let stderr = child.stderr.take();
    let lines: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        if let Some(err) = stderr {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        }
    });
    let mut cancelled = false;
    let status = loop {
        while let Ok(line) = rx.try_recv() {
            on_line(&line);
            if let Ok(mut l) = lines.lock() {
                l.push(line);
                let n = l.len();
                if n > TAIL * 4 {
                    l.drain(..n - TAIL);
                }
            }
        }
        if !cancelled && cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
            cancelled = true;
            let _ = child.kill();
        }
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(e) => return Err(Error::runner("build", format!("cannot wait for the build process: {e}"))),
        }
    };
    let _ = reader.join();
    for line in rx.try_iter() {
        on_line(&line);
        if let Ok(mut l) = lines.lock() {
            l.push(line);
        }
    }
    let tail: Vec<String> = lines.lock().map(|l| l[l.len().saturating_sub(TAIL)..].to_vec()).unwrap_or_default();
    if cancelled {
        return Err(Error::Cancelled("the build was cancelled".into()));
    }
    if status.success() {
        return Ok(());
    }
    // A reported error: the child's own one-line message, with its details when it printed them.
    if let Some(msg) = tail.iter().rev().find_map(|l| l.strip_prefix("error: ")) {
        if status.code() == Some(2) {
            return Err(Error::Remote { kind: ErrorKind::Runner, message: msg.to_string(), details: Some(tail.join("\n")) });
        }
    }
    let last: Vec<&str> = tail.iter().rev().take(3).rev().map(String::as_str).collect();
    Err(Error::WorkerDied {
        msg: format!(
            "the TensorRT build process ended with {}{}",
            describe_exit(status),
            if last.is_empty() { String::new() } else { format!("; last log lines: {}", last.join(" | ")) }
        ),
        details: Some(tail.join("\n")),
    })
}
