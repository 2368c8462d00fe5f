//! Finding the culprits (issue 13): introduced-vs-inherited error, `predict` with benign masks,
//! and `search` naming the fewest FP32 nodes, on the samples with real components (tract
//! reference, `cpu-fp16` candidate, `trtlens worker` jobs).

mod common;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use trtlens::precision::{Plan, Precision};
use trtlens::runner::RunnerOptions;
use trtlens::search::{SearchRequest, search};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn trtlens() -> Command {
    Command::cargo_bin("trtlens").expect("binary")
}

fn validator() -> Result<jsonschema::Validator, Box<dyn std::error::Error>> {
    let schema: Value = serde_json::from_slice(&std::fs::read(root().join("docs/report-schema.json"))?)?;
    Ok(jsonschema::validator_for(&schema)?)
}

fn predict_json(sample: &str, extra: &[&str]) -> Result<Value, Box<dyn std::error::Error>> {
    let out = trtlens()
        .arg("predict")
        .arg(common::sample(sample))
        .args(["--reference", "tract", "--json", "-q"])
        .args(extra)
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn strings(v: &Value, list: &str, key: &str) -> Vec<String> {
    v[list].as_array().into_iter().flatten().filter_map(|e| e[key].as_str().map(str::to_string)).collect()
}

fn plan_of(policy: trtlens::precision::OutOfRangePolicy) -> Plan {
    let mut p = Plan::uniform(Precision::Fp16);
    p.out_of_range = policy;
    p
}

fn search_request(model: &Path, policy: trtlens::precision::OutOfRangePolicy) -> SearchRequest {
    let mut compare = common::compare_request(model);
    compare.runner_options =
        RunnerOptions { plan: Some(plan_of(policy)), plan_label: None, ..RunnerOptions::default() };
    SearchRequest {
        compare,
        risk: trtlens::precision::risk::RiskOptions { policy, ..Default::default() },
        jobs: 1,
        log: None,
        resume: false,
    }
}

#[test]
fn predict_flags_every_planted_culprit_and_the_json_has_the_documented_keys() -> TestResult {
    for s in trtlens::samples::all() {
        let mut extra = vec!["--out-of-range".to_string(), s.policy.name().to_string()];
        extra.extend(s.shape_args());
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let v = predict_json(s.name, &extra)?;
        let islands: BTreeSet<String> = v["at_risk"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["island"].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
        match s.culprit {
            Some(c) => assert!(islands.contains(c), "{}: culprit {c} not predicted: {v:#}", s.name),
            None => {
                assert!(
                    v["at_risk"].as_array().is_some_and(Vec::is_empty),
                    "{}: healthy sample flagged: {v:#}",
                    s.name
                );
            }
        }
        for a in v["at_risk"].as_array().into_iter().flatten() {
            for key in ["node", "tensor", "reason", "reference_abs_max"] {
                assert!(!a[key].is_null(), "{}: at_risk entry without {key}: {a}", s.name);
            }
        }
        for b in v["benign"].as_array().into_iter().flatten() {
            for key in ["node", "tensor", "reason"] {
                assert!(b[key].is_string(), "{}: benign entry without {key}: {b}", s.name);
            }
        }
    }
    // The planted overflow, by node and tensor.
    let v = predict_json("mlp_overflow", &[])?;
    let first = &v["at_risk"][0];
    assert_eq!(
        (first["node"].as_str(), first["tensor"].as_str()),
        (Some("mlp/fc1/MatMul"), Some("mlp/fc1/matmul_out"))
    );
    assert!(first["reference_abs_max"].as_f64().is_some_and(|x| x > 65504.0));
    Ok(())
}

#[test]
fn predict_puts_float32_min_and_minus_1e9_masks_under_benign() -> TestResult {
    let v = predict_json("attention_mask_f32min", &[])?;
    assert_eq!(v["at_risk"].as_array().map(Vec::len), Some(0), "{v:#}");
    let benign = strings(&v, "benign", "tensor");
    assert!(benign.contains(&"/bert/Constant_3_output_0".to_string()), "the finfo.min constant: {benign:?}");
    assert!(benign.contains(&"/bert/Mul_output_0".to_string()), "the bias made from it: {benign:?}");
    assert!(strings(&v, "benign", "reason").iter().all(|r| r.contains("mask")));

    let v = predict_json("attention_mask", &[])?;
    assert_eq!(v["at_risk"].as_array().map(Vec::len), Some(0), "{v:#}");
    assert!(strings(&v, "benign", "tensor").contains(&"attn.causal_mask".to_string()));

    // Under IEEE rounding the same constant is -inf and (1 - mask) * -inf is NaN: that Mul is at risk.
    for (sample, mul) in [("attention_mask_f32min", "/bert/Mul"), ("mask_fill_nan", "attn/mask/Mul")] {
        let v = predict_json(sample, &["--out-of-range", "ieee"])?;
        assert_eq!(strings(&v, "at_risk", "node"), vec![mul.to_string()], "{sample}: {v:#}");
        assert_eq!(v["at_risk"][0]["kind"], "nan");
    }
    Ok(())
}

#[test]
fn predict_reports_every_iteration_and_writes_a_plan() -> TestResult {
    let dir = tempfile::tempdir()?;
    let plan = dir.path().join("predicted.toml");
    let v = predict_json("softmax_naive", &["--iterations", "3", "--write-plan", plan.to_str().unwrap_or_default()])?;
    let a = &v["at_risk"][0];
    assert_eq!(a["per_iteration_abs_max"].as_array().map(Vec::len), Some(3), "{a}");
    assert_eq!(a["iterations"].as_array().map(Vec::len), Some(3), "overflows in every iteration: {a}");
    let p = Plan::load(&plan)?;
    let nodes: BTreeSet<String> = p
        .overrides
        .iter()
        .map(|o| match &o.selector {
            trtlens::precision::Selector::Node(n) => n.clone(),
            other => format!("{other}"),
        })
        .collect();
    let fix: BTreeSet<String> =
        ["softmax/Exp", "softmax/ReduceSum", "softmax/Div"].iter().map(|s| (*s).to_string()).collect();
    assert_eq!(nodes, fix);
    assert!(p.overrides.iter().all(|o| o.reason == trtlens::precision::Reason::Prediction));
    // The predicted plan passes.
    trtlens()
        .arg("compare")
        .arg(common::sample("softmax_naive"))
        .args(["--reference", "tract", "--candidate", "cpu-fp16", "--plan"])
        .arg(&plan)
        .arg("-q")
        .assert()
        .success();
    Ok(())
}

#[test]
fn introduced_error_of_a_node_that_only_inherits_is_near_zero() -> TestResult {
    let out = trtlens()
        .arg("compare")
        .arg(common::sample("layernorm_overflow"))
        .args(["--reference", "tract", "--candidate", "cpu-fp16", "--json", "-q"])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout)?;
    let errors: Vec<String> = validator()?.iter_errors(&r).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(r["schema"], "trtlens.report/1.1");
    let tensor = |name: &str| {
        r["tensors"].as_array().into_iter().flatten().find(|t| t["name"] == name).map(|t| t["metrics"].clone())
    };
    // The planted culprit makes the infs...
    let pow = tensor("ln/squared").ok_or("no ln/squared")?;
    assert!(pow["introduced_nonfinite"].as_u64().is_some_and(|n| n > 0), "{pow}");
    // ...and the normalisation downstream only inherits them: its accumulated error is large, its
    // own (introduced) error is FP16 rounding.
    for name in ["ln/normalized", "output"] {
        let m = tensor(name).ok_or(format!("no {name}"))?;
        assert!(m["max_abs"].as_f64().is_some_and(|x| x > 0.5), "{name} accumulated: {m}");
        assert!(m["introduced_max_abs"].as_f64().is_some_and(|x| x < 1e-2), "{name} introduced: {m}");
        assert_eq!(m["introduced_nonfinite"], 0, "{name}");
        assert_eq!(m["introduced_mismatches"], 0, "{name}");
    }
    assert_eq!(r["introducers"][0]["node"], "ln/square/Pow", "{:#}", r["introducers"]);

    // The table ranks it too.
    let out = trtlens()
        .arg("compare")
        .arg(common::sample("layernorm_overflow"))
        .args(["--reference", "tract", "--candidate", "cpu-fp16"])
        .env("NO_COLOR", "1")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let after = text.split("worst introducers").nth(1).ok_or(format!("no introducers section:\n{text}"))?;
    assert!(after.lines().nth(1).is_some_and(|l| l.contains("ln/square/Pow")), "{text}");
    Ok(())
}

#[test]
fn search_returns_exactly_each_planted_island_and_the_plan_passes() -> TestResult {
    for s in trtlens::samples::all().into_iter().filter(|s| s.culprit.is_some()) {
        let model = common::sample(s.name);
        let req = search_request(&model, s.policy);
        let outcome = search(&req, &mut |_| {})?;
        let kept: BTreeSet<&str> = outcome.kept.iter().map(String::as_str).collect();
        let fix: BTreeSet<&str> = s.fix.iter().copied().collect();
        assert_eq!(kept, fix, "{}: {}", s.name, outcome.summary());
        assert!(outcome.plan.overrides.iter().all(|o| o.reason == trtlens::precision::Reason::Search));
        // Independently: the plan passes.
        let mut creq = common::compare_request(&model);
        creq.runner_options.plan = Some(outcome.plan.clone());
        creq.introduced = false;
        let report = trtlens::compare::compare(&creq, &mut |_, _| {})?;
        assert!(report.passed(), "{}: the searched plan fails", s.name);
        assert!(outcome.runs >= 2, "{}: {}", s.name, outcome.summary());
    }
    Ok(())
}

#[test]
fn several_independent_culprits_cost_fewer_than_2_k_log2_n_runs() -> TestResult {
    let s = trtlens::samples::find("multitask_heads").ok_or("no sample")?;
    let outcome = search(&search_request(&common::sample(s.name), s.policy), &mut |_| {})?;
    let kept: BTreeSet<&str> = outcome.kept.iter().map(String::as_str).collect();
    assert_eq!(kept, s.fix.iter().copied().collect());
    let k = 3.0;
    let n = outcome.universe as f64;
    let bound = 2.0 * k * n.log2();
    assert!((outcome.runs as f64) < bound, "{} >= {bound:.1}: {}", outcome.runs, outcome.summary());
    let roots: Vec<&str> = outcome.islands.iter().map(|i| i.root.as_str()).collect();
    assert_eq!(roots, vec!["/heads/price/fc2/Gemm", "/heads/cls/Exp", "/heads/embed/ReduceSum"]);
    Ok(())
}

#[test]
fn search_cli_writes_plan_model_spellings_and_replays_its_log() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (plan, mixed, log) = (dir.path().join("fix.toml"), dir.path().join("mixed.onnx"), dir.path().join("s.jsonl"));
    let args = |extra: &[&str]| {
        let mut c = trtlens();
        c.arg("search")
            .arg(common::sample("regression_overflow"))
            .args(["--reference", "tract", "--candidate", "cpu-fp16", "--precision", "fp16", "--out-of-range", "ieee"])
            .arg("--log")
            .arg(&log)
            .args(extra);
        c
    };
    let out = args(&[]).arg("--write-plan").arg(&plan).arg("-o").arg(&mixed).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("kept 1 of 3 nodes FP32 after 2 candidate runs"), "{stdout}");
    assert!(stdout.contains("--nodes_to_exclude head/fc2/Gemm"), "{stdout}");
    assert!(stdout.contains("--layerPrecisions=head/fc2/Gemm:fp32"), "{stdout}");
    assert!(std::fs::read_to_string(&plan)?.contains("reason = \"search\""));
    trtlens::model::Model::load(&mixed)?;
    let lines = std::fs::read_to_string(&log)?;
    assert_eq!(lines.lines().filter(|l| l.contains("\"line\":\"run\"")).count(), 2);

    // Replayed: nothing runs again.
    let out = args(&["--resume"]).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("after 2 candidate runs (2 replayed from the log)"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&log)?, lines, "a full replay appends nothing");

    // A log of another search is refused.
    let out = trtlens()
        .arg("search")
        .arg(common::sample("mlp_overflow"))
        .args(["--reference", "tract", "--resume", "--log"])
        .arg(&log)
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another model"));
    Ok(())
}

#[test]
fn interrupted_search_resumes_and_parallel_runs_agree() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("mt.jsonl");
    let run = |extra: &[&str]| -> Result<String, Box<dyn std::error::Error>> {
        let out = trtlens()
            .arg("search")
            .arg(common::sample("multitask_heads"))
            .args(["--reference", "tract", "--json", "-q", "--log"])
            .arg(&log)
            .args(extra)
            .output()?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout)?)
    };
    let full: Value = serde_json::from_str(&run(&["-j", "2"])?)?;
    // Cut the log after 4 runs (and a torn line), as an interruption would leave it.
    let text = std::fs::read_to_string(&log)?;
    let mut kept: Vec<&str> = Vec::new();
    let mut runs = 0;
    for l in text.lines() {
        if l.contains("\"line\":\"run\"") {
            runs += 1;
            if runs > 4 {
                break;
            }
        }
        kept.push(l);
    }
    std::fs::write(&log, format!("{}\n{{\"line\":\"run\",\"ru", kept.join("\n")))?;
    let resumed: Value = serde_json::from_str(&run(&["--resume"])?)?;
    assert_eq!(resumed["kept"], full["kept"]);
    assert_eq!(resumed["runs"], full["runs"]);
    assert_eq!(resumed["replayed"], 4);
    Ok(())
}

#[test]
fn a_healthy_model_needs_one_run() -> TestResult {
    let outcome = search(
        &search_request(&common::sample("cnn_bn_relu"), trtlens::precision::OutOfRangePolicy::Saturate),
        &mut |_| {},
    )?;
    assert!(outcome.baseline_passed && outcome.kept.is_empty());
    assert_eq!(outcome.runs, 1);
    assert!(outcome.summary().starts_with("kept 0 of"));
    Ok(())
}

#[test]
fn inspector_search_runs_in_the_background_and_marks_the_kept_nodes() -> TestResult {
    use trtlens::tui::action::{Action, Command};
    use trtlens::tui::app::BuildState;
    let tmp = tempfile::tempdir()?;
    let keys = trtlens::tui::keys::KeyMap::default();
    let mut app = trtlens::tui::start(&common::inspect_launch(&common::sample("mlp_overflow"), tmp.path()), &keys)?;
    common::wait_job(&mut app)?;
    assert_eq!(app.report.as_ref().map(|r| r.verdict.as_str()), Some("fail"));
    app.update(Action::Cmd(Command::SearchPrecision));
    assert!(app.busy(), "the search runs in the background");
    assert!(matches!(app.build, BuildState::Searching(_)));
    // The UI keeps answering while it runs.
    app.update(Action::Cmd(Command::Down));
    common::wait_job(&mut app)?;
    assert_eq!(app.report.as_ref().map(|r| r.verdict.as_str()), Some("pass"), "{:?}", app.status);
    for n in ["mlp/fc1/MatMul", "mlp/fc1/Add", "mlp/act/Relu", "mlp/fc2/MatMul"] {
        assert_eq!(app.edits.label(Some(n)).1, "FP32 search", "{n}");
    }
    let log = std::fs::read_to_string(app.ctx.work_dir.join("search.jsonl"))?;
    assert_eq!(log.lines().filter(|l| l.contains("\"line\":\"run\"")).count(), 6, "{log}");
    Ok(())
}

#[test]
fn without_a_prediction_the_search_grows_along_the_introduced_ranking_to_a_one_minimal_set() -> TestResult {
    // At float32 tolerances plain FP16 rounding fails; nothing overflows, so nothing is predicted.
    let model = common::sample("cnn_bn_relu");
    let mut req = search_request(&model, trtlens::precision::OutOfRangePolicy::Saturate);
    req.compare.tolerance.atol = 1e-5;
    req.compare.tolerance.rtol = 1e-5;
    let outcome = search(&req, &mut |_| {})?;
    assert!(outcome.predicted.is_empty() && !outcome.baseline_passed);
    assert!(!outcome.kept.is_empty() && outcome.kept.len() < outcome.universe, "{}", outcome.summary());
    let verdict = |plan: trtlens::precision::Plan| -> Result<bool, Box<dyn std::error::Error>> {
        let mut c = req.compare.clone();
        c.runner_options.plan = Some(plan);
        c.introduced = false;
        Ok(trtlens::compare::compare(&c, &mut |_, _| {})?.passed())
    };
    assert!(verdict(outcome.plan.clone())?, "the result passes");
    // No single node can be handed back.
    for n in &outcome.kept {
        let mut plan = outcome.plan.clone();
        plan.overrides.retain(|o| !matches!(&o.selector, trtlens::precision::Selector::Node(x) if x == n));
        assert!(!verdict(plan)?, "{n} could be handed back: {}", outcome.summary());
    }
    Ok(())
}

/// `search --policy FILE` judges the graph outputs with a check policy's `[outputs]` tolerances;
/// the policy and the tolerance flags are exclusive, and a bad policy is a clear error.
#[test]
fn search_takes_the_tolerances_of_a_check_policy() -> TestResult {
    let dir = tempfile::tempdir()?;
    let run = |policy: &str, extra: &[&str]| -> Result<std::process::Output, Box<dyn std::error::Error>> {
        let p = dir.path().join("policy.toml");
        std::fs::write(&p, policy)?;
        Ok(trtlens()
            .arg("search")
            .arg(common::sample("regression_overflow"))
            .args(["--reference", "tract", "--precision", "fp16", "--out-of-range", "ieee", "--policy"])
            .arg(&p)
            .arg("--log")
            .arg(dir.path().join(format!("s{}.jsonl", extra.len())))
            .args(extra)
            .output()?)
    };
    let strict = run("[outputs]\natol = 0.01\nrtol = 0.01\n", &[])?;
    assert!(strict.status.success(), "{}", String::from_utf8_lossy(&strict.stderr));
    assert!(String::from_utf8_lossy(&strict.stdout).contains("kept 1 of 3 nodes FP32"));
    // The policy's tolerances are the ones used: cnn_bn_relu passes all-FP16 at 1e-2 (nothing kept),
    // a policy of 1e-9 makes search keep nodes FP32.
    let healthy = |policy: &str| -> Result<String, Box<dyn std::error::Error>> {
        let p = dir.path().join("healthy.toml");
        std::fs::write(&p, policy)?;
        let o = trtlens()
            .arg("search")
            .arg(common::sample("cnn_bn_relu"))
            .args(["--reference", "tract", "--precision", "fp16", "--policy"])
            .arg(&p)
            .arg("--log")
            .arg(dir.path().join(format!("h{}.jsonl", policy.len())))
            .output()?;
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    assert!(healthy("[outputs]\natol = 0.01\nrtol = 0.01\n")?.contains("kept 0 of"));
    let tight = healthy("[outputs]\natol = 1e-9\nrtol = 1e-9\n")?;
    assert!(!tight.contains("kept 0 of"), "{tight}");
    let bad = run("[outputs]\natol = 0.01\n", &["--atol", "1"])?;
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("either --policy or"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let unknown = run("[outputs]\nbogus = 1\n", &[])?;
    assert_eq!(unknown.status.code(), Some(2), "an unknown policy key is an error");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("bogus"), "{}", String::from_utf8_lossy(&unknown.stderr));
    Ok(())
}
