//! The job popup while a comparison runs: a progress bar, the elapsed time and the log tail.
//! The UI stays live underneath; `esc` cancels.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::widgets::{Block, Borders, Clear, Gauge, Paragraph};

use crate::tui::app::{App, BuildState};

/// Draw the popup.
pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let BuildState::Running { label, progress } = &app.build else { return };
    let popup = super::centered(area, 72, 9);
    frame.render_widget(Clear, popup);
    let block =
        Block::default().borders(Borders::ALL).title(format!(" {label} · {:.1} s · esc cancels ", app.job_seconds()));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let [g, log] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
    frame.render_widget(
        Gauge::default().gauge_style(Style::default().fg(Color::Cyan)).ratio(progress.clamp(0.0, 1.0)),
        g,
    );
    let tail: Vec<String> = app.log.iter().rev().take(log.height as usize).rev().cloned().collect();
    frame.render_widget(Paragraph::new(tail.join("\n")).style(Style::default().fg(Color::DarkGray)), log);
}
