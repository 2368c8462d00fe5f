//! Saved debugging sessions: `sessions/NAME/` holds everything needed to reopen an inspection
//! without re-running anything.
//!
//! Layout (format `trtlens.session/1`, described in `docs/sessions.md`):
//!
//! ```text
//! sessions/NAME/
//!   session.json      what was compared, how, and the UI state
//!   model.onnx        a copy of the model (hard link when possible)
//!   plan.toml         the candidate's precision plan, when it takes one
//!   report.json       the current report (`trtlens.report/1`)
//!   runs/reference/   the reference run (inputs + tensors), never recomputed
//!   runs/candidate/   the candidate run the report was made from
//! ```
//!
//! A session is written into a hidden sibling directory and renamed into place, so a crash while
//! saving leaves the previous session intact. Run files are immutable once written, so they are
//! hard-linked into the session when the file system allows it and copied otherwise.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compare::report::Report;
use crate::error::{Error, Result};
use crate::precision::Plan;
use crate::store::ToolInfo;

/// `schema` of `session.json`.
pub const SESSION_SCHEMA: &str = "trtlens.session/2";
/// The previous schema (sessions stored argument vectors instead of a request); still read.
pub const SESSION_SCHEMA_V1: &str = "trtlens.session/1";
/// The session description file.
pub const SESSION_FILE: &str = "session.json";

/// The model a session was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionModel {
    /// The copy inside the session (relative to it), when one was made.
    pub file: Option<String>,
    /// Where the model was loaded from originally.
    pub source: String,
    /// sha256 of the model file.
    pub sha256: String,
}

/// Where the runs of a session live (relative to the session directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRuns {
    /// The reference run.
    pub reference: String,
    /// The candidate run of the current report.
    pub candidate: String,
}

/// `session.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionFile {
    /// [`SESSION_SCHEMA`].
    pub schema: String,
    /// The session name (the directory name).
    pub name: String,
    /// The tool that wrote it.
    pub tool: ToolInfo,
    /// The model.
    pub model: SessionModel,
    /// Reference side as first given (`tract`, `onnxruntime`, ...).
    pub reference: String,
    /// Candidate side (`cpu-fp16`, ...).
    pub candidate: String,
    /// The session's comparison as first run (the job request's comparison: sides, inputs,
    /// tolerances, runner options; the plan lives in `plan`). Rebuilds reuse it with the stored
    /// reference run. Absent only in `trtlens.session/1` files, which stored argument vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<crate::compare::CompareRequest>,
    /// `trtlens.session/1` only: input flags of the first comparison.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_args: Vec<String>,
    /// `trtlens.session/1` only: tolerance flags of every comparison.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compare_args: Vec<String>,
    /// The plan file (relative), when the candidate takes a plan.
    pub plan: Option<String>,
    /// The report file (relative).
    pub report: String,
    /// The runs.
    pub runs: SessionRuns,
    /// UI state, owned by the inspector (opaque here).
    #[serde(default)]
    pub ui: serde_json::Value,
}

impl SessionFile {
    /// The session's comparison request (always present once [`load`]ed).
    pub fn request(&self) -> Result<&crate::compare::CompareRequest> {
        self.request.as_ref().ok_or_else(|| Error::usage("the session has no comparison request"))
    }
}

/// What [`save`] writes.
#[derive(Debug)]
pub struct SaveRequest<'a> {
    /// Session name: a single path component.
    pub name: &'a str,
    /// The model file.
    pub model: &'a Path,
    /// Its sha256.
    pub model_sha256: &'a str,
    /// Reference side spec.
    pub reference: &'a str,
    /// Candidate side spec.
    pub candidate: &'a str,
    /// The session's comparison (its plan is stored apart).
    pub request: &'a crate::compare::CompareRequest,
    /// The applied plan.
    pub plan: Option<&'a Plan>,
    /// The current report.
    pub report: &'a Report,
    /// Reference run directory.
    pub reference_run: &'a Path,
    /// Candidate run directory.
    pub candidate_run: &'a Path,
    /// UI state.
    pub ui: serde_json::Value,
}

/// A session read back.
#[derive(Debug)]
pub struct Loaded {
    /// Its directory.
    pub dir: PathBuf,
    /// `session.json`.
    pub file: SessionFile,
    /// The report.
    pub report: Report,
    /// The plan, if any.
    pub plan: Option<Plan>,
    /// The model to use for rebuilds: the copy, else the original path when it still exists with
    /// the same sha256 (`None`: browsing only).
    pub model: Option<PathBuf>,
    /// Absolute reference run directory.
    pub reference_run: PathBuf,
    /// Absolute candidate run directory.
    pub candidate_run: PathBuf,
}

/// Check that `name` is usable as a session directory name.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "session name '{name}': use letters, digits, '-', '_' and '.', not starting with '.'"
        )))
    }
}

/// True when `dir` holds a session.
#[must_use]
pub fn is_session(dir: &Path) -> bool {
    dir.join(SESSION_FILE).is_file()
}

fn io_err(path: &Path, what: &str, e: &std::io::Error) -> Error {
    Error::store(path, format!("{what}: {e}"))
}

/// Hard-link `from` to `to`, copying when linking is not possible.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map(|_| ()).map_err(|e| io_err(from, &format!("cannot copy to {}", to.display()), &e))
}

/// Copy a directory tree (files hard-linked when possible).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| io_err(to, "cannot create", &e))?;
    let entries = std::fs::read_dir(from).map_err(|e| io_err(from, "cannot read", &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_err(from, "cannot read", &e))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        let ty = entry.file_type().map_err(|e| io_err(&path, "cannot stat", &e))?;
        if ty.is_dir() {
            copy_tree(&path, &target)?;
        } else {
            link_or_copy(&path, &target)?;
        }
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| io_err(path, "cannot write", &e))
}

/// Save a session as `sessions_dir/NAME`, replacing an earlier session of that name atomically.
/// Refuses to replace a non-empty directory that is not a session.
pub fn save(sessions_dir: &Path, req: &SaveRequest<'_>) -> Result<PathBuf> {
    validate_name(req.name)?;
    let dest = sessions_dir.join(req.name);
    if dest.exists() && !is_session(&dest) && std::fs::read_dir(&dest).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::store(&dest, "exists and is not a trtlens session; choose another session name"));
    }
    std::fs::create_dir_all(sessions_dir).map_err(|e| io_err(sessions_dir, "cannot create", &e))?;
    let tmp = sessions_dir.join(format!(".{}.saving-{}", req.name, std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io_err(&tmp, "cannot remove", &e))?;
    }
    let result = (|| {
        std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, "cannot create", &e))?;
        link_or_copy(req.model, &tmp.join("model.onnx"))?;
        copy_tree(req.reference_run, &tmp.join("runs").join("reference"))?;
        copy_tree(req.candidate_run, &tmp.join("runs").join("candidate"))?;
        if let Some(plan) = req.plan {
            write(&tmp.join("plan.toml"), plan.to_toml().as_bytes())?;
        }
        // Compact, not pretty: the inspector parses it on every reopen (a third faster on large
        // sessions); `trtlens report` or any JSON tool prints it readably.
        let report = serde_json::to_vec(req.report).map_err(|e| Error::store(&tmp, e.to_string()))?;
        write(&tmp.join("report.json"), &report)?;
        let file = SessionFile {
            schema: SESSION_SCHEMA.into(),
            name: req.name.into(),
            tool: ToolInfo::current(),
            model: SessionModel {
                file: Some("model.onnx".into()),
                source: req.model.display().to_string(),
                sha256: req.model_sha256.into(),
            },
            reference: req.reference.into(),
            candidate: req.candidate.into(),
            request: Some(crate::compare::CompareRequest {
                runner_options: crate::runner::RunnerOptions {
                    plan: None,
                    plan_label: None,
                    ..req.request.runner_options.clone()
                },
                save_runs: None,
                ..req.request.clone()
            }),
            input_args: vec![],
            compare_args: vec![],
            plan: req.plan.map(|_| "plan.toml".into()),
            report: "report.json".into(),
            runs: SessionRuns { reference: "runs/reference".into(), candidate: "runs/candidate".into() },
            ui: req.ui.clone(),
        };
        let json = serde_json::to_string_pretty(&file).map_err(|e| Error::store(&tmp, e.to_string()))?;
        write(&tmp.join(SESSION_FILE), json.as_bytes())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // Swap into place: the old session (if any) moves aside first and is removed afterwards.
    let old = sessions_dir.join(format!(".{}.old-{}", req.name, std::process::id()));
    let had_old = dest.exists();
    if had_old {
        std::fs::rename(&dest, &old).map_err(|e| io_err(&dest, "cannot move the previous session aside", &e))?;
    }
    if let Err(e) = std::fs::rename(&tmp, &dest) {
        if had_old {
            let _ = std::fs::rename(&old, &dest);
        }
        return Err(io_err(&dest, "cannot move the new session into place", &e));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(dest)
}

/// Read a session back.
pub fn load(dir: &Path) -> Result<Loaded> {
    load_inner(dir, false).map(|(loaded, _)| loaded)
}

/// Read a session back and load its model (while the report is parsed on another thread: on a
/// large session both take a while).
pub fn load_with_model(dir: &Path) -> Result<(Loaded, Option<crate::model::Model>)> {
    load_inner(dir, true)
}

fn load_inner(dir: &Path, with_model: bool) -> Result<(Loaded, Option<crate::model::Model>)> {
    let path = dir.join(SESSION_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, "cannot read the session", &e))?;
    let mut file: SessionFile =
        serde_json::from_str(&text).map_err(|e| Error::store(&path, format!("not a trtlens session file: {e}")))?;
    match file.schema.as_str() {
        SESSION_SCHEMA if file.request.is_some() => {}
        SESSION_SCHEMA => return Err(Error::store(&path, "the session has no comparison request")),
        SESSION_SCHEMA_V1 => {
            let model = file.model.file.as_ref().map_or_else(|| PathBuf::from(&file.model.source), |f| dir.join(f));
            let request = crate::cli::legacy_session_request(
                &model,
                &file.reference,
                &file.candidate,
                &file.input_args,
                &file.compare_args,
            )
            .map_err(|e| Error::store(&path, format!("cannot read this {SESSION_SCHEMA_V1} session: {e}")))?;
            file.request = Some(request);
        }
        other => {
            return Err(Error::store(
                &path,
                format!("schema '{other}' is not {SESSION_SCHEMA} (nor {SESSION_SCHEMA_V1}); a newer trtlens wrote it"),
            ));
        }
    }
    let report_path = dir.join(&file.report);
    std::thread::scope(|scope| {
        let parsing = scope.spawn(|| -> Result<Report> {
            let report_text = std::fs::read_to_string(&report_path)
                .map_err(|e| io_err(&report_path, "cannot read the report", &e))?;
            serde_json::from_str(&report_text)
                .map_err(|e| Error::store(&report_path, format!("not a trtlens report: {e}")))
        });
        let rest = finish_load(dir, &file, with_model);
        let report = parsing.join().map_err(|_| Error::store(&report_path, "reading the report panicked"))??;
        let (plan, model, reference_run, candidate_run, loaded_model) = rest?;
        Ok((Loaded { dir: dir.to_path_buf(), file, report, plan, model, reference_run, candidate_run }, loaded_model))
    })
}

/// The parts of a session besides its report: plan, model path (and model), run directories.
#[allow(clippy::type_complexity)]
fn finish_load(
    dir: &Path,
    file: &SessionFile,
    with_model: bool,
) -> Result<(Option<Plan>, Option<PathBuf>, PathBuf, PathBuf, Option<crate::model::Model>)> {
    let plan = file.plan.as_ref().map(|p| Plan::load(&dir.join(p))).transpose()?;
    let copy = file.model.file.as_ref().map(|f| dir.join(f)).filter(|p| p.is_file());
    let source = PathBuf::from(&file.model.source);
    let model = copy.or_else(|| {
        let same = std::fs::read(&source).is_ok_and(|b| crate::model::sha256_hex(&b) == file.model.sha256);
        same.then_some(source)
    });
    let reference_run = dir.join(&file.runs.reference);
    let candidate_run = dir.join(&file.runs.candidate);
    for run in [&reference_run, &candidate_run] {
        if !run.is_dir() {
            return Err(Error::store(run, "the session's run directory is missing"));
        }
    }
    let loaded_model = if with_model { model.as_deref().map(crate::model::Model::load).transpose()? } else { None };
    Ok((plan, model, reference_run, candidate_run, loaded_model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_safe_components() {
        for ok in ["mlp", "mlp_overflow-2", "a.b"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "../x", "a b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn copy_tree_copies_nested_files() -> std::result::Result<(), Box<dyn std::error::Error>> {
        let t = tempfile::tempdir()?;
        std::fs::create_dir_all(t.path().join("a/b"))?;
        std::fs::write(t.path().join("a/b/f.txt"), "x")?;
        copy_tree(&t.path().join("a"), &t.path().join("c"))?;
        assert_eq!(std::fs::read_to_string(t.path().join("c/b/f.txt"))?, "x");
        Ok(())
    }
}
