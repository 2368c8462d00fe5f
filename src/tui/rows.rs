//! The layer table's rows: one per compared tensor (topological order) plus one per unmatched
//! tensor, and the visible list after filtering and sorting. Sorting and filtering work on index
//! vectors, so 50,000 rows cost one `sort_by` per change and nothing per frame.

use std::cmp::Ordering;

use crate::compare::report::{Report, Status};

/// A sortable column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// Topological index.
    Index,
    /// Tensor name.
    Name,
    /// Producing op type.
    Op,
    /// Precision of the producing node.
    Precision,
    /// Element count.
    Shape,
    /// Largest absolute error.
    MaxAbs,
    /// Share of mismatching elements.
    Mismatch,
    /// Cosine similarity.
    Cosine,
    /// Number of flags.
    Flags,
}

impl Column {
    /// Every column, in table order.
    pub const ALL: [Column; 9] = [
        Column::Index,
        Column::Name,
        Column::Op,
        Column::Precision,
        Column::Shape,
        Column::MaxAbs,
        Column::Mismatch,
        Column::Cosine,
        Column::Flags,
    ];

    /// Header text.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Column::Index => "#",
            Column::Name => "tensor",
            Column::Op => "op",
            Column::Precision => "prec",
            Column::Shape => "shape",
            Column::MaxAbs => "max abs",
            Column::Mismatch => "mism %",
            Column::Cosine => "cosine",
            Column::Flags => "flags",
        }
    }

    /// Name used in saved UI state.
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Column::Index => "index",
            Column::Name => "name",
            Column::Op => "op",
            Column::Precision => "precision",
            Column::Shape => "shape",
            Column::MaxAbs => "max_abs",
            Column::Mismatch => "mismatch",
            Column::Cosine => "cosine",
            Column::Flags => "flags",
        }
    }

    /// The column saved as `key`.
    #[must_use]
    pub fn from_key(key: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.key() == key)
    }
}

/// How a row's result looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Passed with no flag.
    Ok,
    /// Passed, but flagged (a predicted overflow that did not matter, saturation).
    Warn,
    /// Failed.
    Fail,
    /// NaN or inf in the candidate where the reference is finite.
    NonFinite,
    /// Not compared (skipped or unmatched).
    Missing,
}

/// One table row (owned; built from a report).
#[derive(Debug, Clone)]
pub struct Row {
    /// Tensor name.
    pub name: String,
    /// Producing node (display name).
    pub node: Option<String>,
    /// Producing op type.
    pub op: String,
    /// Topological index (`None` for unmatched tensors).
    pub topo: Option<usize>,
    /// Shape as text.
    pub shape: String,
    /// Element count (for sorting by shape).
    pub numel: usize,
    /// Candidate dtype.
    pub dtype_candidate: String,
    /// Pass/fail/skipped; `None` for unmatched.
    pub status: Option<Status>,
    /// Largest absolute error (NaN when not compared).
    pub max_abs: f64,
    /// Mismatching elements, percent.
    pub mismatch_pct: f64,
    /// Cosine similarity.
    pub cosine: f64,
    /// Report flags, plus `UNMATCHED`.
    pub flags: Vec<String>,
    /// A graph output.
    pub is_output: bool,
    /// Colour class.
    pub severity: Severity,
    /// Index into `report.tensors` (`None` for unmatched).
    pub tensor: Option<usize>,
}

impl Row {
    /// Failed (or not compared at all).
    #[must_use]
    pub fn failing(&self) -> bool {
        matches!(self.severity, Severity::Fail | Severity::NonFinite)
    }

    /// Has any flag.
    #[must_use]
    pub fn flagged(&self) -> bool {
        self.flags.iter().any(|f| f != "FIRST")
    }
}

/// Rows of a report, in report (topological) order, unmatched tensors last.
#[must_use]
pub fn build(report: &Report) -> Vec<Row> {
    let mut rows: Vec<Row> = report
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let m = t.metrics.as_ref();
            let mut flags: Vec<String> =
                t.flags.iter().map(|f| if f == "FIRST_NONFINITE" { "1ST-NF".to_string() } else { f.clone() }).collect();
            if t.status == Status::Skipped {
                flags.insert(0, "SKIP".into());
            }
            if t.is_output {
                flags.push("OUT".into());
            }
            let nonfinite = m.is_some_and(|m| {
                (m.nan_candidate > m.nan_reference) || (m.inf_candidate > m.inf_reference && t.status == Status::Fail)
            });
            let severity = match t.status {
                Status::Skipped => Severity::Missing,
                Status::Fail if nonfinite => Severity::NonFinite,
                Status::Fail => Severity::Fail,
                Status::Pass if flags.iter().any(|f| matches!(f.as_str(), "OVF" | "UNF" | "NaN" | "INF")) => {
                    Severity::Warn
                }
                Status::Pass => Severity::Ok,
            };
            Row {
                name: t.name.clone(),
                node: t.node.clone(),
                op: t.op_type.clone().unwrap_or_default(),
                topo: t.topo_index,
                shape: crate::tensor::shape_string(&t.shape),
                numel: t.shape.iter().product(),
                dtype_candidate: t.dtype_candidate.clone(),
                status: Some(t.status),
                // Error statistics cover finite pairs; show a candidate that went non-finite as such.
                max_abs: m.map_or(f64::NAN, |m| {
                    if m.nan_candidate > m.nan_reference {
                        f64::NAN
                    } else if m.inf_candidate > m.inf_reference {
                        f64::INFINITY
                    } else {
                        m.max_abs
                    }
                }),
                mismatch_pct: m.map_or(f64::NAN, |m| m.mismatch_ratio * 100.0),
                cosine: m.map_or(f64::NAN, |m| m.cosine),
                flags,
                is_output: t.is_output,
                severity,
                tensor: Some(i),
            }
        })
        .collect();
    for (side, names) in [("reference", &report.unmatched.reference), ("candidate", &report.unmatched.candidate)] {
        for n in names {
            rows.push(Row {
                name: n.clone(),
                node: None,
                op: String::new(),
                topo: None,
                shape: String::new(),
                numel: 0,
                dtype_candidate: String::new(),
                status: None,
                max_abs: f64::NAN,
                mismatch_pct: f64::NAN,
                cosine: f64::NAN,
                flags: vec![format!("UNMATCHED({side})")],
                is_output: false,
                severity: Severity::Missing,
                tensor: None,
            });
        }
    }
    rows
}

/// Which rows are visible.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Failing rows only.
    pub failing: bool,
    /// Flagged rows only.
    pub flagged: bool,
    /// Rows of this op type only.
    pub op: Option<String>,
}

impl Filter {
    /// True when no filter is active.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.failing && !self.flagged && self.op.is_none()
    }

    fn keeps(&self, r: &Row) -> bool {
        (!self.failing || r.failing()) && (!self.flagged || r.flagged()) && self.op.as_ref().is_none_or(|o| *o == r.op)
    }
}

/// NaN-aware float order: NaN sorts after every number.
fn fcmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.total_cmp(&b),
    }
}

/// The visible rows (indices into `rows`), filtered, then sorted stably by `column`. `precision`
/// gives each row's precision label (for sorting by precision).
#[must_use]
pub fn view(
    rows: &[Row],
    filter: &Filter,
    column: Column,
    descending: bool,
    precision: &dyn Fn(&Row) -> String,
) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..rows.len()).filter(|&i| filter.keeps(&rows[i])).collect();
    let key_prec: Vec<String> =
        if column == Column::Precision { rows.iter().map(precision).collect() } else { Vec::new() };
    idx.sort_by(|&a, &b| {
        let (ra, rb) = (&rows[a], &rows[b]);
        let o = match column {
            Column::Index => ra.topo.unwrap_or(usize::MAX).cmp(&rb.topo.unwrap_or(usize::MAX)),
            Column::Name => ra.name.cmp(&rb.name),
            Column::Op => ra.op.cmp(&rb.op),
            Column::Precision => key_prec[a].cmp(&key_prec[b]),
            Column::Shape => ra.numel.cmp(&rb.numel),
            Column::MaxAbs => fcmp(ra.max_abs, rb.max_abs),
            Column::Mismatch => fcmp(ra.mismatch_pct, rb.mismatch_pct),
            Column::Cosine => fcmp(ra.cosine, rb.cosine),
            Column::Flags => ra.flags.len().cmp(&rb.flags.len()),
        };
        let o = if descending { o.reverse() } else { o };
        o.then(a.cmp(&b))
    });
    idx
}

/// The first visible position at or after `from` (wrapping) whose row name contains `query`
/// (case-insensitive).
#[must_use]
pub fn find(rows: &[Row], visible: &[usize], query: &str, from: usize) -> Option<usize> {
    if query.is_empty() || visible.is_empty() {
        return None;
    }
    let q = query.to_lowercase();
    let n = visible.len();
    (0..n).map(|k| (from + k) % n).find(|&p| {
        let r = &rows[visible[p]];
        r.name.to_lowercase().contains(&q) || r.node.as_ref().is_some_and(|x| x.to_lowercase().contains(&q))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, topo: usize, max_abs: f64, sev: Severity, op: &str) -> Row {
        Row {
            name: name.into(),
            node: None,
            op: op.into(),
            topo: Some(topo),
            shape: String::new(),
            numel: topo,
            dtype_candidate: "float16".into(),
            status: Some(if sev == Severity::Ok { Status::Pass } else { Status::Fail }),
            max_abs,
            mismatch_pct: 0.0,
            cosine: 1.0,
            flags: if sev == Severity::Ok { vec![] } else { vec!["NaN".into()] },
            is_output: false,
            severity: sev,
            tensor: Some(topo),
        }
    }

    #[test]
    fn filter_sort_and_find() {
        let rows = vec![
            row("a", 0, 0.1, Severity::Ok, "MatMul"),
            row("b", 1, f64::NAN, Severity::NonFinite, "Exp"),
            row("c", 2, 5.0, Severity::Fail, "MatMul"),
        ];
        let p = |_: &Row| String::new();
        assert_eq!(view(&rows, &Filter::default(), Column::Index, false, &p), vec![0, 1, 2]);
        assert_eq!(view(&rows, &Filter::default(), Column::MaxAbs, true, &p), vec![1, 2, 0], "NaN is largest");
        let f = Filter { failing: true, ..Filter::default() };
        assert_eq!(view(&rows, &f, Column::Index, false, &p), vec![1, 2]);
        let f = Filter { op: Some("MatMul".into()), ..Filter::default() };
        assert_eq!(view(&rows, &f, Column::Index, false, &p), vec![0, 2]);
        let all = [0, 1, 2];
        assert_eq!(find(&rows, &all, "C", 0), Some(2));
        assert_eq!(find(&rows, &all, "a", 1), Some(0), "wraps around");
        assert_eq!(find(&rows, &all, "zz", 0), None);
    }

    #[test]
    fn column_keys_round_trip() {
        for c in Column::ALL {
            assert_eq!(Column::from_key(c.key()), Some(c));
        }
    }
}
