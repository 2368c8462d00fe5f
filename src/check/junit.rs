//! `JUnit` XML for CI test reporters (GitLab, Jenkins, GitHub actions that read `JUnit`): one
//! `<testsuite>` per check (model), one `<testcase>` per graph output and per regressed layer
//! (a `<failure>` whose message names the tensor, the op, before and after), one passing
//! `layers` test case when no layer regressed, and one `<error>` test case when the check could
//! not run. The usual conventions of the Ant/Jenkins `JUnit` schema: `testsuites` > `testsuite`
//! (`name`, `tests`, `failures`, `errors`, `skipped`, `time`) > `properties`, `testcase`
//! (`name`, `classname`, `time`) > `failure`/`error` (`message`, `type`, text).

use std::fmt::Write as _;

use super::result::{CheckResult, CheckRun, LayerChange};
use crate::compare::report::Status;

/// Escape text for XML 1.0 (attribute values and character data alike): the five special
/// characters, line breaks in attributes as character references, and characters XML 1.0 cannot
/// hold (control characters, lone surrogates cannot occur in a `str`) as U+FFFD.
#[must_use]
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

struct Case {
    name: String,
    classname: String,
    /// (element, message, type, body)
    outcome: Option<(&'static str, String, String, String)>,
}

fn cases(c: &CheckResult) -> Vec<Case> {
    let class = |what: &str| format!("trtlens.check.{}.{what}", c.name);
    let mut out = Vec::new();
    if let Some(e) = &c.error {
        out.push(Case {
            name: "check".into(),
            classname: class("check"),
            outcome: Some((
                "error",
                e.message.clone(),
                e.kind.name().to_string(),
                format!("{}{}", e.message, e.details.as_ref().map_or(String::new(), |d| format!("\n\n{d}"))),
            )),
        });
        return out;
    }
    for o in &c.outputs {
        let outcome = o.failed.then(|| {
            let message = format!(
                "graph output {} is {} (max abs {}, atol {}, rtol {}; baseline: {})",
                o.name,
                match o.status {
                    Status::Pass => "within tolerance",
                    Status::Fail => "out of tolerance",
                    Status::Skipped => "not compared",
                },
                super::num(o.max_abs),
                o.atol.map_or_else(|| "?".into(), super::num),
                o.rtol.map_or_else(|| "?".into(), super::num),
                match (o.baseline_status, o.baseline_max_abs) {
                    (Some(s), Some(m)) => format!("{} with max abs {}", status_name(s), super::num(m)),
                    (Some(s), None) => status_name(s).to_string(),
                    _ => "not in the baseline".into(),
                }
            );
            ("failure", message.clone(), "output_tolerance".to_string(), message)
        });
        out.push(Case { name: format!("output {}", o.name), classname: class("outputs"), outcome });
    }
    for r in &c.regressions {
        out.push(Case { name: layer_name(r), classname: class("layers"), outcome: Some(layer_failure(c, r)) });
    }
    if c.regressions.is_empty() {
        out.push(Case {
            name: format!("layers: no regression ({} tensors checked)", c.tensors.checked),
            classname: class("layers"),
            outcome: None,
        });
    }
    out
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Skipped => "skipped",
    }
}

fn layer_name(r: &LayerChange) -> String {
    if r.tensor.is_some() { format!("layer {}", r.title()) } else { r.title() }
}

fn layer_failure(c: &CheckResult, r: &LayerChange) -> (&'static str, String, String, String) {
    let message = r.message();
    let kind = r.reasons.iter().map(|x| x.rule.as_str()).collect::<Vec<_>>().join(",");
    let mut body = String::new();
    for x in &r.reasons {
        let _ = writeln!(body, "{}", x.message);
    }
    let _ = write!(
        body,
        "\ntensor: {}\nnode: {}\nop: {}\nbaseline: {}\ncandidate: {}",
        r.tensor.as_deref().unwrap_or("-"),
        r.node.as_deref().unwrap_or("-"),
        r.op_type.as_deref().unwrap_or("-"),
        c.baseline,
        c.candidate.as_deref().unwrap_or("-")
    );
    ("failure", message, kind, body)
}

fn suite(out: &mut String, c: &CheckResult) {
    let cases = cases(c);
    let failures = cases.iter().filter(|k| matches!(&k.outcome, Some(("failure", ..)))).count();
    let errors = cases.iter().filter(|k| matches!(&k.outcome, Some(("error", ..)))).count();
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{:.3}\">",
        escape(&c.name),
        cases.len(),
        c.seconds
    );
    let props: Vec<(&str, String)> = [
        ("model", c.model.clone()),
        ("baseline", Some(c.baseline.clone())),
        ("policy", c.policy.clone()),
        ("reference", c.reference.clone()),
        ("candidate", c.candidate.clone()),
        ("status", Some(c.status.name().to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    out.push_str("    <properties>\n");
    for (k, v) in props {
        let _ = writeln!(out, "      <property name=\"{k}\" value=\"{}\"/>", escape(&v));
    }
    out.push_str("    </properties>\n");
    for k in &cases {
        let head =
            format!("    <testcase name=\"{}\" classname=\"{}\" time=\"0\"", escape(&k.name), escape(&k.classname));
        match &k.outcome {
            None => {
                let _ = writeln!(out, "{head}/>");
            }
            Some((element, message, kind, body)) => {
                let _ = writeln!(out, "{head}>");
                let _ = writeln!(
                    out,
                    "      <{element} message=\"{}\" type=\"{}\">{}</{element}>",
                    escape(message),
                    escape(kind),
                    escape_text(body)
                );
                out.push_str("    </testcase>\n");
            }
        }
    }
    if !c.notes.is_empty() {
        let _ = writeln!(out, "    <system-out>{}</system-out>", escape_text(&c.notes.join("\n")));
    }
    out.push_str("  </testsuite>\n");
}

/// Character data keeps its line breaks (they are significant there, unlike in attributes).
fn escape_text(s: &str) -> String {
    s.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

/// The `JUnit` XML document of a run.
#[must_use]
pub fn render(run: &CheckRun) -> String {
    let all: Vec<Vec<Case>> = run.checks.iter().map(cases).collect();
    let tests: usize = all.iter().map(Vec::len).sum();
    let failures = all.iter().flatten().filter(|k| matches!(&k.outcome, Some(("failure", ..)))).count();
    let errors = all.iter().flatten().filter(|k| matches!(&k.outcome, Some(("error", ..)))).count();
    let time: f64 = run.checks.iter().map(|c| c.seconds).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"trtlens check\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">"
    );
    for c in &run.checks {
        suite(&mut out, c);
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_xml_cannot_hold() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("x\ny\u{1}z"), "x&#10;y\u{FFFD}z");
        assert_eq!(escape_text("x\ny"), "x\ny");
    }

    #[test]
    fn any_name_survives_a_real_xml_parser() -> Result<(), Box<dyn std::error::Error>> {
        use super::super::result::{CheckResult, CheckStatus, Reason};
        let weird = "a<b>&\"c'\u{1}]]> \u{1F600}/Op:0";
        let mut c = CheckResult::failed(weird, Some("m.onnx".into()), "b.json".into(), None, &crate::Error::usage("x"));
        c.status = CheckStatus::Fail;
        c.error = None;
        c.regressions.push(LayerChange {
            tensor: Some(weird.into()),
            node: Some("n".into()),
            op_type: Some("Op".into()),
            topo_index: Some(0),
            is_output: false,
            reasons: vec![Reason {
                rule: "metric".into(),
                metric: Some("max_abs".into()),
                before: Some(0.0),
                after: Some(1.0),
                limit: Some(0.001),
                message: format!("{weird} line\nnext"),
            }],
        });
        let e = CheckResult::failed("err", None, "b.json".into(), None, &crate::Error::usage("bad <x> & \"y\"\tz"));
        let xml = render(&CheckRun::new(None, vec![c, e]));
        let doc = roxmltree::Document::parse(&xml)?;
        let cleaned = weird.replace('\u{1}', "\u{FFFD}");
        let suites: Vec<_> = doc.root_element().children().filter(roxmltree::Node::is_element).collect();
        assert_eq!(suites[0].attribute("name"), Some(cleaned.as_str()));
        let case = suites[0].descendants().find(|n| n.has_tag_name("failure")).ok_or("failure")?;
        assert_eq!(
            case.attribute("message"),
            Some(format!("{cleaned} (Op): {cleaned} line\nnext").as_str()),
            "line breaks in attributes survive attribute normalisation"
        );
        assert!(case.text().is_some_and(|t| t.starts_with(&format!("{cleaned} line\nnext\n"))));
        let err = suites[1].descendants().find(|n| n.has_tag_name("error")).ok_or("error")?;
        assert_eq!(err.attribute("message"), Some("bad <x> & \"y\"\tz"));
        assert_eq!(err.attribute("type"), Some("usage"));
        Ok(())
    }
}
