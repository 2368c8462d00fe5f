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

/// A build running in a child process.
pub struct BuildChild {
    child: std::process::Child,
    rx: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// The command line of a `trtlens build` child: `exe build ARGS...` (stdout discarded, stderr read).
#[must_use]
pub fn build_command(exe: &Path, args: &[OsString]) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg("build").args(args);
    cmd
}

impl BuildChild {
    /// Start `cmd` (usually from [`build_command`]; the caller may add environment variables).
    pub fn spawn(mut cmd: Command) -> Result<BuildChild> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1")
            .spawn()
            .map_err(|e| Error::runner("build", format!("cannot start {program}: {e}")))?;
        let stderr = child.stderr.take();
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
        Ok(BuildChild { child, rx, reader: Some(reader) })
    }

    /// The child's process id.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the child, forwarding each stderr line to `on_line`. Ok when it exits 0; a child that
    /// reports an error (`error: ...`, exit 2) gives that error (kind `runner`) with its log as
    /// details; a child that dies gives [`Error::WorkerDied`] naming the signal, with the last log
    /// lines; setting `cancel` kills the child and gives [`Error::Cancelled`].
    pub fn wait(mut self, cancel: Option<&AtomicBool>, on_line: &mut dyn FnMut(&str)) -> Result<()> {
        let mut tail: Vec<String> = Vec::new();
        let mut keep = |line: String, tail: &mut Vec<String>| {
            on_line(&line);
            tail.push(line);
            if tail.len() > TAIL * 4 {
                tail.drain(..tail.len() - TAIL);
            }
        };
        let mut cancelled = false;
        let status = loop {
            while let Ok(line) = self.rx.try_recv() {
                keep(line, &mut tail);
            }
            if !cancelled && cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                cancelled = true;
                let _ = self.child.kill();
            }
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
                Err(e) => return Err(Error::runner("build", format!("cannot wait for the build process: {e}"))),
            }
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        while let Ok(line) = self.rx.try_recv() {
            keep(line, &mut tail);
        }
        let tail = tail[tail.len().saturating_sub(TAIL)..].to_vec();
        if cancelled {
            return Err(Error::Cancelled("the build was cancelled".into()));
        }
        if status.success() {
            return Ok(());
        }
        // A reported error: the child's own one-line message, with its log as details.
        if status.code() == Some(2)
            && let Some(msg) = tail.iter().rev().find_map(|l| l.strip_prefix("error: "))
        {
            return Err(Error::Remote {
                kind: ErrorKind::Runner,
                message: msg.to_string(),
                details: Some(tail.join("\n")),
            });
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
}

impl Drop for BuildChild {
    fn drop(&mut self) {
        // A build nobody waits for must not keep running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
