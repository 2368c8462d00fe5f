//! Everything that can change the inspector's state: one [`Action`] enum, consumed only by
//! [`App::update`](super::app::App::update). Key bindings map keys to [`Command`]s (the bindable,
//! data-free actions); the event loop adds the rest (text input, mouse, resize, job events).

use super::jobs::JobEvent;

/// A bindable command. The names (`snake_case`) are the keys of the bindings config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Leave the inspector.
    Quit,
    /// Select the previous row.
    Up,
    /// Select the next row.
    Down,
    /// One page up.
    PageUp,
    /// One page down.
    PageDown,
    /// First row.
    Top,
    /// Last row.
    Bottom,
    /// Jump to the first divergence.
    FirstDivergence,
    /// Next failing row.
    NextFailing,
    /// Previous failing row.
    PrevFailing,
    /// Sort by the next column.
    SortNext,
    /// Reverse the sort order.
    SortReverse,
    /// Show failing rows only (toggle).
    FilterFailing,
    /// Show flagged rows only (toggle).
    FilterFlagged,
    /// Show only rows of the selected row's op type (toggle).
    FilterOp,
    /// Clear every filter.
    ClearFilters,
    /// Incremental search by name.
    Search,
    /// Toggle the selected node FP16/FP32.
    TogglePrecision,
    /// Toggle every node of the selected op type FP16/FP32.
    TogglePrecisionOp,
    /// Rebuild and re-run the candidate with the pending plan.
    Rebuild,
    /// Search, in the background, for the fewest nodes to keep FP32 so the outputs pass; the result
    /// is applied to the plan (marked `FP32 search`) and rebuilt.
    SearchPrecision,
    /// Cancel: close an overlay, stop the search, or cancel the running job.
    Cancel,
    /// Write the report JSON.
    ExportReport,
    /// Write the plots.
    ExportPlots,
    /// Write the plan and the mixed-precision ONNX.
    WritePlan,
    /// Save the session.
    SaveSession,
    /// Show or hide the help overlay.
    Help,
    /// Cycle the chart's metric.
    ChartMetric,
    /// Show or hide the detail pane.
    ToggleDetail,
    /// Show or hide the chart pane.
    ToggleChart,
}

/// One state change.
#[derive(Debug)]
pub enum Action {
    /// A bound command.
    Cmd(Command),
    /// Select row `n` of the visible (filtered, sorted) list.
    Select(usize),
    /// Move the selection by `n` rows (mouse wheel).
    Scroll(i32),
    /// A character typed into the search.
    SearchInput(char),
    /// Delete the last search character.
    SearchBackspace,
    /// Keep the search result and leave search mode.
    SearchConfirm,
    /// Sort by a column (header click); a second click reverses.
    SortBy(super::rows::Column),
    /// The terminal size changed.
    Resize(u16, u16),
    /// An event from the background job.
    Job(JobEvent),
    /// An update of the background precision search.
    Search(super::jobs::SearchUpdate),
}

impl From<Command> for Action {
    fn from(c: Command) -> Action {
        Action::Cmd(c)
    }
}
