//! The command-line side of shareable results and interop: the `--html/--markdown/--plots` flags
//! (on `report`, `compare`, and for `check` to flatten in), `trtlens report`, `trtlens inputs
//! export`, `trtlens tensors export`, and `convert --format`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::compare::report::Report;
use crate::error::{Error, Result};
use crate::render::{self, Outputs, PlotFormat};

/// `--html FILE --markdown FILE --plots DIR [--format png|svg] [--plot-tensor NAME]`.
#[derive(Debug, Args, Clone, Default)]
pub struct ShareArgs {
    /// Write a self-contained HTML report (plots embedded, no network access needed) here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write a markdown summary (for a pull request or a CI job summary) here.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write the plots into this directory: error.EXT, overflow.EXT, histogram-NAME.EXT, scatter-NAME.EXT.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// File format of the plots.
    #[arg(long, value_enum, default_value_t = PlotFormat::Png, value_name = "png|svg")]
    pub format: PlotFormat,
    /// Tensor whose error histogram and scatter are drawn (repeatable; default: the first
    /// divergence, else the first non-finite tensor, else the worst output).
    #[arg(long = "plot-tensor", value_name = "NAME")]
    pub plot_tensor: Vec<String>,
}

impl ShareArgs {
    /// The library's view of the flags.
    #[must_use]
    pub fn outputs(&self) -> Outputs {
        Outputs {
            html: self.html.clone(),
            markdown: self.markdown.clone(),
            plots: self.plots.clone(),
            format: self.format,
            tensors: self.plot_tensor.clone(),
        }
    }

    /// Usage errors found before any work: a file destination that is a directory, or the reverse.
    pub fn check(&self) -> Result<()> {
        for (flag, p) in [("--html", &self.html), ("--markdown", &self.markdown)] {
            if let Some(p) = p
                && p.is_dir()
            {
                return Err(Error::usage(format!("{flag} {}: is a directory; give a file name", p.display())));
            }
        }
        if let Some(d) = &self.plots
            && d.exists()
            && !d.is_dir()
        {
            return Err(Error::usage(format!("--plots {}: is a file; give a directory", d.display())));
        }
        Ok(())
    }
}

/// Write what `share` asks for from `report` and say where. `pairs` are tensors already loaded;
/// without them the named (or default) tensors are read from the runs the report names.
pub fn write_shared(
    report: &Report,
    share: &ShareArgs,
    pairs: Option<Vec<render::TensorPair>>,
    extras: &render::Extras<'_>,
    quiet: bool,
) -> Result<()> {
    let outputs = share.outputs();
    if outputs.is_empty() {
        return Ok(());
    }
    let (pairs, notes) = match pairs {
        Some(p) => (p, Vec::new()),
        None if outputs.wants_tensors() => render::load_pairs(report, &outputs)?,
        None => (Vec::new(), Vec::new()),
    };
    let mut err = std::io::stderr();
    for n in notes {
        let _ = writeln!(err, "note: {n}");
    }
    let written = render::write(report, &outputs, &pairs, extras)?;
    if !quiet {
        if let Some(dir) = &outputs.plots {
            let names: Vec<String> = written
                .iter()
                .filter(|p| p.parent() == Some(dir.as_path()))
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            let _ = writeln!(err, "plots written to {}: {}", dir.display(), names.join(", "));
        }
        if let Some(p) = &outputs.html {
            let _ = writeln!(err, "HTML report written to {}", p.display());
        }
        if let Some(p) = &outputs.markdown {
            let _ = writeln!(err, "markdown summary written to {}", p.display());
        }
    }
    Ok(())
}

/// For `compare` with plots or HTML: the tensors to draw, read while the runs still exist.
pub fn pairs_for(report: &Report, share: &ShareArgs) -> Result<Option<Vec<render::TensorPair>>> {
    let outputs = share.outputs();
    if !outputs.wants_tensors() {
        return Ok(None);
    }
    let (pairs, notes) = render::load_pairs(report, &outputs)?;
    for n in notes {
        let _ = writeln!(std::io::stderr(), "note: {n}");
    }
    Ok(Some(pairs))
}

/// `trtlens report`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  trtlens report report.json --html report.html --markdown summary.md\n  trtlens report report.json --plots plots --format svg --plot-tensor /fc1/MatMul_output_0\n  trtlens report report.json          # the terminal table again\n\nHistograms and scatters read the tensors from the runs the report names (compare --save-runs DIR,\nor saved: sides)."
)]
pub struct ReportArgs {
    /// A JSON report written by `compare --report` (or `--json`).
    pub report: PathBuf,
    /// What to write.
    #[command(flatten)]
    pub share: ShareArgs,
    /// The candidate's precision plan, shown in the HTML report (default: the plan the report holds).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Show only failing and skipped tensors in the terminal table.
    #[arg(long)]
    pub only_failing: bool,
}

/// Read a report written by `compare`.
pub fn load_report(path: &Path) -> Result<Report> {
    let bytes = std::fs::read(path).map_err(|e| Error::store_io(path, "cannot read the report", e))?;
    let report: Report = serde_json::from_slice(&bytes).map_err(|e| {
        Error::store(path, format!("not a trtlens report ({e}); write one with trtlens compare ... --report FILE"))
    })?;
    if report.schema != crate::compare::report::REPORT_SCHEMA {
        return Err(Error::store(
            path,
            format!(
                "unsupported report schema '{}' (this trtlens reads {})",
                report.schema,
                crate::compare::report::REPORT_SCHEMA
            ),
        ));
    }
    Ok(report)
}

/// `trtlens report`: re-render a saved report. Exit 0 once written (the verdict is in the outputs).
pub fn report_cmd(a: &ReportArgs, quiet: bool, color: bool) -> Result<ExitCode> {
    a.share.check()?;
    let report = load_report(&a.report)?;
    let plan = a.plan.as_deref().map(crate::precision::Plan::load).transpose()?;
    if a.share.outputs().is_empty() {
        let opts = crate::compare::table::TableOptions { color, only_failing: a.only_failing, top: None };
        let _ = write!(std::io::stdout(), "{}", crate::compare::table::render(&report, opts));
        return Ok(ExitCode::SUCCESS);
    }
    let extras = render::Extras { plan: plan.as_ref(), ..render::Extras::default() };
    write_shared(&report, &a.share, None, &extras, quiet)?;
    Ok(ExitCode::SUCCESS)
}

/// `trtlens inputs`.
#[derive(Debug, Args)]
pub struct InputsArgs {
    /// What to do with inputs.
    #[command(subcommand)]
    pub command: InputsCommand,
}

/// `trtlens inputs ...`.
#[derive(Debug, Subcommand)]
pub enum InputsCommand {
    /// Write the inputs of a run (or of any input file) as Polygraphy JSON, .npz, .safetensors, or raw
    /// files for trtexec --loadInputs.
    #[command(
        after_help = "Examples:\n  trtlens inputs export runs/ref --format polygraphy -o inputs.json   # polygraphy run --load-inputs inputs.json\n  trtlens inputs export runs/ref --format raw -o inputs_raw           # prints the trtexec --loadInputs argument\n  trtlens inputs export inputs.json --format npz --iteration 1 -o it1.npz\n\nEvery format reads back bit for bit with --load-inputs (a raw directory included)."
    )]
    Export(InputsExportArgs),
}

/// `trtlens inputs export`.
#[derive(Debug, Args)]
pub struct InputsExportArgs {
    /// A run directory, a raw-inputs directory, or an input file (.npz, .npy, .safetensors, Polygraphy JSON).
    pub source: PathBuf,
    /// Output format.
    #[arg(long, value_enum, value_name = "polygraphy|npz|safetensors|raw")]
    pub format: crate::io::export::InputsFormat,
    /// Output file (a directory for --format raw).
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: PathBuf,
    /// Only this iteration (numbered from 0); required by one-iteration formats when there are several.
    #[arg(long, value_name = "N")]
    pub iteration: Option<usize>,
}

/// `trtlens inputs ...`.
pub fn inputs_cmd(a: &InputsArgs, quiet: bool) -> Result<ExitCode> {
    let InputsCommand::Export(e) = &a.command;
    let iterations = crate::io::export::load_any_inputs(&e.source)?;
    let done = crate::io::export::export_inputs(&iterations, &e.source, e.format, e.iteration, &e.output)?;
    let mut err = std::io::stderr();
    for w in &done.warnings {
        let _ = writeln!(err, "warning: {w}");
    }
    if !quiet {
        let _ = writeln!(
            err,
            "wrote {} ({}, {} iteration(s) of {} input(s))",
            done.path.display(),
            e.format.name(),
            done.iterations,
            done.tensors
        );
    }
    if let Some(arg) = &done.trtexec_arg {
        let _ = writeln!(std::io::stdout(), "{}", crate::precision::export::sh_quote(arg));
    }
    Ok(ExitCode::SUCCESS)
}

/// `trtlens tensors`.
#[derive(Debug, Args)]
pub struct TensorsArgs {
    /// What to do with captured tensors.
    #[command(subcommand)]
    pub command: TensorsCommand,
}

/// `trtlens tensors ...`.
#[derive(Debug, Subcommand)]
pub enum TensorsCommand {
    /// Write the captured tensors of a run as .npz or as Polygraphy run results JSON.
    #[command(
        after_help = "Examples:\n  trtlens tensors export runs/ref --format polygraphy -o ref.json\n  trtlens tensors export runs/cand --format polygraphy -o cand.json\n  polygraphy run --load-outputs cand.json ref.json --atol 1e-2 --rtol 1e-2   # reference second: Polygraphy divides by it\n  trtlens tensors export runs/ref --format npz --outputs-only -o outputs.npz"
    )]
    Export(TensorsExportArgs),
}

/// `trtlens tensors export`.
#[derive(Debug, Args)]
pub struct TensorsExportArgs {
    /// A run directory (trtlens run --save, compare --save-runs).
    pub run: PathBuf,
    /// Output format.
    #[arg(long, value_enum, value_name = "polygraphy|npz")]
    pub format: crate::io::export::TensorsFormat,
    /// Output file.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Only this iteration (numbered from 0); required by .npz when the run has several.
    #[arg(long, value_name = "N")]
    pub iteration: Option<usize>,
    /// Only the graph outputs (default: every captured tensor).
    #[arg(long = "outputs-only")]
    pub outputs_only: bool,
    /// Runner name in the Polygraphy file (default: trtlens-RUNNER-DIRNAME).
    #[arg(long = "runner-name", value_name = "NAME")]
    pub runner_name: Option<String>,
}

/// `trtlens tensors ...`.
pub fn tensors_cmd(a: &TensorsArgs, quiet: bool) -> Result<ExitCode> {
    let TensorsCommand::Export(e) = &a.command;
    let run = crate::store::RunDir::open(&e.run)?;
    let opts = crate::io::export::TensorsExport {
        iteration: e.iteration,
        outputs_only: e.outputs_only,
        runner_name: e.runner_name.clone(),
    };
    let done = crate::io::export::export_run_tensors(&run, e.format, &opts, &e.output)?;
    if !quiet {
        let _ = writeln!(
            std::io::stderr(),
            "wrote {} ({} tensor(s) x {} iteration(s) from {})",
            done.path.display(),
            done.tensors,
            done.iterations,
            e.run.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What `convert` writes (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ConvertFormat {
    /// The mixed-precision ONNX model.
    #[default]
    #[value(
        help = "The mixed-precision ONNX model (Cast nodes and FP16 initializers; TensorRT 11 strongly typed builds)"
    )]
    Onnx,
    /// The `AutoCast` command line.
    #[value(help = "The ModelOpt AutoCast command line (--nodes_to_exclude / --op_types_to_exclude)")]
    Autocast,
    /// `trtexec` flags.
    #[value(help = "trtexec flags for TensorRT 10 and older (--layerPrecisions / --layerOutputTypes)")]
    Trtexec,
}

/// `convert --format autocast|trtexec`: write the arguments and say what they cover.
pub fn convert_to_args(
    format: ConvertFormat,
    model: &crate::model::Model,
    model_arg: &Path,
    plan: &crate::precision::Plan,
    output: &Path,
) -> Result<String> {
    use crate::precision::export;
    let args = match format {
        ConvertFormat::Autocast => {
            let stem = model_arg.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
            let out = model_arg.with_file_name(format!("{stem}.autocast.onnx"));
            export::autocast_args(model, plan, &model_arg.display().to_string(), &out.display().to_string())?
        }
        ConvertFormat::Trtexec => export::trtexec_args(model, plan)?,
        ConvertFormat::Onnx => return Err(Error::usage("--format onnx writes the model, not arguments")),
    };
    crate::store::write_atomic(output, format!("{}\n", args.text).as_bytes())?;
    let mut err = std::io::stderr();
    for w in &args.warnings {
        let _ = writeln!(err, "warning: {w}");
    }
    Ok(format!("{} nodes FP16, {} FP32 named", args.low_precision, args.fp32))
}
