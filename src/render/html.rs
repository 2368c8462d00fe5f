//! The self-contained HTML report: one file with the verdict, the first divergence and the first
//! non-finite tensor at the top, the graph outputs, the plots (inline SVG), a sortable and
//! filterable table of every compared tensor with the terminal table's flags, the precision plan,
//! and the details (notes, control-flow specialization, unmatched tensors, inputs). The JSON report
//! itself is embedded (`<script type="application/json" id="report-json">`), so the page is also
//! the data.
//!
//! Nothing is fetched: styles and the script are inline, a Content-Security-Policy forbids every
//! network source, and the plots are SVG elements, so the file opens the same offline and years
//! later. Without JavaScript the table is still complete (rows are rendered on the server side);
//! the script adds sorting (click a header), filtering (text, failing only, flagged only, op type)
//! and the row count.
//!
//! Stable element ids (used by tests and by anyone scripting the page): `verdict`,
//! `first-divergence`, `first-nonfinite`, `outputs`, `plots`, `layers` (the table; one `tbody` row
//! per tensor, `data-status`, `data-flags`, `data-op`, `data-precision`), `row-count`, `plan`,
//! `details`, `report-json`.

use std::fmt::Write as _;

use super::{Extras, TensorPair, describe_tensor, outputs_passing, precision_of, verdict_word};
use crate::compare::report::{Report, Status, TensorReport};
use crate::compare::table::{max_abs_cell, num, shown_flags};
use crate::error::Result;

/// A section a later command adds to the page (check, search): a title, paragraphs and an optional
/// table, all plain text (escaped when written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// `id` attribute of the section.
    pub id: String,
    /// Heading.
    pub title: String,
    /// Paragraphs.
    pub paragraphs: Vec<String>,
    /// Table header cells (empty: no table).
    pub header: Vec<String>,
    /// Table rows.
    pub rows: Vec<Vec<String>>,
}

/// Escape text for HTML content and attribute values.
#[must_use]
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A number for a `data-v` sort key (`NaN`, `Infinity` and `-Infinity` as JavaScript reads them).
fn sort_key(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else {
        format!("{v:e}")
    }
}

const STYLE: &str = r#"
:root { --fail: #c62828; --pass: #2e7d32; --warn: #b26a00; --muted: #666; --line: #ddd; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1280px; padding: 16px 24px 40px; color: #222; }
h1 { font-size: 22px; margin: 8px 0 4px; display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
code, .mono, td.name { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
.verdict { color: #fff; padding: 2px 12px; border-radius: 4px; font-weight: 700; letter-spacing: .5px; }
.verdict.pass { background: var(--pass); } .verdict.fail { background: var(--fail); }
.sub { color: var(--muted); }
dl.key { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 12px 0; }
dl.key dt { color: var(--muted); } dl.key dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 3px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name { overflow-wrap: anywhere; max-width: 420px; }
#layers thead th { position: sticky; top: 0; background: #f6f6f6; cursor: pointer; user-select: none; white-space: nowrap; }
#layers thead th[aria-sort=ascending]::after { content: " \25B2"; } #layers thead th[aria-sort=descending]::after { content: " \25BC"; }
tr.fail td { background: #fdecea; } tr.flagged td { background: #fff6e0; } tr.skipped td { color: var(--muted); }
.flag { display: inline-block; font-size: 11px; padding: 0 5px; margin: 0 2px 1px 0; border-radius: 3px; background: #eee; }
.flag-first, .flag-ovf, .flag-nan, .flag-inf, .flag-skip { background: #f8d7d4; } .flag-unf, .flag-sub, .flag-1st-nf { background: #ffe8b8; }
.controls { display: flex; gap: 14px; align-items: center; flex-wrap: wrap; margin: 8px 0; }
.controls input[type=search] { width: 320px; padding: 4px 6px; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 8px 20px; }
figure { margin: 8px 0 12px; min-width: 0; } figure.wide { grid-column: 1 / -1; }
figure svg { width: 100%; height: auto; border: 1px solid var(--line); }
.scroll { max-height: 75vh; overflow: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); margin-bottom: 4px; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
"#;

const SCRIPT: &str = r"
(function () {
  'use strict';
  var table = document.getElementById('layers');
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var count = document.getElementById('row-count');
  var text = document.getElementById('filter');
  var failing = document.getElementById('only-failing');
  var flagged = document.getElementById('only-flagged');
  var op = document.getElementById('op-filter');
  function apply() {
    var q = text.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (r) {
      var ok = (!q || r.dataset.search.indexOf(q) >= 0)
        && (!failing.checked || r.dataset.status !== 'pass')
        && (!flagged.checked || r.dataset.flags !== '')
        && (!op.value || r.dataset.op === op.value);
      r.hidden = !ok;
      if (ok) { shown += 1; }
    });
    count.textContent = shown + ' of ' + rows.length + ' rows';
    count.dataset.shown = String(shown);
  }
  var sorted = -1, ascending = true;
  function value(r, i, numeric) {
    var c = r.cells[i];
    var v = c.hasAttribute('data-v') ? c.getAttribute('data-v') : c.textContent;
    if (!numeric) { return v.toLowerCase(); }
    var x = parseFloat(v);
    return isNaN(x) ? null : x;
  }
  function sortBy(th, descending) {
    var i = th.cellIndex;
    var numeric = th.classList.contains('num');
    if (descending === undefined) {
      ascending = sorted === i ? !ascending : !th.hasAttribute('data-desc');
    } else {
      ascending = !descending;
    }
    sorted = i;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
    var keyed = rows.map(function (r, n) { return [value(r, i, numeric), n, r]; });
    keyed.sort(function (a, b) {
      if (a[0] === b[0]) { return a[1] - b[1]; }
      if (a[0] === null) { return 1; }
      if (b[0] === null) { return -1; }
      var c = a[0] < b[0] ? -1 : 1;
      return ascending ? c : -c;
    });
    keyed.forEach(function (k) { tbody.appendChild(k[2]); });
  }
  table.tHead.addEventListener('click', function (e) {
    var th = e.target.closest('th');
    if (th) { sortBy(th, undefined); }
  });
  [text, failing, flagged, op].forEach(function (el) {
    el.addEventListener('input', apply);
    el.addEventListener('change', apply);
  });
  // State from the address: #failing&flagged&op=MatMul&q=text&sort=COLUMN[-desc] (shareable views).
  location.hash.replace(/^#/, '').split('&').forEach(function (part) {
    if (!part) { return; }
    var eq = part.indexOf('=');
    var k = eq < 0 ? part : part.slice(0, eq);
    var v = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
    if (k === 'failing') { failing.checked = true; }
    if (k === 'flagged') { flagged.checked = true; }
    if (k === 'op') { op.value = v; }
    if (k === 'q') { text.value = v; }
    if (k === 'sort') {
      var desc = /-desc$/.test(v);
      var i = parseInt(v, 10);
      var th = table.tHead.rows[0].cells[i];
      if (th) { sorted = i; ascending = !desc; sortBy(th, desc); }
    }
  });
  apply();
  document.body.setAttribute('data-ready', '1');
})();
";

fn tensor_row(out: &mut String, t: &TensorReport) {
    let flags = shown_flags(t);
    let status = match t.status {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Skipped => "skipped",
    };
    let class = match crate::compare::table::severity(t) {
        2 => "fail",
        1 if t.status == Status::Skipped => "skipped",
        1 => "flagged",
        _ => "",
    };
    let op = t.op_type.as_deref().unwrap_or("");
    let node = t.node.as_deref().unwrap_or("");
    let search = format!("{} {op} {node}", t.name).to_lowercase();
    let idx = t.topo_index.map_or(f64::NAN, |i| i as f64);
    let shape = crate::tensor::shape_string(&t.shape);
    let dtypes = if t.dtype_reference == t.dtype_candidate {
        t.dtype_reference.clone()
    } else {
        format!("{} → {}", t.dtype_reference, t.dtype_candidate)
    };
    let _ = write!(
        out,
        "<tr class=\"{class}\" data-status=\"{status}\" data-flags=\"{}\" data-op=\"{}\" data-precision=\"{}\" data-search=\"{}\">",
        escape(&flags.join(" ")),
        escape(op),
        precision_of(t),
        escape(&search)
    );
    let _ = write!(
        out,
        "<td class=\"num\" data-v=\"{}\">{}</td><td class=\"name\" title=\"{}\">{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td>",
        sort_key(idx),
        t.topo_index.map_or_else(|| "-".into(), |i| i.to_string()),
        escape(node),
        escape(&t.name),
        escape(op),
        escape(&shape),
        escape(&dtypes),
        precision_of(t),
    );
    match &t.metrics {
        Some(m) => {
            let cosine = if t.exact {
                "exact".to_string()
            } else if m.cosine.is_nan() {
                "-".into()
            } else {
                format!("{:.6}", m.cosine)
            };
            let max_abs_key = if m.nan_candidate > m.nan_reference || m.inf_candidate > m.inf_reference {
                f64::INFINITY
            } else {
                m.max_abs
            };
            let _ = write!(
                out,
                "<td class=\"num\" data-v=\"{}\">{}</td><td class=\"num\" data-v=\"{}\">{}</td><td class=\"num\" data-v=\"{}\">{:.2}</td><td class=\"num\" data-v=\"{}\">{}</td><td class=\"num\" data-v=\"{}\">{}</td>",
                sort_key(max_abs_key),
                escape(&max_abs_cell(m)),
                sort_key(m.mean_abs),
                escape(&num(m.mean_abs)),
                sort_key(m.mismatch_ratio * 100.0),
                m.mismatch_ratio * 100.0,
                sort_key(m.cosine),
                cosine,
                sort_key(m.reference_abs_max),
                escape(&num(m.reference_abs_max)),
            );
        }
        None => out.push_str(
            "<td class=\"num\" data-v=\"NaN\">-</td><td class=\"num\" data-v=\"NaN\">-</td><td class=\"num\" data-v=\"NaN\">-</td><td class=\"num\" data-v=\"NaN\">-</td><td class=\"num\" data-v=\"NaN\">-</td>",
        ),
    }
    let tol = format!("{} / {}", num(t.atol), num(t.rtol));
    let _ = write!(out, "<td>{status}</td><td class=\"num\">{}</td><td>", escape(&tol));
    for f in &flags {
        let class: String =
            f.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
        let _ = write!(out, "<span class=\"flag flag-{class}\">{}</span>", escape(f));
    }
    if let Some(r) = &t.reason {
        let _ = write!(out, "<span class=\"sub\">{}</span>", escape(r));
    }
    out.push_str("</td></tr>\n");
}

fn key_tensor(out: &mut String, report: &Report, id: &str, label: &str, name: Option<&str>) {
    let _ = write!(out, "<dt>{label}</dt><dd><code id=\"{id}\"");
    match name {
        Some(n) => {
            let _ = write!(out, " data-tensor=\"{}\">{}</code>", escape(n), escape(n));
            if let Some(t) = report.tensor(n) {
                let detail = describe_tensor(report, Some(n));
                let detail = detail.strip_prefix(n).unwrap_or(&detail).trim();
                let metrics = t.metrics.as_ref().map_or_else(String::new, |m| {
                    format!(
                        " · max abs {} · {:.2} % mismatching · {}",
                        max_abs_cell(m),
                        m.mismatch_ratio * 100.0,
                        shown_flags(t).join(" ")
                    )
                });
                let _ = write!(out, " <span class=\"sub\">{}{}</span>", escape(detail), escape(&metrics));
            }
        }
        None => out.push_str(">none</code>"),
    }
    out.push_str("</dd>\n");
}

fn header(out: &mut String, report: &Report) {
    let word = verdict_word(report);
    let model = report.model.path.as_deref().unwrap_or("(no model: two saved results)");
    let _ = write!(
        out,
        "<header>\n<h1><span id=\"verdict\" class=\"verdict {}\">{word}</span> <span class=\"mono\">{}</span></h1>\n",
        word.to_lowercase(),
        escape(model)
    );
    let side = |s: &crate::compare::report::SideReport| {
        let v = if s.version.is_empty() { String::new() } else { format!(" {}", s.version) };
        let plan = s.precision_plan.as_deref().map_or_else(String::new, |p| format!(" (plan: {p})"));
        format!("{}{v}{plan}", s.runner)
    };
    let tol = &report.tolerance;
    let _ = writeln!(
        out,
        "<p class=\"sub\">candidate <b>{}</b> against reference <b>{}</b> · rule {} · atol {} · rtol {}{}</p>",
        escape(&side(&report.candidate)),
        escape(&side(&report.reference)),
        tol.rule,
        tol.atol,
        tol.rtol,
        if tol.overrides.is_empty() {
            String::new()
        } else {
            format!(" · {} per-tensor overrides", tol.overrides.len())
        }
    );
    out.push_str("<dl class=\"key\">\n");
    key_tensor(out, report, "first-divergence", "first divergence", report.first_divergence.as_deref());
    key_tensor(out, report, "first-nonfinite", "first non-finite", report.first_nonfinite.as_deref());
    let (pass, total) = outputs_passing(report);
    let s = &report.summary;
    let _ = writeln!(out, "<dt>graph outputs</dt><dd id=\"outputs-passing\">{pass}/{total} pass</dd>");
    let _ = writeln!(
        out,
        "<dt>tensors</dt><dd>{} compared: {} pass, {} fail, {} skipped ({} integer/bool compared exactly) · FP16: {} overflow, {} underflow predicted</dd>",
        s.compared, s.passed, s.failed, s.skipped, s.exact, s.fp16_overflow_predicted, s.fp16_underflow_predicted
    );
    if let Some(sha) = &report.model.sha256 {
        let _ = writeln!(out, "<dt>model sha256</dt><dd class=\"mono\">{}</dd>", escape(sha));
    }
    out.push_str("</dl>\n</header>\n");
}

fn outputs_section(out: &mut String, report: &Report) {
    out.push_str("<section id=\"outputs\"><h2>Graph outputs</h2>\n<table><thead><tr><th>output</th><th>status</th><th class=\"num\">max abs error</th></tr></thead><tbody>\n");
    for o in &report.outputs {
        let status = match o.status {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skipped => "skipped",
        };
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td class=\"name\">{}</td><td>{status}</td><td class=\"num\">{}</td></tr>",
            if o.status == Status::Pass { "" } else { "fail" },
            escape(&o.name),
            escape(
                &report.tensor(&o.name).and_then(|t| t.metrics.as_ref()).map_or_else(|| num(o.max_abs), max_abs_cell)
            )
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn plots_section(out: &mut String, plots: &[super::plots::Plot]) {
    out.push_str("<section id=\"plots\"><h2>Plots</h2>\n<div class=\"figures\">\n");
    for p in plots {
        let svg = String::from_utf8_lossy(&p.bytes);
        // Drop an XML declaration if a backend ever writes one: it is not allowed inside HTML.
        let svg = svg
            .trim_start()
            .strip_prefix("<?xml")
            .map_or(svg.trim_start(), |rest| rest.find("?>").map_or(rest, |end| rest[end + 2..].trim_start()));
        let wide = p.stem == "error" || p.stem == "overflow" || p.stem == "search";
        let _ = writeln!(
            out,
            "<figure id=\"plot-{}\"{}><figcaption>{}</figcaption>\n{svg}\n</figure>",
            escape(&p.stem),
            if wide { " class=\"wide\"" } else { "" },
            escape(&p.title)
        );
    }
    out.push_str("</div></section>\n");
}

fn layers_section(out: &mut String, report: &Report) {
    let n = report.tensors.len();
    let mut ops: Vec<&str> = report.tensors.iter().filter_map(|t| t.op_type.as_deref()).collect();
    ops.sort_unstable();
    ops.dedup();
    out.push_str("<section id=\"layers-section\"><h2>Tensors</h2>\n<div class=\"controls\">");
    out.push_str("<input id=\"filter\" type=\"search\" placeholder=\"filter: tensor, op or node name\">");
    out.push_str("<label><input type=\"checkbox\" id=\"only-failing\"> failing or skipped only</label>");
    out.push_str("<label><input type=\"checkbox\" id=\"only-flagged\"> flagged only</label>");
    out.push_str("<select id=\"op-filter\"><option value=\"\">every op</option>");
    for op in ops {
        let _ = write!(out, "<option>{}</option>", escape(op));
    }
    let _ = writeln!(out, "</select><span id=\"row-count\" data-shown=\"{n}\">{n} of {n} rows</span></div>");
    out.push_str("<div class=\"scroll\"><table id=\"layers\"><thead><tr>");
    let cols: [(&str, &str, bool); 14] = [
        ("#", "position in topological order", false),
        ("tensor", "exact ONNX tensor name (hover: producing node)", false),
        ("op", "op type of the producing node", false),
        ("shape", "reference shape", false),
        ("dtype", "reference → candidate element type", false),
        ("precision", "what the candidate stored: FP16 or FP32", false),
        (
            "max abs",
            "largest |candidate − reference| over finite pairs; nan/inf when the candidate went non-finite",
            true,
        ),
        ("mean abs", "mean |candidate − reference|", true),
        ("mism %", "elements outside the tolerance rule, percent", true),
        ("cosine", "cosine similarity", false),
        ("max |ref|", "largest reference magnitude (above 65504 overflows FP16)", true),
        ("status", "pass, fail or skipped", false),
        ("atol / rtol", "tolerances used for this tensor", false),
        (
            "flags",
            "OVF: reference above 65504 · UNF: below 5.96e-8 · SUB: FP16 subnormal · NaN/INF in the candidate · FIRST: first divergence · 1ST-NF: first non-finite · SKIP",
            false,
        ),
    ];
    for (i, (name, title, desc)) in cols.iter().enumerate() {
        let numeric = matches!(i, 0 | 6 | 7 | 8 | 9 | 10);
        let _ = write!(
            out,
            "<th{}{} title=\"{}\">{}</th>",
            if numeric { " class=\"num\"" } else { "" },
            if *desc { " data-desc" } else { "" },
            escape(title),
            escape(name)
        );
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for t in &report.tensors {
        tensor_row(out, t);
    }
    out.push_str("</tbody></table></div>\n<p class=\"sub\">Click a header to sort. The address can hold a view: <code>#failing</code>, <code>#flagged</code>, <code>#op=MatMul</code>, <code>#q=text</code>, <code>#sort=6-desc</code> (column number from 0), joined with <code>&amp;</code>.</p></section>\n");
}

fn plan_section(out: &mut String, report: &Report, plan: Option<&crate::precision::Plan>) {
    out.push_str("<section id=\"plan\"><h2>Precision plan</h2>\n");
    let plan = plan.or(report.candidate.plan.as_ref());
    let fp16 = report.tensors.iter().filter(|t| matches!(precision_of(t), "FP16" | "BF16")).count();
    let fp32 = report.tensors.iter().filter(|t| precision_of(t) == "FP32").count();
    let _ = writeln!(
        out,
        "<p>The candidate stored {fp16} tensors in FP16/BF16 and {fp32} in FP32 (the <em>precision</em> column).</p>"
    );
    match plan {
        Some(p) => {
            let _ = writeln!(
                out,
                "<p>default <b>{}</b> · out-of-range values: <b>{}</b> · {} override(s)</p>",
                p.default,
                p.out_of_range,
                p.overrides.len()
            );
            if !p.overrides.is_empty() {
                out.push_str("<table><thead><tr><th>#</th><th>selects</th><th>precision</th><th>reason</th><th>note</th></tr></thead><tbody>\n");
                for (i, o) in p.overrides.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "<tr><td class=\"num\">{}</td><td class=\"name\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        i + 1,
                        escape(&o.selector.to_string()),
                        o.precision,
                        o.reason.name(),
                        escape(o.note.as_deref().unwrap_or(""))
                    );
                }
                out.push_str("</tbody></table>\n");
            }
            let _ = writeln!(
                out,
                "<details><summary>as a plan file (trtlens convert --plan, docs/precision.md)</summary><pre>{}</pre></details>",
                escape(&p.to_toml())
            );
        }
        None => match &report.candidate.precision_plan {
            Some(label) => {
                let _ =
                    writeln!(out, "<p>plan: <b>{}</b> (the report does not hold the whole plan)</p>", escape(label));
            }
            None => out.push_str("<p>The candidate took no precision plan.</p>\n"),
        },
    }
    out.push_str("</section>\n");
}

fn extra_section(out: &mut String, s: &super::html::Section) {
    let _ = writeln!(out, "<section id=\"{}\"><h2>{}</h2>", escape(&s.id), escape(&s.title));
    for p in &s.paragraphs {
        let _ = writeln!(out, "<p>{}</p>", escape(p));
    }
    if !s.header.is_empty() {
        out.push_str("<table><thead><tr>");
        for h in &s.header {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr></thead><tbody>\n");
        for r in &s.rows {
            out.push_str("<tr>");
            for c in r {
                let _ = write!(out, "<td>{}</td>", escape(c));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</section>\n");
}

fn list(out: &mut String, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "<h3>{}</h3><ul>", escape(title));
    for i in items {
        let _ = writeln!(out, "<li>{}</li>", escape(i));
    }
    out.push_str("</ul>\n");
}

fn details_section(out: &mut String, report: &Report) {
    out.push_str("<section id=\"details\"><h2>Details</h2>\n");
    list(out, "Notes", &report.notes);
    let spec: Vec<String> = report.specialized.iter().map(ToString::to_string).collect();
    list(out, "Control flow specialized for the inputs", &spec);
    list(out, "Only in the reference (never paired by guesswork)", &report.unmatched.reference);
    list(out, "Only in the candidate", &report.unmatched.candidate);
    let i = &report.inputs;
    let mut inputs = vec![format!("{} inputs, {} iteration(s)", i.kind, i.iterations)];
    if let Some(p) = &i.path {
        inputs.push(format!("file {p}"));
    }
    if let Some(seed) = i.seed {
        inputs.push(format!("seed {seed}"));
    }
    for (name, shape) in &i.shapes {
        inputs.push(format!("{name}: {}", crate::tensor::shape_string(shape)));
    }
    list(out, "Inputs", &inputs);
    let sides: Vec<String> = [("reference", &report.reference), ("candidate", &report.candidate)]
        .iter()
        .map(|(w, s)| {
            format!(
                "{w}: {} ({} {}), read from {}",
                s.spec,
                s.runner,
                s.version,
                s.path.as_deref().unwrap_or("a temporary run")
            )
        })
        .collect();
    list(out, "Sides", &sides);
    out.push_str("</section>\n");
}

/// The whole page. `pairs` get their histogram and scatter embedded next to the whole-model charts.
pub fn page(report: &Report, pairs: &[TensorPair], extras: &Extras<'_>) -> Result<String> {
    let plots = super::plots::all(report, pairs, extras.search, super::PlotFormat::Svg)?;
    let mut out = String::with_capacity(64 * 1024 + report.tensors.len() * 600);
    let word = verdict_word(report);
    let model = report.model.path.as_deref().map_or("", |p| p.rsplit('/').next().unwrap_or(p));
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        out,
        "<meta name=\"generator\" content=\"{} {}\">",
        escape(&report.tool.name),
        escape(&report.tool.version)
    );
    let _ = writeln!(out, "<title>trtlens {word}: {}</title>", escape(model));
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");
    header(&mut out, report);
    outputs_section(&mut out, report);
    plots_section(&mut out, &plots);
    layers_section(&mut out, report);
    plan_section(&mut out, report, extras.plan);
    for s in &extras.sections {
        extra_section(&mut out, s);
    }
    details_section(&mut out, report);
    // Compact: the page is often attached to a CI run; `report.json` is the pretty one.
    let json = serde_json::to_string(report)
        .map_err(|e| crate::error::Error::usage(format!("cannot serialize the report: {e}")))?;
    // `</script` and `<!--` may not appear inside a script element: `\u003c` is the same JSON string.
    let _ =
        writeln!(out, "<script type=\"application/json\" id=\"report-json\">{}</script>", json.replace('<', "\\u003c"));
    let _ = writeln!(
        out,
        "<footer>written by {} {} from a {} report · the JSON report is embedded in this file (id report-json)</footer>",
        escape(&report.tool.name),
        escape(&report.tool.version),
        escape(&report.schema)
    );
    let _ = writeln!(out, "<script>{SCRIPT}</script>\n</body>\n</html>");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
        assert_eq!(sort_key(f64::NAN), "NaN");
        assert_eq!(sort_key(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(sort_key(1.5), "1.5e0");
    }
}
