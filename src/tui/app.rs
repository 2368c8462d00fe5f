//! The inspector's state and its only mutator, [`App::update`]. Nothing here draws: views read an
//! `&App`, and the event loop (or a test) feeds [`Action`]s in. Background comparisons run as
//! `trtlens worker` processes ([`super::jobs`]); their events come back as [`Action::Job`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

use super::action::{Action, Command};
use super::edits::{Change, Edits};
use super::jobs::{CompareJob, JobEvent};
use super::rows::{self, Column, Filter, Row};
use crate::compare::histogram::{ErrorHistogram, abs_error_histogram};
use crate::compare::report::Report;
use crate::model::graph::Graph;
use crate::precision::Plan;

/// Tensors up to this many elements get their error histogram computed inline (a few ms at most);
/// larger ones on a worker thread so a keypress never waits for them.
pub const INLINE_HISTOGRAM: usize = 1 << 21;

/// Which metric the chart draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartMetric {
    /// Largest absolute error.
    MaxAbs,
    /// Mismatching elements, percent.
    Mismatch,
    /// `1 − cosine`.
    OneMinusCosine,
}

impl ChartMetric {
    /// Label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            ChartMetric::MaxAbs => "max abs error",
            ChartMetric::Mismatch => "mismatch %",
            ChartMetric::OneMinusCosine => "1 - cosine",
        }
    }

    fn next(self) -> ChartMetric {
        match self {
            ChartMetric::MaxAbs => ChartMetric::Mismatch,
            ChartMetric::Mismatch => ChartMetric::OneMinusCosine,
            ChartMetric::OneMinusCosine => ChartMetric::MaxAbs,
        }
    }

    fn key(self) -> &'static str {
        match self {
            ChartMetric::MaxAbs => "max_abs",
            ChartMetric::Mismatch => "mismatch",
            ChartMetric::OneMinusCosine => "one_minus_cosine",
        }
    }

    fn from_key(k: &str) -> Option<ChartMetric> {
        [ChartMetric::MaxAbs, ChartMetric::Mismatch, ChartMetric::OneMinusCosine].into_iter().find(|m| m.key() == k)
    }
}

/// The background job as the UI shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildState {
    /// Nothing running.
    Idle,
    /// Running: label and fraction done.
    Running {
        /// What runs.
        label: String,
        /// 0..=1.
        progress: f64,
    },
    /// A precision search runs: its last progress line.
    Searching(String),
    /// The last job failed.
    Failed(String),
    /// The last job was cancelled.
    Cancelled,
}

/// How the inspector was started: what to compare and where things go.
#[derive(Debug, Clone)]
pub struct Context {
    /// The model for rebuilds (`None`: a session whose model is gone; browsing only).
    pub model: Option<PathBuf>,
    /// sha256 of the model.
    pub model_sha256: String,
    /// The analysed graph (for producers, op types and plan resolution).
    pub graph: Option<Graph>,
    /// Reference side spec as given (`tract`, `onnxruntime`, `saved:...`).
    pub reference: String,
    /// Candidate side spec (`cpu-fp16`, ...).
    pub candidate: String,
    /// True when the candidate takes a precision plan (per-layer toggles work).
    pub candidate_takes_plan: bool,
    /// The session's comparison (sides, inputs, tolerances, runner options; without the plan, which
    /// the edits own). The first comparison runs it; rebuilds reuse it with the stored reference run.
    pub request: crate::compare::CompareRequest,
    /// The `trtlens` executable that runs jobs.
    pub exe: PathBuf,
    /// Where sessions are saved (`sessions/`).
    pub sessions_dir: PathBuf,
    /// Where exports are written.
    pub export_dir: PathBuf,
    /// Session name used by save.
    pub session_name: String,
    /// Scratch directory for job runs and reports.
    pub work_dir: PathBuf,
}

/// The inspector state.
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // independent pane toggles, not a state machine
pub struct App {
    /// Static context.
    pub ctx: Context,
    /// The current report (`None` before the first comparison finishes).
    pub report: Option<Report>,
    /// Run directories (reference, candidate) of the current report.
    pub runs: Option<(PathBuf, PathBuf)>,
    /// Table rows of the current report.
    pub rows: Vec<Row>,
    /// The scope prefix every row's name shares (shown once in the table title, dropped from rows).
    pub name_prefix: String,
    /// The widest row name without that prefix, in characters.
    pub name_width: usize,
    /// Visible rows: indices into `rows`.
    pub visible: Vec<usize>,
    /// Selected position in `visible`.
    pub selected: usize,
    /// Sort column and direction.
    pub sort: (Column, bool),
    /// Active filters.
    pub filter: Filter,
    /// The search query while searching (`Some` = search mode), with the selection to restore.
    pub search: Option<(String, usize)>,
    /// The applied plan and the pending edits.
    pub edits: Edits,
    /// What changed per tensor in the last rebuild.
    pub changes: HashMap<String, Change>,
    /// Chart metric.
    pub chart_metric: ChartMetric,
    /// Detail pane shown.
    pub show_detail: bool,
    /// Chart pane shown.
    pub show_chart: bool,
    /// Help overlay shown.
    pub show_help: bool,
    /// Help lines (keys, text), generated from the bindings.
    pub help: Vec<(String, String)>,
    /// The footer's key hints, generated from the bindings.
    pub hints: String,
    /// Background job state.
    pub build: BuildState,
    /// The job's last log lines.
    pub log: VecDeque<String>,
    /// The last status message.
    pub status: Option<String>,
    /// Session directory once saved or reopened.
    pub session_dir: Option<PathBuf>,
    /// Error histograms per tensor (computed when a row is selected: inline for tensors up to
    /// [`INLINE_HISTOGRAM`] elements, on a worker thread above that).
    pub histograms: HashMap<String, Option<ErrorHistogram>>,
    /// Largest tensor (elements) whose histogram is computed inline ([`INLINE_HISTOGRAM`]).
    pub inline_histogram: usize,
    /// Histograms being computed on a worker thread.
    pub histograms_pending: std::collections::HashSet<String>,
    hist_tx: std::sync::mpsc::Sender<HistogramMsg>,
    /// The stored tensors of the current runs, opened once per iteration on a worker thread (their
    /// headers list every tensor: parsing them for each selected row, or on the UI thread when a
    /// large session opens, would cost frames).
    run_files: RunFiles,
    /// Bumped when the report (and so the runs) change: a worker's files for older runs are dropped.
    run_files_gen: u64,
    hist_rx: std::sync::mpsc::Receiver<HistogramMsg>,
    /// Terminal size (rows per page).
    pub size: (u16, u16),
    /// Set by quit.
    pub quit: bool,
    /// Keep the predicted FP32 islands after the first comparison (then rebuild).
    pub predict: Option<crate::precision::predict::Predict>,
    /// Keeps the scratch directory (job runs) alive as long as the app.
    pub work_guard: Option<tempfile::TempDir>,
    /// The control-flow specialization `ctx.graph` has applied (that of the current report's runs).
    pub graph_specialized: Vec<crate::model::specialize::Specialized>,
    /// First table row drawn (kept by the table view so the selection scrolls smoothly).
    pub table_offset: std::cell::Cell<usize>,
    job: Option<CompareJob>,
    jobs_started: usize,
    started: Option<Instant>,
    search_job: Option<super::jobs::SearchJob>,
}

impl App {
    /// A new inspector with no report yet.
    #[must_use]
    pub fn new(ctx: Context, plan: Option<Plan>, help: Vec<(String, String)>) -> App {
        let edits = Edits::new(plan, ctx.graph.as_ref());
        let (hist_tx, hist_rx) = std::sync::mpsc::channel();
        App {
            ctx,
            report: None,
            runs: None,
            rows: Vec::new(),
            name_prefix: String::new(),
            name_width: 0,
            visible: Vec::new(),
            selected: 0,
            sort: (Column::Index, false),
            filter: Filter::default(),
            search: None,
            edits,
            changes: HashMap::new(),
            chart_metric: ChartMetric::MaxAbs,
            show_detail: true,
            show_chart: true,
            show_help: false,
            help,
            hints: "? help  q quit".into(),
            build: BuildState::Idle,
            log: VecDeque::new(),
            status: None,
            session_dir: None,
            histograms: HashMap::new(),
            histograms_pending: std::collections::HashSet::new(),
            inline_histogram: INLINE_HISTOGRAM,
            run_files: RunFiles::Closed,
            run_files_gen: 0,
            hist_tx,
            hist_rx,
            size: (80, 24),
            quit: false,
            predict: None,
            work_guard: None,
            graph_specialized: Vec::new(),
            table_offset: std::cell::Cell::new(0),
            job: None,
            jobs_started: 0,
            started: None,
            search_job: None,
        }
    }

    /// The selected row.
    #[must_use]
    pub fn selected_row(&self) -> Option<&Row> {
        self.visible.get(self.selected).map(|&i| &self.rows[i])
    }

    /// True while a job runs.
    #[must_use]
    pub fn busy(&self) -> bool {
        self.job.is_some() || self.search_job.is_some()
    }

    /// Seconds since the running job started.
    #[must_use]
    pub fn job_seconds(&self) -> f64 {
        self.started.map_or(0.0, |s| s.elapsed().as_secs_f64())
    }

    /// Install a report (initial load, session reopen, or a finished job).
    pub fn set_report(&mut self, report: Report, runs: Option<(PathBuf, PathBuf)>) {
        let keep = self.selected_row().map(|r| r.name.clone());
        self.follow_specialization(&report);
        self.rows = rows::build(&report);
        self.name_prefix = crate::text::shared_scope(self.rows.iter().map(|r| r.name.as_str()));
        let skip = self.name_prefix.len();
        self.name_width = self.rows.iter().map(|r| r.name[skip..].chars().count()).max().unwrap_or(0);
        self.report = Some(report);
        self.runs = runs;
        self.run_files = RunFiles::Closed;
        self.run_files_gen += 1;
        self.histograms.clear();
        self.histograms_pending.clear();
        self.refresh_view(keep.as_deref());
    }

    /// Make the graph the one the report's runs were made from: the model with the report's
    /// control-flow specialization applied, so the nodes of inlined branches can be toggled.
    fn follow_specialization(&mut self, report: &Report) {
        if report.specialized == self.graph_specialized {
            return;
        }
        let Some(path) = &self.ctx.model else { return };
        let graph = crate::model::Model::load(path)
            .and_then(|m| crate::model::specialize::apply_to(&m, &report.specialized))
            .map(|m| m.graph);
        match graph {
            Ok(g) => {
                self.ctx.graph = Some(g);
                self.graph_specialized.clone_from(&report.specialized);
                self.edits.regraph(self.ctx.graph.as_ref());
            }
            Err(e) => self.status = Some(format!("cannot follow the runs' control-flow specialization: {e}")),
        }
    }

    /// Recompute the visible list, keeping `keep` selected when it is still visible.
    pub fn refresh_view(&mut self, keep: Option<&str>) {
        let edits = &self.edits;
        let prec = |r: &Row| edits.label(r.node.as_deref()).0;
        self.visible = rows::view(&self.rows, &self.filter, self.sort.0, self.sort.1, &prec);
        self.selected = keep
            .and_then(|k| self.visible.iter().position(|&i| self.rows[i].name == k))
            .unwrap_or(0)
            .min(self.visible.len().saturating_sub(1));
        self.ensure_histogram();
    }

    /// Poll the background job and histogram workers and apply their results.
    pub fn tick(&mut self) {
        while let Ok(msg) = self.hist_rx.try_recv() {
            let (name, h) = match msg {
                HistogramMsg::Histogram(name, h) => (name, h),
                HistogramMsg::Opened { generation, iteration, files, name, histogram } => {
                    if generation != self.run_files_gen {
                        continue;
                    }
                    let waiting = match std::mem::replace(&mut self.run_files, RunFiles::Closed) {
                        RunFiles::Opening { iteration: it, waiting } if it == iteration => waiting,
                        other => {
                            self.run_files = other;
                            Vec::new()
                        }
                    };
                    if let Some(files) = files {
                        self.run_files = RunFiles::Open { iteration, files: files.clone() };
                        for (n, numel) in waiting {
                            self.histograms_pending.remove(&n);
                            self.histogram_from(&files, n, numel);
                        }
                    } else {
                        for (n, _) in waiting {
                            if self.histograms_pending.remove(&n) {
                                self.histograms.insert(n, None);
                            }
                        }
                    }
                    (name, histogram)
                }
            };
            // A result for a report that was replaced meanwhile is dropped.
            if self.histograms_pending.remove(&name) {
                self.histograms.insert(name, h);
            }
        }
        let events = self.job.as_mut().map(CompareJob::poll).unwrap_or_default();
        for e in events {
            self.update(Action::Job(e));
        }
        let updates = self.search_job.as_mut().map(super::jobs::SearchJob::poll).unwrap_or_default();
        for u in updates {
            self.update(Action::Search(u));
        }
    }

    fn page(&self) -> usize {
        (self.size.1 as usize).saturating_sub(10).max(1)
    }

    fn select(&mut self, pos: usize) {
        self.selected = pos.min(self.visible.len().saturating_sub(1));
        self.ensure_histogram();
    }

    /// Apply one action.
    pub fn update(&mut self, action: Action) {
        match action {
            Action::Cmd(c) => self.command(c),
            Action::Select(p) => self.select(p),
            Action::Scroll(d) => self.select(self.selected.saturating_add_signed(d as isize)),
            Action::SearchInput(ch) => {
                if let Some((q, origin)) = self.search.take() {
                    let q = format!("{q}{ch}");
                    if let Some(p) = rows::find(&self.rows, &self.visible, &q, origin) {
                        self.select(p);
                    }
                    self.status = Some(format!("/{q}"));
                    self.search = Some((q, origin));
                }
            }
            Action::SearchBackspace => {
                if let Some((mut q, origin)) = self.search.take() {
                    q.pop();
                    let p = rows::find(&self.rows, &self.visible, &q, origin).unwrap_or(origin);
                    self.select(p);
                    self.status = Some(format!("/{q}"));
                    self.search = Some((q, origin));
                }
            }
            Action::SearchConfirm => {
                if let Some((q, _)) = self.search.take() {
                    let hit = rows::find(&self.rows, &self.visible, &q, self.selected).is_some();
                    self.status = Some(if hit { format!("found '{q}'") } else { format!("no tensor matches '{q}'") });
                }
            }
            Action::SortBy(c) => {
                self.sort = if self.sort.0 == c { (c, !self.sort.1) } else { (c, default_descending(c)) };
                self.resort();
            }
            Action::Resize(w, h) => self.size = (w, h),
            Action::Job(e) => self.job_event(e),
            Action::Search(u) => self.search_update(u),
        }
    }

    fn resort(&mut self) {
        let keep = self.selected_row().map(|r| r.name.clone());
        self.refresh_view(keep.as_deref());
        self.status = Some(format!("sorted by {} ({})", self.sort.0.title(), if self.sort.1 { "desc" } else { "asc" }));
    }

    #[allow(clippy::too_many_lines)]
    fn command(&mut self, c: Command) {
        let n = self.visible.len();
        match c {
            Command::Quit => self.quit = true,
            Command::Up => self.select(self.selected.saturating_sub(1)),
            Command::Down => self.select(self.selected + 1),
            Command::PageUp => self.select(self.selected.saturating_sub(self.page())),
            Command::PageDown => self.select(self.selected + self.page()),
            Command::Top => self.select(0),
            Command::Bottom => self.select(n.saturating_sub(1)),
            Command::FirstDivergence => self.first_divergence(),
            Command::NextFailing | Command::PrevFailing => {
                let fwd = c == Command::NextFailing;
                let hit = (1..=n)
                    .map(|k| if fwd { (self.selected + k) % n } else { (self.selected + n * 2 - k) % n })
                    .find(|&p| self.rows[self.visible[p]].failing());
                match hit {
                    Some(p) => self.select(p),
                    None => self.status = Some("no failing rows in view".into()),
                }
            }
            Command::SortNext => {
                let i = Column::ALL.iter().position(|&x| x == self.sort.0).unwrap_or(0);
                let next = Column::ALL[(i + 1) % Column::ALL.len()];
                self.sort = (next, default_descending(next));
                self.resort();
            }
            Command::SortReverse => {
                self.sort.1 = !self.sort.1;
                self.resort();
            }
            Command::FilterFailing => {
                self.filter.failing = !self.filter.failing;
                self.refilter();
            }
            Command::FilterFlagged => {
                self.filter.flagged = !self.filter.flagged;
                self.refilter();
            }
            Command::FilterOp => {
                self.filter.op = match (&self.filter.op, self.selected_row()) {
                    (Some(_), _) | (None, None) => None,
                    (None, Some(r)) => Some(r.op.clone()).filter(|o| !o.is_empty()),
                };
                self.refilter();
            }
            Command::ClearFilters => {
                self.filter = Filter::default();
                self.refilter();
            }
            Command::Search => self.search = Some((String::new(), self.selected)),
            Command::TogglePrecision | Command::TogglePrecisionOp => self.toggle(c == Command::TogglePrecisionOp),
            Command::Rebuild => self.rebuild(),
            Command::SearchPrecision => self.start_search(),
            Command::Cancel => self.cancel(),
            Command::ExportReport => self.status = Some(super::export::report(self)),
            Command::ExportPlots => self.status = Some(super::export::plots(self)),
            Command::WritePlan => self.status = Some(super::export::plan(self)),
            Command::SaveSession => self.status = Some(super::export::session(self)),
            Command::Help => self.show_help = !self.show_help,
            Command::ChartMetric => self.chart_metric = self.chart_metric.next(),
            Command::ToggleDetail => self.show_detail = !self.show_detail,
            Command::ToggleChart => self.show_chart = !self.show_chart,
        }
    }

    fn refilter(&mut self) {
        let keep = self.selected_row().map(|r| r.name.clone());
        self.refresh_view(keep.as_deref());
        let f = &self.filter;
        let mut parts = Vec::new();
        if f.failing {
            parts.push("failing".to_string());
        }
        if f.flagged {
            parts.push("flagged".to_string());
        }
        if let Some(o) = &f.op {
            parts.push(format!("op {o}"));
        }
        self.status = Some(if parts.is_empty() {
            format!("no filter: {} rows", self.visible.len())
        } else {
            format!("filter {}: {} of {} rows", parts.join(", "), self.visible.len(), self.rows.len())
        });
    }

    fn first_divergence(&mut self) {
        let Some(first) = self.report.as_ref().and_then(|r| r.first_divergence.clone()) else {
            self.status = Some("no divergence: every tensor is within tolerance".into());
            return;
        };
        if !self.visible.iter().any(|&i| self.rows[i].name == first) && !self.filter.is_empty() {
            self.filter = Filter::default();
            self.refresh_view(None);
        }
        if let Some(p) = self.visible.iter().position(|&i| self.rows[i].name == first) {
            self.select(p);
            self.status = Some(format!("first divergence: {first}"));
        }
    }

    fn toggle(&mut self, whole_op: bool) {
        if !self.ctx.candidate_takes_plan {
            self.status = Some(format!("the candidate '{}' takes no precision plan", self.ctx.candidate));
            return;
        }
        let Some(row) = self.selected_row().cloned() else { return };
        let Some(node) = row.node.clone() else {
            self.status = Some(format!("{} has no producing node", row.name));
            return;
        };
        let graph = self.ctx.graph.as_ref();
        let msg = if whole_op { self.edits.toggle_op(&row.op, graph) } else { self.edits.toggle_node(&node, graph) };
        self.status = Some(msg);
        if self.sort.0 == Column::Precision {
            self.refresh_view(Some(&row.name));
        }
    }

    fn rebuild(&mut self) {
        if self.job.is_some() {
            self.status = Some("a job is already running (esc cancels it)".into());
            return;
        }
        if !self.ctx.candidate_takes_plan && self.runs.is_some() {
            self.status = Some(format!("the candidate '{}' cannot be rebuilt with a plan", self.ctx.candidate));
            return;
        }
        let Some(model) = self.ctx.model.clone() else {
            self.status = Some("the model is not available (session opened for browsing only)".into());
            return;
        };
        self.jobs_started += 1;
        let n = self.jobs_started;
        let runs_dir = self.ctx.work_dir.join(format!("job-{n:04}"));
        let mut request = self.ctx.request.clone();
        request.model = Some(model);
        let label = match &self.runs {
            Some((r, _)) => {
                // The reference is never recomputed: rebuilds compare against the stored run, on its inputs.
                request.reference = crate::compare::source::SideSpec::Saved { path: r.clone(), runner: None };
                request.inputs = crate::inputs::InputOptions::default();
                format!("rebuild {n}")
            }
            None => "reference + candidate".to_string(),
        };
        request.runner_options.plan = self.edits.effective().cloned();
        request.runner_options.plan_label =
            request.runner_options.plan.as_ref().map(|_| format!("inspector plan ({label})"));
        request.keep_fp32_predicted = None;
        match CompareJob::spawn(&self.ctx.exe, &label, request, &runs_dir) {
            Ok(job) => {
                self.job = Some(job);
                self.started = Some(Instant::now());
                self.log.clear();
                self.build = BuildState::Running { label: label.clone(), progress: 0.0 };
                self.status = Some(format!("{label}: started"));
            }
            Err(e) => {
                self.build = BuildState::Failed(e.to_string());
                self.status = Some(e.to_string());
            }
        }
    }

    fn cancel(&mut self) {
        if self.show_help {
            self.show_help = false;
        } else if let Some((_, origin)) = self.search.take() {
            self.select(origin);
            self.status = None;
        } else if let Some(job) = &self.job {
            job.cancel();
            self.status = Some("cancelling...".into());
        } else if let Some(s) = &self.search_job {
            s.cancel();
            self.status = Some("stopping the search after the current run...".into());
        } else {
            self.status = None;
        }
    }

    fn job_event(&mut self, e: JobEvent) {
        match e {
            JobEvent::Log(line) => {
                self.log.push_back(line);
                while self.log.len() > 200 {
                    self.log.pop_front();
                }
            }
            JobEvent::Progress(p) => {
                if let BuildState::Running { progress, .. } = &mut self.build {
                    *progress = p;
                }
            }
            JobEvent::Finished { report, runs_dir } => {
                self.job = None;
                self.build = BuildState::Idle;
                let reference = match &self.runs {
                    Some((r, _)) => r.clone(),
                    None => runs_dir.join("reference"),
                };
                let before = self.report.take();
                let summary = match &before {
                    Some(old) => {
                        self.changes = super::edits::diff(old, &report);
                        super::edits::describe(old, &report, &self.changes)
                    }
                    None => format!(
                        "compared {} tensors: outputs {}/{} pass",
                        report.summary.compared,
                        report.outputs.iter().filter(|o| o.status == crate::compare::report::Status::Pass).count(),
                        report.outputs.len()
                    ),
                };
                self.edits.applied();
                let first = before.is_none();
                self.set_report(*report, Some((reference, runs_dir.join("candidate"))));
                self.status = Some(summary);
                if first && let Some(what) = self.predict.take() {
                    self.keep_predicted(what);
                }
            }
            JobEvent::Failed(msg) => {
                self.job = None;
                self.status = Some(msg.clone());
                self.build = BuildState::Failed(msg);
            }
            JobEvent::Cancelled => {
                self.job = None;
                self.build = BuildState::Cancelled;
                self.status = Some("cancelled; the pending changes are kept (r rebuilds)".into());
            }
        }
    }

    /// Start the precision search in the background: the session's comparison (against the stored
    /// reference run once there is one), the user's plan as the base, the log in the work folder.
    fn start_search(&mut self) {
        if self.busy() {
            self.status = Some("a job is already running (esc cancels it)".into());
            return;
        }
        if !self.ctx.candidate_takes_plan {
            self.status =
                Some(format!("the candidate '{}' takes no precision plan: nothing to search", self.ctx.candidate));
            return;
        }
        let Some(model) = self.ctx.model.clone() else {
            self.status = Some("the model is not available (session opened for browsing only)".into());
            return;
        };
        let mut compare = self.ctx.request.clone();
        compare.model = Some(model);
        if let Some((r, _)) = &self.runs {
            compare.reference = crate::compare::source::SideSpec::Saved { path: r.clone(), runner: None };
            compare.inputs = crate::inputs::InputOptions::default();
        }
        // The base: the user's own overrides (earlier predictions and searches are searched again).
        let mut base = self.edits.effective().cloned();
        if let Some(p) = base.as_mut() {
            p.overrides.retain(|o| o.reason == crate::precision::Reason::User);
        }
        let policy = base.as_ref().map_or_else(Default::default, |p| p.out_of_range);
        compare.runner_options.plan = base;
        compare.runner_options.plan_label = Some("inspector search".into());
        compare.keep_fp32_predicted = None;
        compare.save_runs = None;
        let request = crate::search::SearchRequest {
            compare,
            risk: crate::precision::risk::RiskOptions { policy, ..Default::default() },
            jobs: 1,
            log: Some(self.ctx.work_dir.join("search.jsonl")),
            resume: false,
        };
        self.search_job = Some(super::jobs::SearchJob::spawn(request));
        self.started = Some(Instant::now());
        self.log.clear();
        self.build = BuildState::Searching("starting".into());
        self.status = Some("search: started (esc stops it)".into());
    }

    fn search_update(&mut self, u: super::jobs::SearchUpdate) {
        use super::jobs::SearchUpdate;
        match u {
            SearchUpdate::Line(line) => {
                self.build = BuildState::Searching(line.clone());
                self.log.push_back(line);
                while self.log.len() > 200 {
                    self.log.pop_front();
                }
            }
            SearchUpdate::Done(Ok(outcome)) => {
                self.search_job = None;
                self.build = BuildState::Idle;
                if outcome.kept.is_empty() {
                    self.status = Some(format!("search: {}; the outputs pass as they are", outcome.summary()));
                    return;
                }
                let graph = self.ctx.graph.as_ref();
                self.edits.add_searched(&outcome.kept, graph);
                self.rebuild();
                self.status = Some(format!("search: {} (marked FP32 search); rebuilding", outcome.summary()));
            }
            SearchUpdate::Done(Err(msg)) => {
                self.search_job = None;
                self.status = Some(format!("search: {msg}"));
                self.build = if msg.contains("cancelled") { BuildState::Cancelled } else { BuildState::Failed(msg) };
            }
        }
    }

    /// Keep FP32 the islands the reference run predicts, then rebuild.
    fn keep_predicted(&mut self, what: crate::precision::predict::Predict) {
        let (Some(report), Some(graph)) = (&self.report, &self.ctx.graph) else { return };
        let nodes = crate::precision::predict::nodes_to_keep(graph, report, what);
        if nodes.is_empty() {
            self.status = Some("prediction: every reference tensor fits FP16; nothing to keep FP32".into());
            return;
        }
        let msg = self.edits.add_predicted(nodes, Some(graph));
        self.rebuild();
        self.status = Some(msg);
    }

    fn ensure_histogram(&mut self) {
        let Some(row) = self.selected_row() else { return };
        let (name, numel) = (row.name.clone(), row.numel);
        if self.histograms.contains_key(&name) || self.histograms_pending.contains(&name) {
            return;
        }
        let (Some((r, c)), Some(t)) = (self.runs.clone(), self.report.as_ref().and_then(|rep| rep.tensor(&name)))
        else {
            self.histograms.insert(name, None);
            return;
        };
        let it = t.worst_iteration;
        match &mut self.run_files {
            RunFiles::Open { iteration, files } if *iteration == it => {
                let files = files.clone();
                self.histogram_from(&files, name, numel);
            }
            RunFiles::Opening { iteration, waiting } if *iteration == it => {
                self.histograms_pending.insert(name.clone());
                waiting.push((name, numel));
            }
            _ => {
                // Open (parse both headers) on a worker, with this row's histogram.
                self.run_files = RunFiles::Opening { iteration: it, waiting: Vec::new() };
                self.histograms_pending.insert(name.clone());
                let (tx, generation) = (self.hist_tx.clone(), self.run_files_gen);
                std::thread::spawn(move || {
                    let files = open_runs(&r, &c, it);
                    let histogram = files.as_ref().and_then(|f| histogram_of(f, &name));
                    let _ = tx.send(HistogramMsg::Opened { generation, iteration: it, files, name, histogram });
                });
            }
        }
    }

    /// The histogram of `name` from opened runs: inline for small tensors, else on a worker.
    fn histogram_from(&mut self, files: &OpenedRuns, name: String, numel: usize) {
        let files = files.clone();
        if numel <= self.inline_histogram {
            let h = histogram_of(&files, &name);
            self.histograms.insert(name, h);
        } else {
            let tx = self.hist_tx.clone();
            self.histograms_pending.insert(name.clone());
            std::thread::spawn(move || {
                let h = histogram_of(&files, &name);
                let _ = tx.send(HistogramMsg::Histogram(name, h));
            });
        }
    }

    /// UI state for a saved session.
    #[must_use]
    pub fn ui_state(&self) -> serde_json::Value {
        serde_json::json!({
            "selected": self.selected_row().map(|r| r.name.clone()),
            "sort": self.sort.0.key(),
            "descending": self.sort.1,
            "filter": { "failing": self.filter.failing, "flagged": self.filter.flagged, "op": self.filter.op },
            "chart_metric": self.chart_metric.key(),
            "show_detail": self.show_detail,
            "show_chart": self.show_chart,
            "pending": self.edits.pending_toml(),
        })
    }

    /// Restore UI state saved by [`App::ui_state`] (unknown or missing fields keep defaults).
    pub fn restore_ui(&mut self, ui: &serde_json::Value) {
        if let Some(c) = ui["sort"].as_str().and_then(Column::from_key) {
            self.sort = (c, ui["descending"].as_bool().unwrap_or(false));
        }
        self.filter = Filter {
            failing: ui["filter"]["failing"].as_bool().unwrap_or(false),
            flagged: ui["filter"]["flagged"].as_bool().unwrap_or(false),
            op: ui["filter"]["op"].as_str().map(str::to_string),
        };
        if let Some(m) = ui["chart_metric"].as_str().and_then(ChartMetric::from_key) {
            self.chart_metric = m;
        }
        self.show_detail = ui["show_detail"].as_bool().unwrap_or(true);
        self.show_chart = ui["show_chart"].as_bool().unwrap_or(true);
        if let Some(p) = ui["pending"].as_str() {
            self.edits.restore_pending(p, self.ctx.graph.as_ref());
        }
        let keep = ui["selected"].as_str().map(str::to_string);
        self.refresh_view(keep.as_deref());
    }

    /// Nodes whose precision is pending, by name (for views).
    #[must_use]
    pub fn pending(&self) -> &BTreeMap<String, crate::precision::Precision> {
        self.edits.pending()
    }
}

/// One iteration of the reference and candidate runs, mapped (shared with histogram workers).
type OpenedRuns = std::sync::Arc<(crate::store::MappedTensors, crate::store::MappedTensors)>;

/// The run files histograms read.
#[derive(Debug)]
enum RunFiles {
    /// Not opened.
    Closed,
    /// Being opened on a worker; rows selected meanwhile (name, elements) wait for it.
    Opening { iteration: usize, waiting: Vec<(String, usize)> },
    /// Opened.
    Open { iteration: usize, files: OpenedRuns },
}

/// What histogram workers send back.
enum HistogramMsg {
    /// One tensor's histogram.
    Histogram(String, Option<ErrorHistogram>),
    /// The run files (for runs of generation `generation`), opened, with the histogram of the row
    /// that asked.
    Opened {
        generation: u64,
        iteration: usize,
        files: Option<OpenedRuns>,
        name: String,
        histogram: Option<ErrorHistogram>,
    },
}

/// Map iteration `it` of two stored runs (`None` when either cannot be read).
fn open_runs(r: &std::path::Path, c: &std::path::Path, it: usize) -> Option<OpenedRuns> {
    let (rr, cr) = (crate::store::RunDir::open(r).ok()?, crate::store::RunDir::open(c).ok()?);
    Some(std::sync::Arc::new((rr.tensors(it).ok()?, cr.tensors(it).ok()?)))
}

/// The error histogram of tensor `name` in two mapped runs.
fn histogram_of(files: &OpenedRuns, name: &str) -> Option<ErrorHistogram> {
    let (a, b) = (files.0.view(name)?, files.1.view(name)?);
    abs_error_histogram(a.dtype, a.data, b.dtype, b.data)
}

fn default_descending(c: Column) -> bool {
    matches!(c, Column::MaxAbs | Column::Mismatch | Column::Flags | Column::Shape)
}
