//! `trtlens check` end to end: an identical rerun passes; a plan that returns an overflowing layer's
//! FP32 island to FP16 fails naming that layer (exit 1); a change within the slack passes; corrupt,
//! foreign, other-model and mismatched baselines and runner failures exit 2 with one clear line;
//! `--update-baseline` writes only after a passing check (or with `--force`); `JUnit` XML parsed back
//! with a real XML parser matches the `JUnit` schema's structure; markdown and GitHub annotations;
//! `--json` results validate against `docs/check-schema.json`; a `trtlens.toml` with two models
//! runs with `-j 2` in worker processes and exits with the worst code; the repository's own
//! `trtlens.toml` covers every sample with its fix and its committed baseline passes.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn trtlens() -> Command {
    Command::cargo_bin("trtlens").expect("binary")
}

/// `--keep-fp32 NODE` for every node of a sample's documented FP32 fix.
fn fix_flags(sample: &str) -> Vec<String> {
    let s = trtlens::samples::find(sample).expect("sample");
    s.fix.iter().flat_map(|n| ["--keep-fp32".to_string(), (*n).to_string()]).collect()
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn check(args: &[&str], extra: &[String]) -> Result<Out, Box<dyn std::error::Error>> {
    let out = trtlens().arg("check").args(args).args(extra).env_remove("GITHUB_ACTIONS").output()?;
    Ok(Out { code: out.status.code(), stdout: String::from_utf8(out.stdout)?, stderr: String::from_utf8(out.stderr)? })
}

fn schema(file: &str) -> Result<jsonschema::Validator, Box<dyn std::error::Error>> {
    let schema: Value = serde_json::from_slice(&std::fs::read(root().join("docs").join(file))?)?;
    Ok(jsonschema::validator_for(&schema)?)
}

/// The `--json` result, validated against docs/check-schema.json.
fn result_json(out: &Out) -> Result<Value, Box<dyn std::error::Error>> {
    let v: Value = serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {}", out.stdout))?;
    let validator = schema("check-schema.json")?;
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "check result does not match docs/check-schema.json: {errors:#?}");
    Ok(v)
}

fn valid_report(path: &Path) -> TestResult {
    let v: Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let errors: Vec<String> = schema("report-schema.json")?.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    Ok(())
}

fn error_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("error:")).collect()
}

// ---------------------------------------------------------------------------------------------
// JUnit, parsed back
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Case {
    name: String,
    classname: String,
    /// (element, message, type, text)
    outcome: Option<(String, String, String, String)>,
}

#[derive(Debug)]
struct Suite {
    name: String,
    properties: Vec<(String, String)>,
    cases: Vec<Case>,
}

fn int_attr(n: roxmltree::Node<'_, '_>, name: &str) -> Result<usize, String> {
    n.attribute(name)
        .ok_or_else(|| format!("<{}> lacks {name}", n.tag_name().name()))?
        .parse()
        .map_err(|e| format!("<{}> {name}: {e}", n.tag_name().name()))
}

fn time_attr(n: roxmltree::Node<'_, '_>) -> Result<(), String> {
    match n.attribute("time") {
        None => Ok(()),
        Some(t) => t.parse::<f64>().map(|_| ()).map_err(|e| format!("time '{t}': {e}")),
    }
}

/// Parse a `JUnit` XML document and check it against the structure of the `JUnit` schema (the
/// Ant/Jenkins XSD that GitLab, Jenkins and the GitHub reporters read): `testsuites` holds only
/// `testsuite`s; a `testsuite` has `name`, `tests`, `failures`, `errors` (and optional `skipped`,
/// `time`) whose counts match its `testcase`s, and holds only `properties`, `testcase`,
/// `system-out`, `system-err`; a `testcase` has `name` and `classname`, at most one `failure` or
/// `error`, each with a `message` and a `type`; the root's counts are the sums.
fn junit(xml: &str) -> Result<Vec<Suite>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "testsuites" {
        return Err(format!("root is <{}>", root.tag_name().name()));
    }
    let mut suites = Vec::new();
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    for s in root.children().filter(roxmltree::Node::is_element) {
        if s.tag_name().name() != "testsuite" {
            return Err(format!("<testsuites> holds <{}>", s.tag_name().name()));
        }
        let name = s.attribute("name").ok_or("testsuite without name")?.to_string();
        time_attr(s)?;
        let mut suite = Suite { name, properties: vec![], cases: vec![] };
        for c in s.children().filter(roxmltree::Node::is_element) {
            match c.tag_name().name() {
                "properties" => {
                    for p in c.children().filter(roxmltree::Node::is_element) {
                        if p.tag_name().name() != "property" {
                            return Err(format!("<properties> holds <{}>", p.tag_name().name()));
                        }
                        let (Some(k), Some(v)) = (p.attribute("name"), p.attribute("value")) else {
                            return Err("property without name or value".into());
                        };
                        suite.properties.push((k.into(), v.into()));
                    }
                }
                "testcase" => {
                    time_attr(c)?;
                    let outcomes: Vec<_> = c
                        .children()
                        .filter(roxmltree::Node::is_element)
                        .filter(|o| matches!(o.tag_name().name(), "failure" | "error" | "skipped"))
                        .collect();
                    if outcomes.len() > 1 {
                        return Err("a testcase with more than one failure/error".into());
                    }
                    for o in c.children().filter(roxmltree::Node::is_element) {
                        if !matches!(o.tag_name().name(), "failure" | "error" | "skipped" | "system-out" | "system-err")
                        {
                            return Err(format!("<testcase> holds <{}>", o.tag_name().name()));
                        }
                    }
                    let outcome = match outcomes.first() {
                        Some(o) => Some((
                            o.tag_name().name().to_string(),
                            o.attribute("message").ok_or("failure without message")?.to_string(),
                            o.attribute("type").ok_or("failure without type")?.to_string(),
                            o.text().unwrap_or("").to_string(),
                        )),
                        None => None,
                    };
                    suite.cases.push(Case {
                        name: c.attribute("name").ok_or("testcase without name")?.to_string(),
                        classname: c.attribute("classname").ok_or("testcase without classname")?.to_string(),
                        outcome,
                    });
                }
                "system-out" | "system-err" => {}
                other => return Err(format!("<testsuite> holds <{other}>")),
            }
        }
        let count = |what: &str| suite.cases.iter().filter(|c| c.outcome.as_ref().is_some_and(|o| o.0 == what)).count();
        if int_attr(s, "tests")? != suite.cases.len()
            || int_attr(s, "failures")? != count("failure")
            || int_attr(s, "errors")? != count("error")
        {
            return Err(format!("suite {} counts do not match its test cases", suite.name));
        }
        tests += suite.cases.len();
        failures += count("failure");
        errors += count("error");
        suites.push(suite);
    }
    if int_attr(root, "tests")? != tests
        || int_attr(root, "failures")? != failures
        || int_attr(root, "errors")? != errors
    {
        return Err("testsuites counts are not the sums of the suites".into());
    }
    Ok(suites)
}

// ---------------------------------------------------------------------------------------------
// One model
// ---------------------------------------------------------------------------------------------

/// A baseline of `mlp_overflow` with its FP32 island (`Sample::fix`) in `dir`.
fn mlp_baseline(dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let baseline = dir.join("baselines").join("mlp.json");
    let model = common::sample("mlp_overflow");
    let out = check(
        &[model.to_str().ok_or("path")?, "--baseline", baseline.to_str().ok_or("path")?, "--update-baseline"],
        &fix_flags("mlp_overflow"),
    )?;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("baseline written"), "{}", out.stdout);
    valid_report(&baseline)?;
    Ok(baseline)
}

#[test]
fn identical_rerun_passes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let baseline = mlp_baseline(dir.path())?;
    let before = std::fs::read(&baseline)?;
    let model = common::sample("mlp_overflow");
    let junit_path = dir.path().join("junit.xml");
    let out = check(
        &[
            model.to_str().ok_or("path")?,
            "--baseline",
            baseline.to_str().ok_or("path")?,
            "--json",
            "--junit",
            junit_path.to_str().ok_or("path")?,
        ],
        &fix_flags("mlp_overflow"),
    )?;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let v = result_json(&out)?;
    assert_eq!(v["status"], "pass");
    let c = &v["checks"][0];
    assert_eq!(c["name"], "mlp_overflow");
    assert_eq!(c["regressions"], serde_json::json!([]));
    assert_eq!(c["improvements"], serde_json::json!([]));
    assert_eq!(c["tensors"]["checked"], 5);
    assert_eq!(c["first_divergence"]["change"], "none");
    assert_eq!(c["baseline_updated"], false);
    assert_eq!(std::fs::read(&baseline)?, before, "a check without --update-baseline never writes the baseline");
    let suites = junit(&std::fs::read_to_string(&junit_path)?)?;
    assert_eq!(suites.len(), 1);
    assert_eq!(suites[0].name, "mlp_overflow");
    let names: Vec<&str> = suites[0].cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["output logits", "layers: no regression (5 tensors checked)"]);
    assert!(suites[0].cases.iter().all(|c| c.outcome.is_none()));
    // The text: a short verdict.
    let out = check(
        &[model.to_str().ok_or("path")?, "--baseline", baseline.to_str().ok_or("path")?, "-q"],
        &fix_flags("mlp_overflow"),
    )?;
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "verdict: PASS\n"));
    Ok(())
}

#[test]
fn returning_the_fp32_island_to_fp16_is_a_regression_naming_the_layer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let baseline = mlp_baseline(dir.path())?;
    let model = common::sample("mlp_overflow");
    let junit_path = dir.path().join("junit.xml");
    // The whole island back to FP16 (no plan flag: all FP16).
    let out = check(
        &[
            model.to_str().ok_or("path")?,
            "--baseline",
            baseline.to_str().ok_or("path")?,
            "--json",
            "--junit",
            junit_path.to_str().ok_or("path")?,
        ],
        &[],
    )?;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(error_lines(&out.stderr).is_empty(), "a regression is a verdict, not an error: {}", out.stderr);
    let v = result_json(&out)?;
    let c = &v["checks"][0];
    assert_eq!(c["status"], "fail");
    let first = &c["regressions"][0];
    assert_eq!(first["tensor"], "mlp/fc1/matmul_out", "the overflowing layer comes first: {first:#}");
    assert_eq!(first["node"], "mlp/fc1/MatMul");
    assert_eq!(first["op_type"], "MatMul");
    let rules: Vec<&str> =
        first["reasons"].as_array().ok_or("reasons")?.iter().filter_map(|r| r["rule"].as_str()).collect();
    for rule in ["first_divergence_earlier", "metric", "new_overflow_observed"] {
        assert!(rules.contains(&rule), "{rule} in {rules:?}");
    }
    let metric =
        first["reasons"].as_array().ok_or("reasons")?.iter().find(|r| r["rule"] == "metric").ok_or("metric")?;
    assert_eq!((&metric["before"], &metric["after"]), (&serde_json::json!(0.0), &serde_json::json!("inf")));
    assert_eq!(
        c["first_divergence"],
        serde_json::json!({"before": null, "after": "mlp/fc1/matmul_out", "change": "appeared"})
    );
    assert_eq!(c["outputs"][0]["failed"], true);
    // JUnit: one failing test case per regressed layer, its message naming tensor, op, before and after.
    let suites = junit(&std::fs::read_to_string(&junit_path)?)?;
    let layer = suites[0]
        .cases
        .iter()
        .find(|k| k.name == "layer mlp/fc1/matmul_out (MatMul)")
        .ok_or("no test case for the layer")?;
    assert_eq!(layer.classname, "trtlens.check.mlp_overflow.layers");
    let (element, message, kind, text) = layer.outcome.clone().ok_or("the layer's test case passes")?;
    assert_eq!(element, "failure");
    assert!(message.starts_with("mlp/fc1/matmul_out (MatMul): "), "{message}");
    assert!(message.contains("max_abs 0 -> inf"), "{message}");
    assert!(kind.contains("new_overflow_observed"), "{kind}");
    assert!(text.contains("node: mlp/fc1/MatMul"), "{text}");
    let output = suites[0].cases.iter().find(|k| k.name == "output logits").ok_or("output case")?;
    assert!(output.outcome.as_ref().is_some_and(|o| o.1.contains("out of tolerance")));
    assert_eq!(
        suites[0].cases.len(),
        1 + c["regressions"].as_array().map_or(0, Vec::len),
        "one case per graph output and per regressed layer"
    );
    // Part of the island back: the overflow moves to the first FP16 reader, and that is the layer named.
    let out = check(
        &[
            model.to_str().ok_or("path")?,
            "--baseline",
            baseline.to_str().ok_or("path")?,
            "--keep-fp32",
            "mlp/fc1/MatMul",
        ],
        &[],
    )?;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let first_line = out.stdout.lines().find(|l| l.starts_with("    ")).ok_or("no regression listed")?;
    assert!(first_line.trim_start().starts_with("mlp/fc1/preact (Add): "), "{}", out.stdout);
    assert!(out.stdout.contains("first divergence: none -> mlp/fc1/preact (appeared)"), "{}", out.stdout);
    assert!(out.stdout.ends_with("verdict: FAIL\n"), "{}", out.stdout);
    Ok(())
}

#[test]
fn a_change_within_the_slack_passes() -> TestResult {
    // cnn_bn_relu with its BatchNormalizations kept FP32, then all FP16: every error grows a little
    // (bn_out 1.3e-3 -> 3.2e-3), within 2 x baseline + 1e-3.
    let dir = tempfile::tempdir()?;
    let model = common::sample("cnn_bn_relu");
    let m = model.to_str().ok_or("path")?;
    let baseline = dir.path().join("cnn.json");
    let b = baseline.to_str().ok_or("path")?;
    let out = check(&[m, "--baseline", b, "--keep-fp32-op", "BatchNormalization", "--update-baseline", "-q"], &[])?;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let out = check(&[m, "--baseline", b, "--json"], &[])?;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let v = result_json(&out)?;
    assert_eq!(v["checks"][0]["regressions"], serde_json::json!([]));
    assert!(
        v["checks"][0]["notes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n.as_str().is_some_and(|s| s.contains("candidate: the baseline ran")))),
        "the plan change is noted"
    );
    // The errors did change: with no slack and factor 1 the same run regresses.
    let policy = dir.path().join("strict.toml");
    std::fs::write(&policy, "[layers]\nfactor = 1\nslack = 0\n")?;
    let out = check(&[m, "--baseline", b, "--policy", policy.to_str().ok_or("path")?, "--json"], &[])?;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let v = result_json(&out)?;
    assert_eq!(v["checks"][0]["regressions"][0]["tensor"], "features/block1/bn_out");
    assert_eq!(v["checks"][0]["policy"], policy.to_str().ok_or("path")?);
    Ok(())
}

#[test]
fn unusable_baselines_and_failed_runs_exit_2_with_one_clear_line() -> TestResult {
    let dir = tempfile::tempdir()?;
    let baseline = mlp_baseline(dir.path())?;
    let model = common::sample("mlp_overflow");
    let m = model.to_str().ok_or("path")?;
    let good = std::fs::read_to_string(&baseline)?;
    let write = |name: &str, text: &str| -> Result<String, std::io::Error> {
        let p = dir.path().join(name);
        std::fs::write(&p, text)?;
        Ok(p.display().to_string())
    };
    let other = dir.path().join("softmax.json");
    let out = check(
        &[
            common::sample("softmax_naive").to_str().ok_or("path")?,
            "--baseline",
            other.to_str().ok_or("path")?,
            "--update-baseline",
            "-q",
        ],
        &fix_flags("softmax_naive"),
    )?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let manifest = r#"{"schema": "trtlens.run/1", "runner": {}}"#;
    let cases: Vec<(String, &str)> = vec![
        (write("corrupt.json", &good[..good.len() / 2])?, "the baseline is not valid JSON"),
        (write("foreign.json", r#"{"results": [1, 2]}"#)?, "is not a trtlens report"),
        (write("manifest.json", manifest)?, "is a 'trtlens.run/1' file, not a trtlens report"),
        (
            write("future.json", &good.replace("trtlens.report/1", "trtlens.report/2"))?,
            "is a report of schema trtlens.report/2",
        ),
        (write("damaged.json", r#"{"schema": "trtlens.report/1", "tensors": 3}"#)?, "is a damaged trtlens report"),
        (other.display().to_string(), "the baseline was made from another model (sha256"),
        (dir.path().join("missing.json").display().to_string(), "no such baseline: create it with --update-baseline"),
    ];
    for (path, says) in &cases {
        let junit_path = dir.path().join("junit.xml");
        let out =
            check(&[m, "--baseline", path, "--junit", junit_path.to_str().ok_or("path")?], &fix_flags("mlp_overflow"))?;
        assert_eq!(out.code, Some(2), "{path}: {}{}", out.stdout, out.stderr);
        let errors = error_lines(&out.stderr);
        assert_eq!(errors.len(), 1, "{path}: {}", out.stderr);
        assert!(errors[0].contains(says), "{path}: {}", errors[0]);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(out.stdout.ends_with("verdict: ERROR\n"), "{}", out.stdout);
        // The CI report shows the error too.
        let suites = junit(&std::fs::read_to_string(&junit_path)?)?;
        let case = &suites[0].cases[0];
        assert_eq!(case.name, "check");
        assert!(case.outcome.as_ref().is_some_and(|o| o.0 == "error" && o.1.contains(says)));
    }
    // The JSON result of a check that could not run.
    let out = check(&[m, "--baseline", &cases[0].0, "--json"], &fix_flags("mlp_overflow"))?;
    assert_eq!(out.code, Some(2));
    let v = result_json(&out)?;
    assert_eq!((&v["status"], &v["exit_code"]), (&"error".into(), &2.into()));
    assert_eq!(v["checks"][0]["error"]["kind"], "store");
    assert!(v["checks"][0]["error"]["message"].as_str().is_some_and(|m| m.contains(cases[0].1)));
    // The other model is compared anyway when allowed (its tensors appear and disappear).
    let out = check(
        &[m, "--baseline", other.to_str().ok_or("path")?, "--allow-model-change", "--json"],
        &fix_flags("mlp_overflow"),
    )?;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let v = result_json(&out)?;
    let notes = v["checks"][0]["notes"].to_string();
    assert!(notes.contains("another model") && notes.contains("(allowed)"), "{notes}");
    let added = v["checks"][0]["tensors"]["added"].as_array().ok_or("added")?;
    assert_eq!(added.len(), 4, "mlp_overflow's 5 tensors but `logits`, which both models have: {added:?}");
    assert_eq!(v["checks"][0]["tensors"]["checked"], 1);
    // Other inputs or other tolerances than the baseline's.
    for (extra, says) in [
        (vec!["--seed", "2"], "random inputs with seed 1 and ranges [], this check seed 2"),
        (vec!["--val-range", "0,2"], "this check seed 1 and ranges [0,2]"),
    ] {
        let mut args = vec![m, "--baseline", baseline.to_str().ok_or("path")?];
        args.extend(extra);
        let out = check(&args, &fix_flags("mlp_overflow"))?;
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        assert!(error_lines(&out.stderr)[0].contains(says), "{}", out.stderr);
    }
    let policy = dir.path().join("loose.toml");
    std::fs::write(&policy, "[outputs]\natol = 0.05\n")?;
    let out = check(
        &[m, "--baseline", baseline.to_str().ok_or("path")?, "--policy", policy.to_str().ok_or("path")?],
        &fix_flags("mlp_overflow"),
    )?;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        error_lines(&out.stderr)[0]
            .contains("used the tolerance allclose atol 0.01 rtol 0.01, this check allclose atol 0.05"),
        "{}",
        out.stderr
    );
    // A runner that fails, a bad policy, bad arguments.
    let out = check(
        &[
            m,
            "--baseline",
            baseline.to_str().ok_or("path")?,
            "--reference",
            "onnxruntime",
            "--ort-lib",
            "/nonexistent/libonnxruntime.so",
        ],
        &fix_flags("mlp_overflow"),
    )?;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(error_lines(&out.stderr).len(), 1, "{}", out.stderr);
    assert!(error_lines(&out.stderr)[0].contains("runner onnxruntime"), "{}", out.stderr);
    std::fs::write(&policy, "[layers]\nfactr = 3\n")?;
    let out =
        check(&[m, "--baseline", baseline.to_str().ok_or("path")?, "--policy", policy.to_str().ok_or("path")?], &[])?;
    assert_eq!(out.code, Some(2));
    assert!(error_lines(&out.stderr)[0].contains("unknown field `factr`"), "{}", out.stderr);
    for (args, says) in [
        (vec![m], "needs --baseline"),
        (vec![m, "--baseline", "b.json", "-j", "2"], "--config and -j"),
        (vec![m, "--baseline", "b.json", "--force"], "--update-baseline"),
        (vec![m, "--baseline", "b.json", "--candidate", "tract", "--keep-fp32", "x"], "a precision plan applies"),
    ] {
        let out = check(&args, &[])?;
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    Ok(())
}

#[test]
fn update_baseline_writes_only_after_a_passing_check_unless_forced() -> TestResult {
    let dir = tempfile::tempdir()?;
    let baseline = mlp_baseline(dir.path())?;
    let before = std::fs::read(&baseline)?;
    let model = common::sample("mlp_overflow");
    let m = model.to_str().ok_or("path")?;
    let b = baseline.to_str().ok_or("path")?;
    let out = check(&[m, "--baseline", b, "--update-baseline", "--json"], &[])?;
    assert_eq!(out.code, Some(1));
    assert_eq!(result_json(&out)?["checks"][0]["baseline_updated"], false);
    assert_eq!(std::fs::read(&baseline)?, before, "a failing check keeps the baseline");
    let out = check(&[m, "--baseline", b, "--update-baseline", "--force", "--json"], &[])?;
    assert_eq!(out.code, Some(1), "the verdict is still the comparison with the old baseline");
    assert_eq!(result_json(&out)?["checks"][0]["baseline_updated"], true);
    assert_ne!(std::fs::read(&baseline)?, before);
    valid_report(&baseline)?;
    let written: Value = serde_json::from_slice(&std::fs::read(&baseline)?)?;
    assert_eq!(written["model"]["path"], m, "the model as given");
    assert!(
        written["tensors"].as_array().ok_or("tensors")?.iter().all(|t| t["metrics"]["top_k"] == serde_json::json!([])),
        "baselines leave out the top-k lists"
    );
    // Against the forced baseline nothing regresses; the output is still out of tolerance.
    let out = check(&[m, "--baseline", b, "--json"], &[])?;
    assert_eq!(out.code, Some(1));
    let v = result_json(&out)?;
    assert_eq!(v["checks"][0]["regressions"], serde_json::json!([]));
    assert_eq!(v["checks"][0]["outputs"][0]["failed"], true);
    // The fix again: everything improved, which passes and suggests recording it.
    let out = check(&[m, "--baseline", b], &fix_flags("mlp_overflow"))?;
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert!(out.stdout.contains("improved: 5 layer(s)"), "{}", out.stdout);
    assert!(out.stdout.contains("run with --update-baseline to record them"), "{}", out.stdout);
    // --force replaces a corrupt baseline.
    std::fs::write(&baseline, "{")?;
    let out = check(&[m, "--baseline", b, "--update-baseline", "--force"], &fix_flags("mlp_overflow"))?;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    valid_report(&baseline)?;
    Ok(())
}

#[test]
fn markdown_summary_and_github_annotations() -> TestResult {
    let dir = tempfile::tempdir()?;
    let baseline = mlp_baseline(dir.path())?;
    let model = common::sample("mlp_overflow");
    let md = dir.path().join("summary.md");
    let out = trtlens()
        .args(["check", model.to_str().ok_or("path")?, "--baseline", baseline.to_str().ok_or("path")?])
        .arg("--markdown")
        .arg(&md)
        .env("GITHUB_ACTIONS", "true")
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout)?;
    let model_prop = model.display().to_string().replace(':', "%3A").replace(',', "%2C");
    assert!(
        stdout.contains(&format!(
            "::error file={model_prop},title=trtlens check mlp_overflow%3A mlp/fc1/matmul_out regressed::mlp/fc1/matmul_out (MatMul): "
        )),
        "{stdout}"
    );
    assert!(stdout.contains("title=trtlens check mlp_overflow%3A output logits out of tolerance::"), "{stdout}");
    let text = std::fs::read_to_string(&md)?;
    for says in [
        "## trtlens check: ❌ fail",
        "| mlp_overflow | ❌ fail | 0/1 | 5 | none → `mlp/fc1/matmul_out` (appeared) |",
        "**Worst regressions** (5 layer(s))",
        "| tensor | op | rule | baseline | now | limit |",
        "| `mlp/fc1/matmul_out` | MatMul | max_abs | 0 | inf | 0.001 |",
        "First divergence: none → `mlp/fc1/matmul_out` (appeared)",
        "| `logits` | inf | 7.",
    ] {
        assert!(text.contains(says), "{says}\n{text}");
    }
    // With --json, stdout stays one JSON document and the annotations go to stderr.
    let out = trtlens()
        .args(["check", model.to_str().ok_or("path")?, "--baseline", baseline.to_str().ok_or("path")?, "--json"])
        .env("GITHUB_ACTIONS", "true")
        .output()?;
    let parsed: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(parsed["exit_code"], 1);
    assert!(String::from_utf8(out.stderr)?.contains("::error file="));
    // Not on GitHub: no workflow commands.
    let out = check(&[model.to_str().ok_or("path")?, "--baseline", baseline.to_str().ok_or("path")?], &[])?;
    assert!(!out.stdout.contains("::error"));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Many models
// ---------------------------------------------------------------------------------------------

fn write_config(dir: &Path, mlp_fixed: bool) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let fix = trtlens::samples::find("mlp_overflow").ok_or("sample")?.fix;
    let keep = if mlp_fixed {
        format!("keep_fp32 = [{}]\n", fix.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", "))
    } else {
        String::new()
    };
    let text = format!(
        "[defaults]\ncandidate = \"cpu-fp16\"\n\n\
         [[check]]\nname = \"cnn\"\nmodel = \"{}\"\nbaseline = \"baselines/cnn.json\"\n\n\
         [[check]]\nmodel = \"{}\"\nbaseline = \"baselines/mlp.json\"\n{keep}",
        common::sample("cnn_bn_relu").display(),
        common::sample("mlp_overflow").display(),
    );
    let path = dir.join("trtlens.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

#[test]
fn a_config_runs_every_model_in_parallel_and_exits_with_the_worst_code() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), true)?;
    let run = |args: &[&str], cwd: &Path| -> Result<Out, Box<dyn std::error::Error>> {
        let out = trtlens().arg("check").args(args).current_dir(cwd).env_remove("GITHUB_ACTIONS").output()?;
        Ok(Out {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout)?,
            stderr: String::from_utf8(out.stderr)?,
        })
    };
    // Create both baselines (paths relative to the config file, whatever the current directory).
    let elsewhere = tempfile::tempdir()?;
    let out = run(&["--config", config.to_str().ok_or("path")?, "--update-baseline", "-j", "2"], elsewhere.path())?;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.ends_with("verdict: PASS (2 checks: 2 pass, 0 fail, 0 error)\n"), "{}", out.stdout);
    valid_report(&dir.path().join("baselines/cnn.json"))?;
    valid_report(&dir.path().join("baselines/mlp.json"))?;

    // The mlp's plan loses its FP32 island: found from the current directory, -j 2, exit 1.
    write_config(dir.path(), false)?;
    let junit_path = dir.path().join("junit.xml");
    let out = run(&["-j", "2", "--json", "--junit", "junit.xml"], dir.path())?;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let v = result_json(&out)?;
    assert_eq!(v["exit_code"], 1);
    assert!(v["config"].as_str().is_some_and(|c| c.ends_with("trtlens.toml")));
    let names: Vec<&str> = v["checks"].as_array().ok_or("checks")?.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["cnn", "mlp_overflow"], "the file's order, whatever finished first");
    assert_eq!((&v["checks"][0]["status"], &v["checks"][1]["status"]), (&"pass".into(), &"fail".into()));
    assert_eq!(v["checks"][1]["regressions"][0]["tensor"], "mlp/fc1/matmul_out");
    assert_eq!(v["checks"][1]["model"], common::sample("mlp_overflow").display().to_string());
    let suites = junit(&std::fs::read_to_string(&junit_path)?)?;
    let suite_names: Vec<&str> = suites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(suite_names, ["cnn", "mlp_overflow"], "one JUnit suite per model");
    assert!(suites[0].cases.iter().all(|c| c.outcome.is_none()));
    assert!(suites[1].cases.iter().any(|c| c.name == "layer mlp/fc1/matmul_out (MatMul)" && c.outcome.is_some()));
    assert!(suites[1].properties.iter().any(|(k, v)| k == "baseline" && v == "baselines/mlp.json"));

    // A broken baseline: that check cannot run (2, the worst), the other still reports.
    std::fs::write(dir.path().join("baselines/cnn.json"), "not json")?;
    let out = run(&["-j", "2", "--json"], dir.path())?;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let v = result_json(&out)?;
    assert_eq!(v["checks"][0]["status"], "error");
    assert_eq!(v["checks"][0]["error"]["kind"], "store");
    assert_eq!(v["checks"][1]["status"], "fail");
    let errors = error_lines(&out.stderr);
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(errors[0].starts_with("error: cnn: baselines/cnn.json: the baseline is not valid JSON"), "{}", errors[0]);
    let out = run(&["-j", "1"], dir.path())?;
    assert_eq!(out.code, Some(2));
    assert!(out.stdout.ends_with("verdict: ERROR (2 checks: 0 pass, 1 fail, 1 error)\n"), "{}", out.stdout);

    // Flags that describe one comparison are refused with a config; no config at all is an error.
    let out = run(&["--keep-fp32", "x"], dir.path())?;
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("set them per check in the file"), "{}", out.stderr);
    let empty = tempfile::tempdir()?;
    std::fs::create_dir(empty.path().join(".git"))?;
    let out = run(&[], empty.path())?;
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("no MODEL given and no trtlens.toml"), "{}", out.stderr);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The repository's own checks
// ---------------------------------------------------------------------------------------------

#[test]
fn the_repository_checks_every_sample_with_its_fix_against_a_committed_baseline() -> TestResult {
    use trtlens::check::config::Config;
    let config = Config::load(&root().join("trtlens.toml"))?;
    let samples = trtlens::samples::all();
    assert_eq!(config.checks.len(), samples.len(), "one check per sample");
    let mut baselines = std::collections::BTreeSet::new();
    for s in &samples {
        let e = config
            .checks
            .iter()
            .find(|e| e.name.as_deref() == Some(s.name))
            .ok_or(format!("no check for {}", s.name))?;
        assert_eq!(e.model.as_deref(), Some(format!("samples/{}", s.file).as_str()));
        let fix: Vec<String> = s.fix.iter().map(|n| (*n).to_string()).collect();
        assert_eq!(e.keep_fp32.clone().unwrap_or_default(), fix, "{}: the documented fix", s.name);
        let policy = e.out_of_range.as_deref().unwrap_or("saturate");
        assert_eq!(policy, s.policy.name(), "{}: the documented out-of-range policy", s.name);
        let shapes: Vec<String> = s.shapes.iter().map(|x| (*x).to_string()).collect();
        assert_eq!(e.shape.clone().unwrap_or_default(), shapes, "{}", s.name);
        let baseline = root().join(e.baseline.as_deref().ok_or("baseline")?);
        valid_report(&baseline)?;
        let doc = trtlens::check::read_baseline(&baseline)?;
        let sha = trtlens::model::sha256_hex(&std::fs::read(root().join("samples").join(s.file))?);
        assert_eq!(
            doc.report.model.sha256.as_deref(),
            Some(sha.as_str()),
            "{}: the baseline is of another version of the sample: trtlens check --update-baseline --force",
            s.name
        );
        assert!(doc.report.passed(), "{}: the fix passes", s.name);
        baselines.insert(baseline);
    }
    for f in std::fs::read_dir(root().join("tests/baselines"))? {
        let p = f?.path();
        assert!(baselines.contains(&p), "{} is no check's baseline", p.display());
    }
    // And they pass, every comparison in a worker (what .ci/run runs).
    let out = trtlens().args(["check", "-j", "2", "--config"]).arg(root().join("trtlens.toml")).output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.ends_with(&format!("verdict: PASS ({n} checks: {n} pass, 0 fail, 0 error)\n", n = samples.len())));
    Ok(())
}

#[test]
fn the_documented_policy_is_the_default() -> TestResult {
    let doc = trtlens::check::policy::Policy::load(&root().join("docs/check-policy.toml"))?;
    assert_eq!(doc, trtlens::check::policy::Policy::default(), "docs/check-policy.toml spells out the defaults");
    Ok(())
}
