//! Inspector responsiveness with 50,000 layer rows (the "smooth with 50,000 rows").
//!
//! `cargo bench --bench inspect [-- ROWS]` compares a real sample (tract vs cpu-fp16), replicates
//! its tensors to ROWS rows (default 50,000), and times what a key press costs: building the rows
//! from a report, re-sorting, a filter, an incremental-search step, and drawing a full 200x60 frame
//! (table, detail, chart) into ratatui's `TestBackend` while paging through the table. It prints a
//! table; nothing is asserted. A frame well under 16 ms keeps the UI at 60 fps.

use std::time::Instant;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use trtlens::compare::metrics::Tolerance;
use trtlens::compare::{CompareRequest, compare, source::SideSpec};
use trtlens::inputs::InputOptions;
use trtlens::runner::{RunnerKind, RunnerOptions};
use trtlens::tui::action::{Action, Command};
use trtlens::tui::app::{App, Context};
use trtlens::tui::keys::KeyMap;
use trtlens::tui::rows;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn time<T>(label: &str, reps: usize, mut f: impl FnMut() -> T) -> (String, f64) {
    let t0 = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(f());
    }
    (label.to_string(), t0.elapsed().as_secs_f64() * 1e3 / reps as f64)
}

fn main() -> Res<()> {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(50_000);
    let model = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/layernorm_overflow.onnx");
    let req = CompareRequest {
        model: Some(model.clone()),
        reference: SideSpec::Runner(RunnerKind::Tract),
        candidate: SideSpec::Runner(RunnerKind::CpuFp16),
        inputs: InputOptions { iterations: 1, ..InputOptions::default() },
        runner_options: RunnerOptions::default(),
        tolerance: Tolerance { atol: 1e-2, rtol: 1e-2, ..Tolerance::default() },
        overrides: vec![],
        top_k: 5,
        save_runs: None,
        keep_fp32_predicted: None,
        specialize: true,
        introduced: true,
    };
    let mut report = compare(&req, &mut |_, _| {})?;
    let base = report.tensors.clone();
    while report.tensors.len() < n {
        for t in &base {
            let mut t = t.clone();
            t.name = format!("{}#{}", t.name, report.tensors.len());
            t.topo_index = Some(report.tensors.len());
            report.tensors.push(t);
        }
    }
    report.tensors.truncate(n);
    let graph = trtlens::model::Model::load(&model)?.graph;
    let tmp = tempfile::tempdir()?;
    let ctx = Context {
        model: Some(model.clone()),
        model_sha256: String::new(),
        graph: Some(graph),
        reference: "tract".into(),
        candidate: "cpu-fp16".into(),
        candidate_takes_plan: true,
        request: trtlens::compare::CompareRequest::new(
            Some(model.clone()),
            trtlens::compare::source::SideSpec::Runner(trtlens::runner::RunnerKind::Tract),
            trtlens::compare::source::SideSpec::Runner(trtlens::runner::RunnerKind::CpuFp16),
        ),
        exe: "trtlens".into(),
        sessions_dir: tmp.path().join("sessions"),
        export_dir: tmp.path().to_path_buf(),
        session_name: "bench".into(),
        work_dir: tmp.path().to_path_buf(),
    };
    let plan = trtlens::precision::Plan::uniform(trtlens::precision::Precision::Fp16);
    let mut app = App::new(ctx, Some(plan), KeyMap::default().help());
    let mut results = vec![
        time("build rows from the report", 5, || rows::build(&report)),
        time("install report (rows + view)", 3, || app.set_report(report.clone(), None)),
        time("sort by max abs (o)", 10, || app.update(Action::SortBy(rows::Column::MaxAbs))),
    ];
    results.push(time("filter failing on/off (1)", 10, || app.update(Action::Cmd(Command::FilterFailing))));
    app.update(Action::Cmd(Command::Search));
    results.push(time("search step (type one char)", 10, || {
        app.update(Action::SearchInput('x'));
        app.update(Action::SearchBackspace);
    }));
    app.update(Action::Cmd(Command::Cancel));
    let mut term = Terminal::new(TestBackend::new(200, 60))?;
    app.update(Action::Resize(200, 60));
    results.push(time("draw a 200x60 frame while paging", 100, || {
        app.update(Action::Cmd(Command::PageDown));
        term.draw(|f| {
            trtlens::tui::views::draw(f, &app);
        })
        .map(|_| ())
    }));
    println!("inspector with {n} rows (ms per operation, mean)");
    println!("{:<40} {:>10}", "operation", "ms");
    for (label, ms) in results {
        println!("{label:<40} {ms:>10.3}");
    }
    Ok(())
}
