//! Rendering: one view per file, each a pure function of an `&App`. [`draw`] lays the screen out
//! and returns where the table landed, so mouse clicks can be mapped to rows.

pub mod chart;
pub mod detail;
pub mod help;
pub mod progress;
pub mod status;
pub mod table;

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};

use super::app::{App, BuildState};
use super::rows::Severity;

/// Screen areas of the last frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Areas {
    /// The layer table, including its header row.
    pub table: Rect,
}

/// The style of a row's result.
#[must_use]
pub fn severity_style(s: Severity) -> Style {
    match s {
        Severity::Ok => Style::default(),
        Severity::Warn => Style::default().fg(Color::Yellow),
        Severity::Fail => Style::default().fg(Color::Red),
        Severity::NonFinite => Style::default().fg(Color::Magenta).add_modifier(Modifier::BOLD),
        Severity::Missing => Style::default().fg(Color::DarkGray),
    }
}

/// Compact number: `0`, `6.64e-4`, `12.5`, `inf`, `-`.
#[must_use]
pub fn num(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else if x == 0.0 {
        "0".into()
    } else if (1e-2..1e4).contains(&x.abs()) {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{x:.2e}")
    }
}

/// Draw the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App) -> Areas {
    let area = frame.area();
    let [top, middle, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3), Constraint::Length(1)]).areas(area);
    status::draw_bar(frame, top, app);
    status::draw_footer(frame, bottom, app);
    let (main, chart_area) = if app.show_chart && middle.height >= 16 {
        let h = (middle.height / 4).clamp(6, 12);
        let [m, c] = Layout::vertical([Constraint::Min(3), Constraint::Length(h)]).areas(middle);
        (m, Some(c))
    } else {
        (middle, None)
    };
    let (table_area, detail_area) = if app.show_detail {
        if main.width >= 120 {
            let [t, d] = Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)]).areas(main);
            (t, Some(d))
        } else if main.height >= 14 {
            let [t, d] = Layout::default()
                .direction(Direction::Vertical)
                .constraints([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(main);
            (t, Some(d))
        } else {
            (main, None)
        }
    } else {
        (main, None)
    };
    table::draw(frame, table_area, app);
    if let Some(d) = detail_area {
        detail::draw(frame, d, app);
    }
    if let Some(c) = chart_area {
        chart::draw(frame, c, app);
    }
    if matches!(app.build, BuildState::Running { .. }) {
        progress::draw(frame, area, app);
    }
    if app.show_help {
        help::draw(frame, area, app);
    }
    Areas { table: table_area }
}

/// A rectangle of at most `w`×`h` centred in `area`.
#[must_use]
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

#[cfg(test)]
mod tests {
    use super::num;

    #[test]
    fn numbers_are_compact() {
        for (x, s) in [
            (0.0, "0"),
            (6.64e-4, "6.64e-4"),
            (12.5, "12.5"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
            (1.5e5, "1.50e5"),
        ] {
            assert_eq!(num(x), s);
        }
    }
}
