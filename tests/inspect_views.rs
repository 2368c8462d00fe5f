//! Every inspector view rendered with ratatui's `TestBackend` and compared with `insta` snapshots
//! (`tests/snapshots/`): the full screen at 120x36 and 80x24, each view on its own, the help
//! overlay, the job popup, and the empty and failed states. Plus: no size panics.

mod common;

use std::path::{Path, PathBuf};

use common::sample;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use trtlens::tui::action::{Action, Command};
use trtlens::tui::app::{App, BuildState, Context};
use trtlens::tui::keys::KeyMap;
use trtlens::tui::{start, views};

fn loaded(name: &str, dir: &Path) -> App {
    let mut app = start(&common::inspect_launch(&sample(name), dir), &KeyMap::default()).expect("start");
    common::wait_job(&mut app).expect("the comparison finishes");
    assert!(app.report.is_some(), "{:?}", app.build);
    app.status = None;
    app
}

fn bare(dir: &Path) -> App {
    let ctx = Context {
        model: Some(sample("mlp_overflow")),
        model_sha256: String::new(),
        graph: None,
        reference: "tract".into(),
        candidate: "cpu-fp16".into(),
        candidate_takes_plan: true,
        request: common::compare_request(&sample("mlp_overflow")),
        exe: PathBuf::from("trtlens"),
        sessions_dir: dir.join("sessions"),
        export_dir: dir.to_path_buf(),
        session_name: "mlp_overflow".into(),
        work_dir: dir.to_path_buf(),
    };
    App::new(ctx, None, KeyMap::default().help())
}

fn text(t: &Terminal<TestBackend>) -> String {
    let b = t.backend().buffer();
    let mut out = String::new();
    for y in 0..b.area.height {
        let line: String = (0..b.area.width).map(|x| b[(x, y)].symbol().to_string()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    app.update(Action::Resize(w, h));
    common::settle_histograms(app);
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| {
        views::draw(f, app);
    })
    .expect("draw");
    text(&t)
}

fn one(w: u16, h: u16, draw: impl FnOnce(&mut ratatui::Frame<'_>, Rect)) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| draw(f, f.area())).expect("draw");
    text(&t)
}

#[test]
fn full_screen_wide_and_80x24() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut app = loaded("mlp_overflow", tmp.path());
    app.update(Action::Cmd(Command::FirstDivergence));
    insta::assert_snapshot!("screen_120x36_first_divergence", screen(&mut app, 120, 36));
    insta::assert_snapshot!("screen_80x24_first_divergence", screen(&mut app, 80, 24));
    app.update(Action::Cmd(Command::TogglePrecision));
    insta::assert_snapshot!("screen_100x30_pending_toggle", screen(&mut app, 100, 30));
}

#[test]
fn each_view_alone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut app = loaded("softmax_naive", tmp.path());
    app.update(Action::Cmd(Command::FirstDivergence));
    insta::assert_snapshot!("view_table", one(100, 12, |f, a| views::table::draw(f, a, &app)));
    insta::assert_snapshot!("view_detail", one(70, 34, |f, a| views::detail::draw(f, a, &app)));
    insta::assert_snapshot!("view_chart", one(90, 10, |f, a| views::chart::draw(f, a, &app)));
    insta::assert_snapshot!(
        "view_status",
        one(120, 2, |f, a| {
            let [bar, footer] = ratatui::layout::Layout::vertical([ratatui::layout::Constraint::Length(1); 2]).areas(a);
            views::status::draw_bar(f, bar, &app);
            views::status::draw_footer(f, footer, &app);
        })
    );
    app.update(Action::Cmd(Command::ChartMetric));
    insta::assert_snapshot!("view_chart_mismatch", one(90, 10, |f, a| views::chart::draw(f, a, &app)));
    app.update(Action::Cmd(Command::Help));
    insta::assert_snapshot!("view_help_overlay", screen(&mut app, 100, 36));
}

#[test]
fn empty_running_and_failed_states() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut app = bare(tmp.path());
    insta::assert_snapshot!("state_empty", screen(&mut app, 80, 24));
    app.build = BuildState::Running { label: "reference + candidate".into(), progress: 0.4 };
    app.update(Action::Job(trtlens::tui::jobs::JobEvent::Log("reference: 5 nodes, 5 tensors to capture".into())));
    insta::assert_snapshot!("state_running", screen(&mut app, 80, 24));
    app.update(Action::Job(trtlens::tui::jobs::JobEvent::Failed(
        "reference + candidate failed (exit 2): error: runner tract: unsupported op".into(),
    )));
    insta::assert_snapshot!("state_failed", screen(&mut app, 80, 24));
    app.update(Action::Cmd(Command::Help));
    insta::assert_snapshot!("help_overlay_80x24", screen(&mut app, 80, 24));
}

#[test]
fn no_size_panics_and_50k_rows_render() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut app = loaded("layernorm_overflow", tmp.path());
    for (w, h) in [(1, 1), (10, 3), (20, 5), (40, 10), (79, 23), (80, 24), (200, 60)] {
        for c in [Command::ToggleDetail, Command::ToggleChart, Command::Help] {
            let _ = screen(&mut app, w, h);
            app.update(Action::Cmd(c));
        }
    }
    // 50,000 rows: the table builds only the visible window.
    let mut report = app.report.clone().expect("report");
    let base = report.tensors.clone();
    while report.tensors.len() < 50_000 {
        for t in &base {
            let mut t = t.clone();
            t.name = format!("{}#{}", t.name, report.tensors.len());
            t.topo_index = Some(report.tensors.len());
            report.tensors.push(t);
        }
    }
    app.set_report(report, None);
    app.update(Action::Cmd(Command::Bottom));
    let s = screen(&mut app, 120, 36);
    assert!(s.contains("layers"), "{s}");
    app.update(Action::Cmd(Command::SortNext));
    app.update(Action::Cmd(Command::PageUp));
    let _ = screen(&mut app, 120, 36);
}

#[test]
fn mouse_positions_map_to_rows_and_header_columns() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut app = loaded("mlp_overflow", tmp.path());
    app.update(Action::Resize(120, 36));
    let mut t = Terminal::new(TestBackend::new(120, 36)).expect("terminal");
    let mut areas = views::Areas::default();
    t.draw(|f| areas = views::draw(f, &app)).expect("draw");
    let table = areas.table;
    assert_eq!(views::table::row_at(&app, table, table.y + 2), Some(0), "first data row");
    assert_eq!(views::table::row_at(&app, table, table.y + 4), Some(2));
    assert_eq!(views::table::row_at(&app, table, table.y + 1), None, "the header is not a row");
    assert_eq!(views::table::row_at(&app, table, table.y + 20), None, "below the last row");
    assert_eq!(views::table::column_at(&app, table, table.x + 1), Some(trtlens::tui::rows::Column::Index));
    let name_x = (0..table.width)
        .map(|dx| table.x + dx)
        .find(|&x| views::table::column_at(&app, table, x) == Some(trtlens::tui::rows::Column::Name));
    assert!(name_x.is_some(), "the tensor column has a header cell");
}

/// Exported models name tensors by scope (`jax2tf_infer_/pjit_infer_/Net/LayerNorm_1/Sum_1:0`): the
/// table drops the prefix every row shares (shown once in its title), elides from the left, and
/// gives the tensor column the width the terminal allows; the detail pane and search keep the full
/// name.
#[test]
fn long_scoped_names_stay_readable() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut app = loaded("layernorm_overflow", tmp.path());
    let scope = "jax2tf_infer_/pjit_infer_/Net/";
    let rename = |n: &str| format!("{scope}LayerNorm_1/{}:0", n.replace('/', "_"));
    let mut report = app.report.clone().expect("report");
    for t in &mut report.tensors {
        t.name = rename(&t.name);
    }
    for o in &mut report.outputs {
        o.name = rename(&o.name);
    }
    report.first_divergence = report.first_divergence.as_deref().map(rename);
    report.first_nonfinite = report.first_nonfinite.as_deref().map(rename);
    app.set_report(report, None);
    assert_eq!(app.name_prefix, "jax2tf_infer_/pjit_infer_/Net/LayerNorm_1/");
    app.update(Action::Cmd(Command::FirstDivergence));
    for (w, h) in [(100, 30), (160, 40)] {
        let s = screen(&mut app, w, h);
        insta::assert_snapshot!(format!("long_scoped_names_{w}x{h}"), s);
        let title = s.lines().find(|l| l.contains("layers ")).expect("table title");
        assert!(title.contains("pjit_infer_/Net/LayerNorm_1/"), "the shared prefix is in the title: {title}");
        // No row repeats the prefix: every row shows its own tail.
        let body: Vec<&str> = s
            .lines()
            .filter_map(|l| l.split('│').nth(1))
            .filter(|cell| cell.split_whitespace().next().is_some_and(|i| i.parse::<usize>().is_ok()))
            .collect();
        assert!(body.len() >= 8, "{s}");
        assert!(body.iter().all(|l| !l.contains("jax2tf_infer_/pj")), "{s}");
        for tail in ["ln_squared:0", "ln_var:0", "hidden:0"] {
            assert!(s.contains(tail), "{w}x{h}: {tail} is readable\n{s}");
        }
    }
    // The detail pane and search use the full name.
    let detail = one(160, 12, |f, a| views::detail::draw(f, a, &app));
    assert!(detail.contains(&format!("{scope}LayerNorm_1/ln_square_Pow")) || detail.contains(scope), "{detail}");
    app.update(Action::Cmd(Command::Search));
    for c in "Net/LayerNorm_1/ln_var".chars() {
        app.update(Action::SearchInput(c));
    }
    assert_eq!(app.selected_row().map(|r| r.name.as_str()), Some("jax2tf_infer_/pjit_infer_/Net/LayerNorm_1/ln_var:0"));
}

#[test]
fn detail_names_the_engine_layer_its_fused_nodes_and_a_precision_mismatch() {
    use trtlens::compare::report::{EngineRef, TrtReport};
    let tmp = tempfile::tempdir().expect("tmp");
    let mut app = loaded("softmax_naive", tmp.path());
    let mut report = app.report.clone().expect("report");
    let first = report.first_divergence.clone().expect("first divergence");
    let node = report.tensor(&first).and_then(|t| t.node.clone()).expect("node");
    // What a TensorRT candidate's report carries (see compare::attach_trt).
    for t in &mut report.tensors {
        t.engine = Some(EngineRef {
            tensor: Some(if t.is_output { format!("{}__fp16", t.name) } else { t.name.clone() }),
            layer: Some("__myl_AddExpSumDivCast_myl0_1".into()),
            layer_type: Some("kgen".into()),
            onnx_nodes: vec!["softmax/Exp".into(), "softmax/ReduceSum".into(), "softmax/Div".into()],
        });
    }
    report.trt = Some(TrtReport {
        flavour: "tensorrt-rtx".into(),
        version: "1.7.1.116".into(),
        observe: "all".into(),
        engine_key: "k".into(),
        mapped: 5,
        tensors: 5,
        precision_mismatches: vec![trtlens::trt::tensor_map::PrecisionMismatch {
            onnx_node: node,
            plan: "fp16".into(),
            engine: "fp32".into(),
        }],
        production: None,
    });
    let runs = app.runs.clone();
    app.set_report(report, runs);
    app.update(Action::Cmd(Command::FirstDivergence));
    let shown = one(100, 40, |f, a| views::detail::draw(f, a, &app));
    assert!(shown.contains("engine layer __myl_AddExpSumDivCast_myl0_1 (kgen)"), "{shown}");
    assert!(shown.contains("fuses 3 ONNX nodes: softmax/Exp, softmax/ReduceSum, softmax/Div"), "{shown}");
    assert!(shown.contains("precision mismatch: the plan says fp16, the engine computes fp32"), "{shown}");
}
