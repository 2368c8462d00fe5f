//! `trtlens inspect`: the terminal UI (ratatui + crossterm) over the engine.
//!
//! The split follows the usual core/UI separation: [`app::App`] holds owned state and changes
//! only in [`app::App::update`]; [`views`] draw an `&App`; [`keys`] turns key events into
//! [`action::Action`]s from a data table; comparisons run as child processes
//! (`trtlens worker`, [`jobs`]) whose events reach the app over a channel. Nothing outside this
//! module imports ratatui or crossterm.

pub mod action;
pub mod app;
pub mod edits;
pub mod export;
pub mod jobs;
pub mod keys;
pub mod rows;
pub mod views;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::{
    self, DisableMouseCapture, EnableMouseCapture, Event, KeyEventKind, MouseButton, MouseEventKind,
};
use crossterm::execute;
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use action::{Action, Command};
use app::{App, Context};
use keys::KeyMap;

use crate::error::{Error, Result};
use crate::precision::Plan;

/// How the inspector is started.
#[derive(Debug, Clone)]
pub struct Launch {
    /// A model (`.onnx`) or a session directory.
    pub target: PathBuf,
    /// The comparison (for a model target): sides, inputs, tolerances, runner options. Its plan and
    /// `save_runs` are ignored (the plan is [`Launch::plan`]; jobs keep their runs in a scratch folder).
    pub request: crate::compare::CompareRequest,
    /// The candidate's plan (for plan-taking candidates; `None` = all FP16).
    pub plan: Option<Plan>,
    /// After the first comparison, keep the predicted FP32 islands and rebuild.
    pub keep_fp32_predicted: Option<crate::precision::predict::Predict>,
    /// Session name (default: the model's file stem, or the reopened session's name).
    pub session_name: Option<String>,
    /// Where sessions are saved.
    pub sessions_dir: PathBuf,
    /// Where `e`, `p` and `w` write.
    pub export_dir: PathBuf,
    /// The `trtlens` executable for jobs (default: this executable).
    pub exe: Option<PathBuf>,
}

fn scratch() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("trtlens-inspect-")
        .tempdir()
        .map_err(|e| Error::store(std::env::temp_dir(), format!("cannot create a scratch directory: {e}")))
}

/// Build the app for a launch without touching the terminal: a model starts the first comparison
/// in the background; a session opens with its saved report, runs and UI state (nothing re-runs).
pub fn start(launch: &Launch, keymap: &KeyMap) -> Result<App> {
    let work = scratch()?;
    let exe = match &launch.exe {
        Some(e) => e.clone(),
        None => {
            std::env::current_exe().map_err(|e| Error::usage(format!("cannot locate the trtlens executable: {e}")))?
        }
    };
    let mut app = if crate::session::is_session(&launch.target) {
        let (s, model) = crate::session::load_with_model(&launch.target)?;
        let request = s.file.request()?.clone();
        let takes = matches!(request.candidate, crate::compare::source::SideSpec::Runner(k) if k.takes_plan());
        let ctx = Context {
            model: s.model.clone(),
            model_sha256: s.file.model.sha256.clone(),
            graph: model.map(|m| m.graph),
            reference: s.file.reference.clone(),
            candidate: s.file.candidate.clone(),
            candidate_takes_plan: takes,
            request,
            exe,
            sessions_dir: launch
                .target
                .parent()
                .map_or_else(|| launch.sessions_dir.clone(), std::path::Path::to_path_buf),
            export_dir: launch.export_dir.clone(),
            session_name: launch.session_name.clone().unwrap_or_else(|| s.file.name.clone()),
            work_dir: work.path().to_path_buf(),
        };
        let mut app = App::new(ctx, s.plan.clone(), keymap.help());
        app.session_dir = Some(s.dir.clone());
        app.set_report(s.report, Some((s.reference_run, s.candidate_run)));
        app.restore_ui(&s.file.ui);
        app.status = Some(format!("session {} reopened (nothing re-run)", s.file.name));
        app
    } else {
        let model = crate::model::Model::load(&launch.target)?;
        let mut request = launch.request.clone();
        request.model = Some(std::path::absolute(&launch.target).unwrap_or_else(|_| launch.target.clone()));
        request.runner_options.plan = None;
        request.runner_options.plan_label = None;
        request.save_runs = None;
        let takes = matches!(request.candidate, crate::compare::source::SideSpec::Runner(k) if k.takes_plan());
        if launch.plan.is_some() && !takes {
            let takers: Vec<&str> =
                crate::runner::registry::all().iter().filter(|e| e.takes_plan).map(|e| e.name).collect();
            return Err(Error::usage(format!(
                "a precision plan applies to a --candidate that takes one ({})",
                takers.join(", ")
            )));
        }
        let plan =
            takes.then(|| launch.plan.clone().unwrap_or_else(|| Plan::uniform(crate::precision::Precision::Fp16)));
        // A plan may name nodes inside If branches that the runs will inline (control-flow
        // specialization): with Ifs in the graph, the first job checks the plan instead.
        if let Some(p) = &plan
            && !model.graph.nodes.iter().any(|n| n.op_type == "If")
        {
            p.resolve_nodes(&model.graph)?;
        }
        let stem = launch.target.file_stem().map_or_else(|| "session".into(), |s| s.to_string_lossy().into_owned());
        let session_name = launch.session_name.clone().unwrap_or(stem);
        crate::session::validate_name(&session_name)?;
        let ctx = Context {
            model: Some(launch.target.clone()),
            model_sha256: model.sha256.clone(),
            graph: Some(model.graph),
            reference: request.reference.describe(),
            candidate: request.candidate.describe(),
            candidate_takes_plan: takes,
            request,
            exe,
            sessions_dir: launch.sessions_dir.clone(),
            export_dir: launch.export_dir.clone(),
            session_name,
            work_dir: work.path().to_path_buf(),
        };
        if launch.keep_fp32_predicted.is_some() && !takes {
            return Err(Error::usage(format!(
                "--keep-fp32-predicted applies to a --candidate that takes a plan ({})",
                crate::runner::registry::plan_takers()
            )));
        }
        let mut app = App::new(ctx, plan, keymap.help());
        app.predict = launch.keep_fp32_predicted;
        app.update(Action::Cmd(Command::Rebuild));
        app
    };
    app.hints = hints(keymap);
    app.work_guard = Some(work);
    Ok(app)
}

fn hints(k: &KeyMap) -> String {
    [
        (Command::Help, "help"),
        (Command::FirstDivergence, "first divergence"),
        (Command::TogglePrecision, "FP16/FP32"),
        (Command::Rebuild, "rebuild"),
        (Command::SaveSession, "save"),
        (Command::Search, "search"),
        (Command::Quit, "quit"),
    ]
    .iter()
    .map(|(c, t)| format!("{} {t}", k.first_key(*c)))
    .collect::<Vec<_>>()
    .join("  ")
}

fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), DisableMouseCapture, LeaveAlternateScreen, crossterm::cursor::Show);
}

/// Run the UI until quit. The terminal is restored on every exit path, panics included.
pub fn run(mut app: App, keymap: &KeyMap) -> Result<()> {
    let term_err = |e: std::io::Error| Error::usage(format!("terminal: {e}"));
    enable_raw_mode().map_err(term_err)?;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    let result = (|| {
        execute!(std::io::stdout(), EnterAlternateScreen, EnableMouseCapture).map_err(term_err)?;
        let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout())).map_err(term_err)?;
        if let Ok(s) = terminal.size() {
            app.update(Action::Resize(s.width, s.height));
        }
        event_loop(&mut terminal, &mut app, keymap).map_err(term_err)
    })();
    restore_terminal();
    let _ = std::io::stdout().flush();
    result
}

fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>,
    app: &mut App,
    keymap: &KeyMap,
) -> std::io::Result<()> {
    let mut areas = views::Areas::default();
    // For the end-to-end test that proves a panic restores the terminal.
    let panic_after_draw = std::env::var_os("TRTLENS_TEST_PANIC_AFTER_DRAW").is_some();
    loop {
        app.tick();
        terminal.draw(|f| areas = views::draw(f, app))?;
        assert!(!panic_after_draw, "TRTLENS_TEST_PANIC_AFTER_DRAW is set: panicking on purpose");
        if app.quit {
            return Ok(());
        }
        if !event::poll(Duration::from_millis(100))? {
            continue;
        }
        match event::read()? {
            Event::Key(k) if k.kind == KeyEventKind::Press => {
                if let Some(a) = keymap.action(&k, app.search.is_some()) {
                    app.update(a);
                }
            }
            Event::Mouse(m) => match m.kind {
                MouseEventKind::ScrollDown => app.update(Action::Scroll(3)),
                MouseEventKind::ScrollUp => app.update(Action::Scroll(-3)),
                MouseEventKind::Down(MouseButton::Left) => {
                    if m.row == areas.table.y + 1 {
                        if let Some(c) = views::table::column_at(app, areas.table, m.column) {
                            app.update(Action::SortBy(c));
                        }
                    } else if let Some(p) = views::table::row_at(app, areas.table, m.row) {
                        app.update(Action::Select(p));
                    }
                }
                _ => {}
            },
            Event::Resize(w, h) => app.update(Action::Resize(w, h)),
            _ => {}
        }
    }
}
