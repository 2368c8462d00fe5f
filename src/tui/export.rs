//! Writes triggered from the inspector: the report JSON, the plots, the plan plus the
//! mixed-precision ONNX, and the session. Each returns the status-bar message naming what was written (or why not).

use std::path::PathBuf;

use super::app::App;
use crate::session::{self, SaveRequest};

fn target(app: &App, suffix: &str) -> PathBuf {
    app.ctx.export_dir.join(format!("{}{suffix}", app.ctx.session_name))
}

/// `e`: the current report as `NAME.report.json`.
pub fn report(app: &App) -> String {
    let Some(report) = &app.report else { return "no report yet".into() };
    let path = target(app, ".report.json");
    match report.to_json().and_then(|j| crate::store::write_atomic(&path, j.as_bytes())) {
        Ok(()) => format!("report written to {}", path.display()),
        Err(e) => format!("cannot write the report: {e}"),
    }
}

/// `p`: the plots of the selected tensor (error histogram, scatter) and the whole-model charts
/// (error along the order, overflow map) as PNG files in `NAME.plots/`.
pub fn plots(app: &App) -> String {
    let Some(report) = &app.report else { return "no report yet".into() };
    let dir = target(app, ".plots");
    let selected = app.selected_row().map(|r| r.name.clone()).filter(|n| report.tensor(n).is_some());
    let mut note = String::new();
    let pairs = match (&selected, &app.runs) {
        (Some(name), Some((reference, candidate))) => {
            match crate::render::load_pair_from(report, name, reference, candidate) {
                Ok(p) => vec![p],
                Err(e) => {
                    note = format!(" (no plots of {name}: {e})");
                    Vec::new()
                }
            }
        }
        (Some(name), None) => {
            note = format!(" (no plots of {name}: the runs are not available)");
            Vec::new()
        }
        (None, _) => Vec::new(),
    };
    match crate::render::plots::write_all(&dir, crate::render::PlotFormat::Png, report, &pairs, None) {
        Ok(paths) => {
            let names: Vec<String> =
                paths.iter().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
            format!("plots written to {}: {}{note}", dir.display(), names.join(", "))
        }
        Err(e) => format!("cannot write the plots: {e}"),
    }
}

/// `w`: the effective plan as `NAME.plan.toml` and the model rewritten with it as `NAME.mixed.onnx`
/// (with the control-flow specialization of the current report's runs, so the plan's inner nodes
/// exist and a `TensorRT` build marks the same tensors).
pub fn plan(app: &App) -> String {
    let Some(plan) = app.edits.effective() else {
        return format!("the candidate '{}' takes no precision plan", app.ctx.candidate);
    };
    let Some(model_path) = &app.ctx.model else { return "the model is not available".into() };
    let (plan_path, onnx_path) = (target(app, ".plan.toml"), target(app, ".mixed.onnx"));
    // The graph the runs were made from (control flow specialized for their inputs).
    let specialized = app.report.as_ref().map_or(&[][..], |r| &r.specialized[..]);
    let result = crate::model::Model::load(model_path).and_then(|m| {
        let m = crate::model::specialize::apply_to(&m, specialized)?;
        let (bytes, _) = crate::precision::convert_to_bytes(&m, plan)?;
        crate::store::write_atomic(&plan_path, plan.to_toml().as_bytes())?;
        crate::store::write_atomic(&onnx_path, &bytes)
    });
    match result {
        Ok(()) => format!("plan written to {}, mixed-precision model to {}", plan_path.display(), onnx_path.display()),
        Err(e) => format!("cannot write the plan: {e}"),
    }
}

/// `s`: save the session under `sessions_dir/NAME`.
pub fn session(app: &mut App) -> String {
    let (Some(report), Some((reference, candidate))) = (&app.report, &app.runs) else {
        return "nothing to save yet: wait for the comparison to finish".into();
    };
    let Some(model) = &app.ctx.model else { return "the model is not available".into() };
    let req = SaveRequest {
        name: &app.ctx.session_name,
        model,
        model_sha256: &app.ctx.model_sha256,
        reference: &app.ctx.reference,
        candidate: &app.ctx.candidate,
        request: &app.ctx.request,
        plan: app.edits.applied_plan(),
        report,
        reference_run: reference,
        candidate_run: candidate,
        ui: app.ui_state(),
    };
    match session::save(&app.ctx.sessions_dir, &req) {
        Ok(dir) => {
            let msg = format!("session saved to {}", dir.display());
            app.session_dir = Some(dir);
            msg
        }
        Err(e) => format!("cannot save the session: {e}"),
    }
}
