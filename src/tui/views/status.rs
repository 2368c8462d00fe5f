//! The status bar (top: model, reference, candidate and version, tolerance rule, build state,
//! session) and the footer (bottom: search prompt, the last message, or key hints).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::num;
use crate::tui::app::{App, BuildState};

/// The top bar.
pub fn draw_bar(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let model = app
        .ctx
        .model
        .as_ref()
        .and_then(|p| p.file_name())
        .map_or_else(|| app.ctx.session_name.clone(), |f| f.to_string_lossy().into_owned());
    let sep = Span::styled(" │ ", Style::default().fg(Color::DarkGray));
    let mut spans = vec![Span::styled(" trtlens ", Style::default().add_modifier(Modifier::BOLD)), sep.clone()];
    spans.push(Span::raw(model));
    let (reference, candidate, rule) = match &app.report {
        Some(r) => (
            format!("{} {}", r.reference.runner, r.reference.version),
            format!("{} {}", r.candidate.runner, r.candidate.version),
            format!("{} atol {} rtol {}", r.tolerance.rule.name(), num(r.tolerance.atol), num(r.tolerance.rtol)),
        ),
        None => (app.ctx.reference.clone(), app.ctx.candidate.clone(), String::new()),
    };
    spans.extend([
        sep.clone(),
        Span::raw(format!("ref {reference}")),
        sep.clone(),
        Span::raw(format!("cand {candidate}")),
    ]);
    if !rule.is_empty() {
        spans.extend([sep.clone(), Span::raw(rule)]);
    }
    let (build, style) = match &app.build {
        BuildState::Idle if !app.pending().is_empty() => {
            (format!("{} pending", app.pending().len()), Style::default().fg(Color::Yellow))
        }
        BuildState::Idle => ("built".to_string(), Style::default().fg(Color::Green)),
        BuildState::Running { label, progress } => {
            (format!("{label} {:.0}%", progress * 100.0), Style::default().fg(Color::Cyan))
        }
        BuildState::Searching(line) => (format!("search: {line}"), Style::default().fg(Color::Cyan)),
        BuildState::Failed(_) => ("build failed".to_string(), Style::default().fg(Color::Red)),
        BuildState::Cancelled => ("cancelled".to_string(), Style::default().fg(Color::Yellow)),
    };
    spans.extend([sep.clone(), Span::styled(build, style)]);
    if let Some(r) = &app.report {
        let style = if r.verdict == "pass" { Color::Green } else { Color::Red };
        spans.extend([sep.clone(), Span::styled(r.verdict.to_uppercase(), Style::default().fg(style))]);
    }
    let session = app
        .session_dir
        .as_ref()
        .map_or_else(|| format!("{} (unsaved)", app.ctx.session_name), |_| app.ctx.session_name.clone());
    spans.extend([sep, Span::raw(format!("session {session}"))]);
    frame.render_widget(Paragraph::new(Line::from(spans)).style(Style::default().bg(Color::Black)), area);
}

/// The bottom line.
pub fn draw_footer(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let line = if let Some((q, _)) = &app.search {
        Line::from(vec![
            Span::styled("/", Style::default().fg(Color::Cyan)),
            Span::raw(q.clone()),
            Span::styled("▏  enter keeps · esc cancels", Style::default().fg(Color::DarkGray)),
        ])
    } else if let Some(s) = &app.status {
        Line::from(Span::raw(s.clone()))
    } else {
        Line::from(Span::styled(app.hints.clone(), Style::default().fg(Color::DarkGray)))
    };
    frame.render_widget(Paragraph::new(line), area);
}
