//! The search log: one JSON object per line (`trtlens.search-log/1`).
//!
//! ```text
//! {"line":"header","log":"trtlens.search-log/1","model_sha256":"…","candidate":"cpu-fp16","plan":"default = \"fp16\"…","tolerance":{…},"inputs":{…}}
//! {"line":"run","run":1,"phase":"baseline","kept":[],"verdict":"fail","outputs":[{"name":"logits","status":"fail","max_abs":"nan"}],"seconds":0.02}
//! {"line":"ranking","nodes":["mlp/fc1/MatMul", …],"failing":["mlp/fc1/MatMul"]}
//! {"line":"run","run":2,"phase":"prediction","kept":["mlp/act/Relu", …],"verdict":"pass",…}
//! ```
//!
//! `--resume` reads it back: the header must describe the same search (model, candidate, base
//! plan, tolerance, inputs); every set of kept nodes already judged keeps its verdict and is not
//! run again, and new runs are appended.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compare::CompareRequest;
use crate::compare::metrics::json_f64;
use crate::compare::report::{Report, Status};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::precision::Plan;

/// Format tag of the log's header line.
pub const LOG_SCHEMA: &str = "trtlens.search-log/1";

/// What identifies a search: a log only replays into the same one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`LOG_SCHEMA`].
    pub log: String,
    /// sha256 of the model file.
    pub model_sha256: String,
    /// The candidate.
    pub candidate: String,
    /// The base plan (TOML).
    pub plan: String,
    /// Tolerance of the graph outputs.
    pub tolerance: serde_json::Value,
    /// Per-tensor tolerance overrides.
    pub overrides: serde_json::Value,
    /// Inputs.
    pub inputs: serde_json::Value,
}

impl Header {
    /// The header of a search of `model` with `req` and the base plan `plan`.
    #[must_use]
    pub fn new(model: &Model, req: &CompareRequest, plan: &Plan) -> Header {
        Header {
            log: LOG_SCHEMA.into(),
            model_sha256: model.sha256.clone(),
            candidate: req.candidate.describe(),
            plan: plan.to_toml(),
            tolerance: serde_json::to_value(req.tolerance).unwrap_or_default(),
            overrides: serde_json::to_value(&req.overrides).unwrap_or_default(),
            inputs: serde_json::to_value(&req.inputs).unwrap_or_default(),
        }
    }
}

/// A graph output's verdict in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedOutput {
    /// Output name.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// Largest absolute error.
    #[serde(with = "json_f64")]
    pub max_abs: f64,
}

/// The graph outputs of a report.
#[must_use]
pub fn outputs_of(r: &Report) -> Vec<LoggedOutput> {
    r.outputs.iter().map(|o| LoggedOutput { name: o.name.clone(), status: o.status, max_abs: o.max_abs }).collect()
}

/// One candidate run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Its number (1-based, in the order run).
    pub run: usize,
    /// The phase that asked for it (`baseline`, `prediction`, `grow`, `hand back`).
    pub phase: String,
    /// The nodes kept FP32 (sorted).
    pub kept: Vec<String>,
    /// `pass` or `fail` (graph outputs).
    pub verdict: String,
    /// Each graph output.
    pub outputs: Vec<LoggedOutput>,
    /// Seconds it took.
    pub seconds: f64,
    /// Unused in run lines (the ranking has its own line).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranking: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "line", rename_all = "snake_case")]
enum Line {
    Header(Header),
    Run(RunRecord),
    Ranking {
        nodes: Vec<String>,
        #[serde(default)]
        failing: Vec<String>,
    },
}

/// The baseline run's ranking of introduced error, as logged.
#[derive(Debug, Clone, Default)]
pub struct Ranking {
    /// Nodes by introduced error, worst first.
    pub nodes: Vec<String>,
    /// Those whose introduced error fails the tolerance (or made non-finite values).
    pub failing: Vec<String>,
}

/// The open log.
pub struct Log {
    path: Option<PathBuf>,
    /// Sets judged in an earlier session, not yet asked for in this one.
    pending: HashSet<BTreeSet<String>>,
}

/// Verdicts by set of kept nodes.
pub type Memo = HashMap<BTreeSet<String>, bool>;

impl Log {
    /// Start a log at `path` (replacing an earlier one), or with `resume` read it back: the verdicts
    /// it holds and the ranking of the baseline run.
    pub fn open(path: Option<&Path>, header: &Header, resume: bool) -> Result<(Log, Memo, Ranking)> {
        let mut memo = Memo::new();
        let mut ranking = Ranking::default();
        let Some(path) = path else {
            if resume {
                return Err(Error::usage("--resume needs the log to replay (--log FILE)"));
            }
            return Ok((Log { path: None, pending: HashSet::new() }, memo, ranking));
        };
        if resume {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::store_io(path, "cannot read the search log to resume", e))?;
            let mut lines = text.lines().filter(|l| !l.trim().is_empty());
            let first = lines.next().ok_or_else(|| Error::store(path, "the search log is empty"))?;
            match serde_json::from_str::<Line>(first) {
                Ok(Line::Header(h)) if h == *header => {}
                Ok(Line::Header(h)) => {
                    let what = if h.model_sha256 != header.model_sha256 {
                        "another model"
                    } else if h.candidate != header.candidate {
                        "another candidate"
                    } else if h.plan != header.plan {
                        "another base plan"
                    } else if h.inputs != header.inputs {
                        "other inputs"
                    } else {
                        "another tolerance"
                    };
                    return Err(Error::usage(format!(
                        "--resume {}: the log is of a search with {what}; run without --resume to start over",
                        path.display()
                    )));
                }
                _ => {
                    return Err(Error::store(
                        path,
                        format!("not a search log (first line is not a {LOG_SCHEMA} header)"),
                    ));
                }
            }
            for (i, l) in lines.enumerate() {
                match serde_json::from_str::<Line>(l) {
                    Ok(Line::Run(r)) => {
                        memo.insert(r.kept.iter().cloned().collect(), r.verdict == "pass");
                    }
                    Ok(Line::Ranking { nodes, failing }) => ranking = Ranking { nodes, failing },
                    Ok(Line::Header(_)) => {}
                    // A line cut short by an interruption: everything before it stands.
                    Err(_) if i + 2 == text.lines().filter(|l| !l.trim().is_empty()).count() => break,
                    Err(e) => return Err(Error::store(path, format!("line {}: {e}", i + 2))),
                }
            }
            let pending = memo.keys().cloned().collect();
            // Rewrite without a torn last line, so appends stay valid JSON lines.
            let mut clean = String::new();
            for l in text.lines().filter(|l| serde_json::from_str::<Line>(l).is_ok()) {
                clean.push_str(l);
                clean.push('\n');
            }
            crate::store::write_atomic(path, clean.as_bytes())?;
            return Ok((Log { path: Some(path.to_path_buf()), pending }, memo, ranking));
        }
        let mut text = serde_json::to_string(&Line::Header(header.clone()))
            .map_err(|e| Error::usage(format!("cannot write the search log: {e}")))?;
        text.push('\n');
        crate::store::write_atomic(path, text.as_bytes())?;
        Ok((Log { path: Some(path.to_path_buf()), pending: HashSet::new() }, memo, ranking))
    }

    fn write(&self, line: &Line) -> Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let mut text =
            serde_json::to_string(line).map_err(|e| Error::usage(format!("cannot write the search log: {e}")))?;
        text.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::store_io(path, "cannot append to the search log", e))?;
        f.write_all(text.as_bytes()).map_err(|e| Error::store_io(path, "cannot append to the search log", e))?;
        f.sync_data().map_err(|e| Error::store_io(path, "cannot append to the search log", e))
    }

    /// Append a run.
    pub fn append(&mut self, rec: &RunRecord) -> Result<()> {
        self.write(&Line::Run(rec.clone()))
    }

    /// Append the ranking of the baseline run.
    pub fn note_ranking(&mut self, nodes: &[String], failing: &[String]) -> Result<()> {
        self.write(&Line::Ranking { nodes: nodes.to_vec(), failing: failing.to_vec() })
    }

    /// True when `set` was judged in an earlier session and not yet asked for in this one.
    #[must_use]
    pub fn replayable(&self, set: &BTreeSet<String>) -> bool {
        self.pending.contains(set)
    }

    /// Mark `set` as replayed.
    pub fn consume(&mut self, set: &BTreeSet<String>) {
        self.pending.remove(set);
    }
}
