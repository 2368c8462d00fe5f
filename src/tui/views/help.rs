//! The help overlay (`?`), generated from the key bindings.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Borders, Cell, Clear, Row, Table};

use crate::tui::app::App;

/// Draw the overlay.
pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let h = (app.help.len() as u16 + 2).min(area.height);
    let popup = super::centered(area, 70, h);
    frame.render_widget(Clear, popup);
    let rows = app
        .help
        .iter()
        .map(|(k, t)| Row::new([Cell::from(k.clone()).style(Style::default().fg(Color::Cyan)), Cell::from(t.clone())]));
    let table = Table::new(rows, [Constraint::Length(20), Constraint::Min(10)]).block(
        Block::default()
            .borders(Borders::ALL)
            .title(" keys (esc or ? closes; rebind in a keys.toml) ")
            .title_style(Style::default().add_modifier(Modifier::BOLD)),
    );
    frame.render_widget(table, popup);
}
