//! The help overlay (`?`), generated from the key bindings. When the list does not fit the
//! terminal's height it flows into two columns, so every binding stays visible down to 80×24.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Borders, Cell, Clear, Row, Table};

use crate::tui::app::App;

fn table(lines: &[(String, String)], key_width: u16) -> Table<'static> {
    let rows: Vec<Row<'static>> = lines
        .iter()
        .map(|(k, t)| Row::new([Cell::from(k.clone()).style(Style::default().fg(Color::Cyan)), Cell::from(t.clone())]))
        .collect();
    Table::new(rows, [Constraint::Length(key_width), Constraint::Min(10)])
}

/// Draw the overlay.
pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let n = app.help.len() as u16;
    let two = n + 2 > area.height;
    let (w, h) = if two { (area.width.min(120), n.div_ceil(2) + 2) } else { (70, n + 2) };
    let popup = super::centered(area, w, h.min(area.height));
    frame.render_widget(Clear, popup);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" keys (esc or ? closes; rebind in a keys.toml) ")
        .title_style(Style::default().add_modifier(Modifier::BOLD));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    if two {
        let half = app.help.len().div_ceil(2);
        let [l, r] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).spacing(1).areas(inner);
        frame.render_widget(table(&app.help[..half], 12), l);
        frame.render_widget(table(&app.help[half..], 12), r);
    } else {
        frame.render_widget(table(&app.help, 20), inner);
    }
}
