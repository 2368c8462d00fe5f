//! The inspector's core driven headlessly by actions, with real components: jobs are real
//! `trtlens compare` child processes on the bundled samples (tract reference, cpu-fp16 candidate).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use trtlens::tui::action::{Action, Command};
use trtlens::tui::app::{App, BuildState};
use trtlens::tui::keys::KeyMap;
use trtlens::tui::start;

type TestResult = Result<(), Box<dyn std::error::Error>>;

use common::{inspect_launch as launch, sample, wait_job as wait};

fn cmd(app: &mut App, c: Command) {
    app.update(Action::Cmd(c));
}

#[test]
fn toggle_rebuild_results_update_save_and_reopen() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let keys = KeyMap::default();
    let mut app = start(&launch(&sample("regression_overflow"), tmp.path()), &keys)?;
    assert!(app.busy(), "opening a model starts the comparison in the background");
    wait(&mut app)?;
    let report = app.report.as_ref().ok_or("report")?;
    assert_eq!(report.verdict, "fail");
    assert_eq!(report.first_divergence.as_deref(), Some("targets"));

    cmd(&mut app, Command::FirstDivergence);
    assert_eq!(app.selected_row().map(|r| r.name.as_str()), Some("targets"));
    cmd(&mut app, Command::TogglePrecision);
    assert_eq!(app.pending().get("head/fc2/Gemm"), Some(&trtlens::precision::Precision::Fp32));
    assert_eq!(app.edits.label(Some("head/fc2/Gemm")).1, "FP16→FP32*", "pending is visible");

    cmd(&mut app, Command::Rebuild);
    assert!(matches!(app.build, BuildState::Running { .. }));
    wait(&mut app)?;
    let report = app.report.as_ref().ok_or("report")?;
    assert_eq!(report.verdict, "pass", "keeping the culprit FP32 fixes regression_overflow");
    assert!(app.pending().is_empty());
    assert_eq!(app.edits.label(Some("head/fc2/Gemm")).1, "FP32 user");
    assert_eq!(app.changes.get("targets"), Some(&trtlens::tui::edits::Change::Better));
    assert!(app.status.as_deref().is_some_and(|s| s.contains("outputs 0/1 → 1/1 pass")), "{:?}", app.status);
    assert_eq!(app.selected_row().map(|r| r.name.as_str()), Some("targets"), "the selection survives");

    // Exports name their files.
    cmd(&mut app, Command::ExportReport);
    assert!(tmp.path().join("regression_overflow.report.json").is_file(), "{:?}", app.status);
    cmd(&mut app, Command::WritePlan);
    assert!(tmp.path().join("regression_overflow.plan.toml").is_file(), "{:?}", app.status);
    assert!(tmp.path().join("regression_overflow.mixed.onnx").is_file());
    assert!(app.status.as_deref().is_some_and(|s| s.contains("regression_overflow.mixed.onnx")));

    cmd(&mut app, Command::ChartMetric);
    cmd(&mut app, Command::SortNext);
    cmd(&mut app, Command::SaveSession);
    let dir = tmp.path().join("sessions").join("regression_overflow");
    assert!(app.status.as_deref().is_some_and(|s| s.contains("session saved to")), "{:?}", app.status);
    let saved_report = app.report.clone().ok_or("report")?;
    let (sort, metric) = (app.sort, app.chart_metric);
    drop(app);

    // Reopening restores the same screen without running anything.
    let mut again = start(&launch(&dir, tmp.path()), &keys)?;
    assert!(!again.busy(), "a session reopens without re-running");
    assert_eq!(again.report.as_ref(), Some(&saved_report));
    assert_eq!((again.sort, again.chart_metric), (sort, metric));
    assert_eq!(again.selected_row().map(|r| r.name.as_str()), Some("targets"));
    assert_eq!(again.edits.label(Some("head/fc2/Gemm")).1, "FP32 user");
    // And it can still rebuild from the saved reference run.
    cmd(&mut again, Command::TogglePrecision);
    cmd(&mut again, Command::Rebuild);
    wait(&mut again)?;
    assert_eq!(again.report.as_ref().map(|r| r.verdict.as_str()), Some("fail"), "back to FP16 fails again");
    assert_eq!(again.changes.get("targets"), Some(&trtlens::tui::edits::Change::Worse));
    Ok(())
}

#[test]
fn cancel_stops_the_job_and_keeps_pending_edits() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut app = start(&launch(&sample("mlp_overflow"), tmp.path()), &KeyMap::default())?;
    wait(&mut app)?;
    cmd(&mut app, Command::FirstDivergence);
    cmd(&mut app, Command::TogglePrecisionOp);
    let pending = app.pending().len();
    assert!(pending >= 2, "every MatMul flips: {pending}");
    cmd(&mut app, Command::Rebuild);
    cmd(&mut app, Command::Cancel);
    let t0 = Instant::now();
    while app.busy() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
        app.tick();
    }
    // The child may finish before the kill lands; either way the UI is free again.
    assert!(!app.busy());
    if app.build == BuildState::Cancelled {
        assert_eq!(app.pending().len(), pending, "pending edits survive a cancel");
    }
    Ok(())
}

#[test]
fn navigation_filters_sort_and_search() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut app = start(&launch(&sample("mlp_overflow"), tmp.path()), &KeyMap::default())?;
    wait(&mut app)?;
    let total = app.visible.len();
    assert!(total >= 5);
    cmd(&mut app, Command::FilterFailing);
    assert!(!app.visible.is_empty() && app.visible.iter().all(|&i| app.rows[i].failing()));
    cmd(&mut app, Command::ClearFilters);
    assert_eq!(app.visible.len(), total);
    cmd(&mut app, Command::Bottom);
    assert_eq!(app.selected, total - 1);
    cmd(&mut app, Command::Down);
    assert_eq!(app.selected, total - 1, "clamped");
    app.update(Action::Scroll(-100));
    assert_eq!(app.selected, 0);
    cmd(&mut app, Command::NextFailing);
    assert!(app.selected_row().is_some_and(trtlens::tui::rows::Row::failing));
    cmd(&mut app, Command::Search);
    for c in "hidden".chars() {
        app.update(Action::SearchInput(c));
    }
    app.update(Action::SearchConfirm);
    assert_eq!(app.selected_row().map(|r| r.name.as_str()), Some("mlp/hidden"));
    assert!(app.search.is_none());
    app.update(Action::SortBy(trtlens::tui::rows::Column::MaxAbs));
    let first = app.visible[0];
    assert!(app.rows[first].max_abs.is_nan() || app.rows[first].max_abs.is_infinite(), "non-finite rows sort first");
    cmd(&mut app, Command::FilterOp);
    assert!(app.visible.iter().all(|&i| app.rows[i].op == app.rows[app.visible[0]].op));
    cmd(&mut app, Command::Help);
    assert!(app.show_help);
    cmd(&mut app, Command::Cancel);
    assert!(!app.show_help);
    // `p` writes the whole-model charts and the selected tensor's histogram and scatter, and says where.
    let selected = app.selected_row().map(|r| r.name.clone()).ok_or("no selection")?;
    cmd(&mut app, Command::ExportPlots);
    let status = app.status.clone().unwrap_or_default();
    let dir = tmp.path().join("mlp_overflow.plots");
    assert!(status.starts_with(&format!("plots written to {}", dir.display())), "{status}");
    let stem = trtlens::text::file_stem(&selected);
    for file in
        ["error.png".to_string(), "overflow.png".into(), format!("histogram-{stem}.png"), format!("scatter-{stem}.png")]
    {
        assert!(status.contains(&file), "{status} names {file}");
        let bytes = std::fs::read(dir.join(&file))?;
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{file} is a PNG");
    }
    cmd(&mut app, Command::Quit);
    assert!(app.quit);
    Ok(())
}

#[test]
fn a_bad_target_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nope.onnx");
    let err = start(&launch(&missing, tmp.path()), &KeyMap::default()).expect_err("an error");
    assert!(err.to_string().contains("nope.onnx"), "{err}");
    let mut l = launch(&sample("mlp_overflow"), tmp.path());
    l.request.candidate = trtlens::compare::source::SideSpec::Runner(trtlens::runner::RunnerKind::Tract);
    l.plan = Some(trtlens::precision::Plan::uniform(trtlens::precision::Precision::Fp16));
    assert!(start(&l, &KeyMap::default()).is_err(), "a plan on a candidate that takes none");
}

/// The engine never draws: only `src/tui/` may import ratatui or crossterm.
#[test]
fn only_the_tui_module_imports_ratatui() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let tui = src.join("tui");
    let offenders: Vec<String> = files
        .iter()
        .filter(|p| !p.starts_with(&tui))
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            text.contains("ratatui::") || text.contains("crossterm::")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "ratatui/crossterm outside src/tui: {offenders:?}");
}

#[test]
fn loaded_inputs_survive_rebuilds() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let inputs = tmp.path().join("inputs_run");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_trtlens"))
        .arg("run")
        .arg(sample("regression_overflow"))
        .args(["--runner", "tract", "--seed", "7", "-q", "--save"])
        .arg(&inputs)
        .status()?;
    assert!(st.success());
    let mut l = launch(&sample("regression_overflow"), tmp.path());
    l.request.inputs.load = Some(inputs.clone());
    let mut app = start(&l, &KeyMap::default())?;
    wait(&mut app)?;
    let source = app.report.as_ref().and_then(|r| r.inputs.path.clone());
    assert_eq!(source.as_deref(), Some(inputs.display().to_string().as_str()), "the loaded inputs were used");
    cmd(&mut app, Command::FirstDivergence);
    cmd(&mut app, Command::TogglePrecision);
    cmd(&mut app, Command::Rebuild);
    wait(&mut app)?;
    assert_eq!(app.report.as_ref().map(|r| r.verdict.as_str()), Some("pass"));
    Ok(())
}

#[test]
fn predicted_islands_are_applied_after_the_first_comparison() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut l = launch(&sample("mlp_overflow"), tmp.path());
    l.keep_fp32_predicted = Some(trtlens::precision::predict::Predict::Overflow);
    let mut app = start(&l, &KeyMap::default())?;
    wait(&mut app)?; // the first comparison, which then starts the rebuild
    wait(&mut app)?;
    assert_eq!(app.report.as_ref().map(|r| r.verdict.as_str()), Some("pass"), "{:?}", app.status);
    assert_eq!(app.edits.label(Some("mlp/fc1/MatMul")).1, "FP32 pred");
    assert_eq!(app.edits.label(Some("mlp/fc2/Add")).1, "FP16");
    Ok(())
}

#[test]
fn auto_reference_falls_back_to_tract_without_onnxruntime() {
    let missing = Path::new("/nonexistent/libonnxruntime.so.1");
    let opts = trtlens::runner::RunnerOptions { ort_lib: Some(missing.to_path_buf()), ..Default::default() };
    assert_eq!(trtlens::runner::registry::auto_reference(&opts), trtlens::runner::RunnerKind::Tract);
}

#[test]
fn large_tensor_histograms_come_from_a_worker() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut app = start(&launch(&sample("softmax_naive"), tmp.path()), &KeyMap::default())?;
    wait(&mut app)?;
    app.inline_histogram = 0; // every tensor counts as large
    cmd(&mut app, Command::FirstDivergence);
    let name = app.selected_row().map(|r| r.name.clone()).ok_or("row")?;
    assert!(app.histograms_pending.contains(&name) || app.histograms.contains_key(&name));
    let t0 = Instant::now();
    while !app.histograms.contains_key(&name) && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
        app.tick();
    }
    let h = app.histograms.get(&name).cloned().flatten().ok_or("histogram arrived")?;
    assert_eq!(h.nonfinite, 1, "softmax/exp has one inf");
    assert!(app.histograms_pending.is_empty());
    Ok(())
}

#[test]
fn nodes_inside_a_specialized_if_can_be_toggled() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let keys = KeyMap::default();
    let mut app = start(&launch(&sample("vad_if_branches"), tmp.path()), &keys)?;
    wait(&mut app)?;
    assert_eq!(app.report.as_ref().map(|r| r.specialized.len()), Some(2), "both If nodes were inlined");
    let has_conv =
        |app: &App| app.ctx.graph.as_ref().is_some_and(|g| g.nodes.iter().any(|n| n.name == "/_model/stft/Conv"));
    assert!(has_conv(&app), "the graph follows the runs' specialization");
    let pos = app.visible.iter().position(|&i| app.rows[i].name == "/_model/stft/Conv_output_0").ok_or("row")?;
    app.update(Action::Select(pos));
    cmd(&mut app, Command::TogglePrecision);
    assert_eq!(app.pending().get("/_model/stft/Conv"), Some(&trtlens::precision::Precision::Fp32));
    cmd(&mut app, Command::Rebuild);
    wait(&mut app)?;
    let report = app.report.as_ref().ok_or("report")?;
    assert_eq!(report.tensor("/_model/stft/Conv_output_0").map(|t| t.dtype_candidate.as_str()), Some("float32"));
    assert_eq!(app.edits.label(Some("/_model/stft/Conv")).1, "FP32 user");
    // `w` writes the mixed-precision model of the graph the runs used: the inner node is there.
    cmd(&mut app, Command::WritePlan);
    let mixed = trtlens::model::Model::load(&tmp.path().join("vad_if_branches.mixed.onnx"))?;
    assert!(mixed.graph.nodes.iter().any(|n| n.name == "/_model/stft/Conv"), "{:?}", app.status);
    assert!(!mixed.graph.nodes.iter().any(|n| n.op_type == "If"));
    Ok(())
}
