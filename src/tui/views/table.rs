//! The layer table: one row per compared tensor with index, name, op, precision (and who set it),
//! shape, max abs error, mismatch %, cosine, what the last rebuild changed, and flags. Only the
//! visible window of rows is built, so 50,000 rows draw as fast as 50.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row as TRow, Table};

use super::{num, severity_style};
use crate::tui::app::{App, BuildState};
use crate::tui::edits::Change;
use crate::tui::rows::Column;

/// Narrowest the tensor column gets before other columns are dropped.
const NAME_MIN: u16 = 14;
/// Narrowest the flags column gets.
const FLAGS_MIN: u16 = 10;

/// Columns shown at a width, with their widths: fixed columns are dropped (cosine, shape, mismatch,
/// op) until the tensor and flags columns get their minimum; then the tensor column takes what its
/// longest (prefix-free) name needs, up to everything the flags do not need.
fn columns(width: u16, app: &App) -> Vec<(Column, u16)> {
    let mut fixed = vec![
        (Column::Index, 4),
        (Column::Op, 11),
        (Column::Precision, 10),
        (Column::Shape, 11),
        (Column::MaxAbs, 8),
        (Column::Mismatch, 6),
        (Column::Cosine, 8),
    ];
    let used = |f: &[(Column, u16)]| f.iter().map(|(_, w)| w + 1).sum::<u16>() + 2 + 2;
    for d in [Column::Cosine, Column::Shape, Column::Mismatch, Column::Op] {
        if used(&fixed) + NAME_MIN + FLAGS_MIN <= width {
            break;
        }
        fixed.retain(|(c, _)| *c != d);
    }
    let free = width.saturating_sub(used(&fixed));
    // "▶ " marks the first divergence.
    let first = app.report.as_ref().and_then(|r| r.first_divergence.as_deref());
    let marked = first.map_or(0, |f| f.strip_prefix(app.name_prefix.as_str()).unwrap_or(f).chars().count() + 2);
    let name_need = u16::try_from(app.name_width.max(marked)).unwrap_or(u16::MAX).max(NAME_MIN);
    let flags_need = app
        .visible
        .iter()
        .map(|&i| app.rows[i].flags.join(" ").chars().count())
        .max()
        .map_or(FLAGS_MIN, |n| u16::try_from(n).unwrap_or(u16::MAX).max(FLAGS_MIN));
    let name = name_need.min(free.saturating_sub(FLAGS_MIN.min(flags_need))).max(NAME_MIN.min(free));
    let flags = free.saturating_sub(name);
    let mut cols: Vec<(Column, u16)> = Vec::with_capacity(fixed.len() + 2);
    for (c, w) in fixed {
        cols.push((c, w));
        if c == Column::Index {
            cols.push((Column::Name, name));
        }
    }
    cols.push((Column::Flags, flags));
    cols
}

/// Draw the table.
pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let title = format!(
        " layers {}/{}{}{} ",
        app.visible.len(),
        app.rows.len(),
        if app.filter.is_empty() { "" } else { " (filtered)" },
        match app.sort {
            (Column::Index, false) => String::new(),
            (c, d) => format!(" sort {} {}", c.title(), if d { "↓" } else { "↑" }),
        }
    );
    let title = if app.name_prefix.is_empty() {
        title
    } else {
        // Every name starts with the prefix: shown once here, dropped from the rows.
        let room = usize::from(area.width).saturating_sub(title.chars().count() + 6).max(8);
        format!("{title}· {} ", crate::text::elide_left(&app.name_prefix, room))
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    if app.rows.is_empty() {
        let msg = match &app.build {
            BuildState::Running { label, .. } => format!("{label}: running…"),
            BuildState::Searching(line) => format!("search: {line}"),
            BuildState::Failed(e) => format!("the comparison failed:\n{e}\n\nr retries · q quits"),
            BuildState::Cancelled => "cancelled. r runs the comparison · q quits".to_string(),
            BuildState::Idle if app.report.is_some() => "the report compares no tensors".to_string(),
            BuildState::Idle => "no comparison yet. r runs it · q quits".to_string(),
        };
        frame.render_widget(Paragraph::new(msg).block(block).wrap(ratatui::widgets::Wrap { trim: false }), area);
        return;
    }
    let cols = columns(area.width, app);
    let height = area.height.saturating_sub(3) as usize;
    // Keep the selection inside the window, scrolling as little as possible.
    let mut offset = app.table_offset.get().min(app.visible.len().saturating_sub(1));
    if app.selected < offset {
        offset = app.selected;
    } else if height > 0 && app.selected >= offset + height {
        offset = app.selected + 1 - height;
    }
    app.table_offset.set(offset);
    let first = app.report.as_ref().and_then(|r| r.first_divergence.as_deref());
    let header = TRow::new(cols.iter().map(|(c, _)| {
        let mark = if app.sort.0 == *c { if app.sort.1 { "↓" } else { "↑" } } else { "" };
        Cell::from(format!("{}{mark}", c.title()))
    }))
    .style(Style::default().add_modifier(Modifier::BOLD).fg(Color::Cyan));
    let width_of = |col: Column| cols.iter().find(|(c, _)| *c == col).map_or(0, |(_, w)| *w);
    let (name_width, op_width) = (width_of(Column::Name), width_of(Column::Op));
    let rows = app.visible.iter().enumerate().skip(offset).take(height).map(|(pos, &i)| {
        let r = &app.rows[i];
        let (_, prec) = app.edits.label(r.node.as_deref());
        let pending = prec.ends_with('*');
        let change = app.changes.get(&r.name);
        let cells = cols.iter().map(|(c, _)| match c {
            Column::Index => Cell::from(r.topo.map_or_else(|| "-".into(), |t| t.to_string())),
            Column::Name => {
                let marker = if Some(r.name.as_str()) == first { "▶ " } else { "" };
                let shown = r.name.strip_prefix(app.name_prefix.as_str()).unwrap_or(&r.name);
                let room = usize::from(name_width).saturating_sub(marker.chars().count());
                Cell::from(format!("{marker}{}", crate::text::elide_left(shown, room)))
            }
            Column::Op => Cell::from(crate::text::elide_right(&r.op, usize::from(op_width))),
            Column::Precision => Cell::from(Span::styled(
                prec.clone(),
                if pending {
                    Style::default().fg(Color::Yellow).add_modifier(Modifier::BOLD)
                } else {
                    Style::default()
                },
            )),
            Column::Shape => Cell::from(r.shape.clone()),
            Column::MaxAbs => Cell::from(if r.status.is_some() { num(r.max_abs) } else { "-".into() }),
            Column::Mismatch => {
                Cell::from(if r.mismatch_pct.is_nan() { "-".into() } else { format!("{:.2}", r.mismatch_pct) })
            }
            Column::Cosine => Cell::from(if r.cosine.is_nan() { "-".into() } else { format!("{:.6}", r.cosine) }),
            Column::Flags => {
                let delta = match change {
                    Some(Change::Better) => "↓ ",
                    Some(Change::Worse) => "↑ ",
                    None => "",
                };
                Cell::from(format!("{delta}{}", r.flags.join(" ")))
            }
        });
        let mut style = severity_style(r.severity);
        if change == Some(&Change::Better) && !r.failing() {
            style = style.fg(Color::Green);
        }
        if pos == app.selected {
            style = style.add_modifier(Modifier::REVERSED);
        }
        TRow::new(cells).style(style)
    });
    let widths: Vec<Constraint> = cols.iter().map(|(_, w)| Constraint::Length(*w)).collect();
    frame.render_widget(Table::new(rows, widths).header(header).block(block).column_spacing(1), area);
}

/// The visible-list position under screen row `y` (mouse click), if any.
#[must_use]
pub fn row_at(app: &App, table: Rect, y: u16) -> Option<usize> {
    let first_row = table.y + 2; // border + header
    if y < first_row || y >= table.y + table.height.saturating_sub(1) {
        return None;
    }
    let pos = app.table_offset.get() + usize::from(y - first_row);
    (pos < app.visible.len()).then_some(pos)
}

/// The column whose header is at screen column `x` (header click), if any.
#[must_use]
pub fn column_at(app: &App, table: Rect, x: u16) -> Option<Column> {
    let cols = columns(table.width, app);
    let widths: Vec<Constraint> = cols.iter().map(|(_, w)| Constraint::Length(*w)).collect();
    let inner = Rect { x: table.x + 1, y: table.y, width: table.width.saturating_sub(2), height: 1 };
    let areas = ratatui::layout::Layout::horizontal(widths).spacing(1).split(inner);
    areas.iter().position(|a| x >= a.x && x < a.x + a.width).map(|i| cols[i].0)
}
