//! Key bindings as data: every [`Command`] has a name, a help text and default keys compiled in;
//! a TOML file can rebind any of them:
//!
//! ```toml
//! [bindings]
//! rebuild = ["r", "ctrl-r"]
//! toggle_precision = ["space", "t"]
//! ```
//!
//! Keys are written `x`, `X`, `ctrl-x`, `alt-x`, or a name: `up down left right pageup pagedown
//! home end enter esc space tab backtab backspace delete f1`…`f12`. The help overlay is generated
//! from the same table.

use std::collections::BTreeMap;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::{Action, Command};
use crate::error::{Error, Result};

/// Every command: config name, help text, default keys.
pub const COMMANDS: &[(Command, &str, &str, &[&str])] = &[
    (Command::Up, "up", "previous row", &["up", "k"]),
    (Command::Down, "down", "next row", &["down", "j"]),
    (Command::PageUp, "page_up", "page up", &["pageup", "ctrl-u"]),
    (Command::PageDown, "page_down", "page down", &["pagedown", "ctrl-d"]),
    (Command::Top, "top", "first row", &["home", "g"]),
    (Command::Bottom, "bottom", "last row", &["end", "G"]),
    (Command::FirstDivergence, "first_divergence", "jump to the first divergence", &["f"]),
    (Command::NextFailing, "next_failing", "next failing row", &["n"]),
    (Command::PrevFailing, "prev_failing", "previous failing row", &["N"]),
    (Command::Search, "search", "search tensor/node names", &["/"]),
    (Command::SortNext, "sort_next", "sort by the next column", &["o"]),
    (Command::SortReverse, "sort_reverse", "reverse the sort order", &["O"]),
    (Command::FilterFailing, "filter_failing", "failing rows only", &["1"]),
    (Command::FilterFlagged, "filter_flagged", "flagged rows only", &["2"]),
    (Command::FilterOp, "filter_op", "rows of the selected op type only", &["3"]),
    (Command::ClearFilters, "clear_filters", "clear filters", &["0"]),
    (Command::TogglePrecision, "toggle_precision", "toggle the selected node FP16/FP32", &["space"]),
    (Command::TogglePrecisionOp, "toggle_precision_op", "toggle every node of the selected op type", &["t"]),
    (Command::Rebuild, "rebuild", "rebuild and re-run the candidate", &["r"]),
    (Command::SearchPrecision, "search_precision", "search the fewest FP32 nodes (background)", &["S"]),
    (Command::Cancel, "cancel", "cancel the job / close / stop search", &["esc"]),
    (Command::ExportReport, "export_report", "write the report JSON", &["e"]),
    (Command::ExportPlots, "export_plots", "write the plots (selected tensor, model)", &["p"]),
    (Command::WritePlan, "write_plan", "write the plan and the mixed-precision ONNX", &["w"]),
    (Command::SaveSession, "save_session", "save the session", &["s"]),
    (Command::ChartMetric, "chart_metric", "chart: max abs / mismatch % / 1-cosine", &["m"]),
    (Command::ToggleDetail, "toggle_detail", "show/hide the detail pane", &["d", "enter"]),
    (Command::ToggleChart, "toggle_chart", "show/hide the chart", &["c"]),
    (Command::Help, "help", "this help", &["?", "f1"]),
    (Command::Quit, "quit", "quit", &["q", "ctrl-c"]),
];

/// A key with modifiers (shift is folded into the character).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    code: KeyCodeKey,
    ctrl: bool,
    alt: bool,
}

/// The comparable part of a key code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum KeyCodeKey {
    Char(char),
    F(u8),
    Named(u8),
}

const NAMED: &[(&str, KeyCode)] = &[
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("pageup", KeyCode::PageUp),
    ("pagedown", KeyCode::PageDown),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
    ("enter", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("tab", KeyCode::Tab),
    ("backtab", KeyCode::BackTab),
    ("backspace", KeyCode::Backspace),
    ("delete", KeyCode::Delete),
];

impl Key {
    /// Parse `ctrl-x`, `alt-x`, `x`, `space`, `f5`, `pageup`, ...
    pub fn parse(spec: &str) -> Result<Key> {
        let bad = || {
            Error::usage(format!("key '{spec}': expected e.g. 'x', 'X', 'ctrl-x', 'alt-x', 'space', 'f5', 'pageup'"))
        };
        let (mut ctrl, mut alt, mut rest) = (false, false, spec);
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                ctrl = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                alt = true;
                rest = r;
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCodeKey::Char(c),
            _ if rest == "space" => KeyCodeKey::Char(' '),
            _ => {
                if let Some(n) =
                    rest.strip_prefix('f').and_then(|n| n.parse::<u8>().ok()).filter(|n| (1..=12).contains(n))
                {
                    KeyCodeKey::F(n)
                } else {
                    let pos = NAMED.iter().position(|(n, _)| *n == rest).ok_or_else(bad)?;
                    KeyCodeKey::Named(pos as u8)
                }
            }
        };
        Ok(Key { code, ctrl, alt })
    }

    /// The key of a terminal event (`None` for keys no binding can name).
    #[must_use]
    pub fn from_event(ev: &KeyEvent) -> Option<Key> {
        let code = match ev.code {
            KeyCode::Char(c) => KeyCodeKey::Char(c),
            KeyCode::F(n) => KeyCodeKey::F(n),
            other => KeyCodeKey::Named(NAMED.iter().position(|(_, k)| *k == other)? as u8),
        };
        Some(Key {
            code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
            alt: ev.modifiers.contains(KeyModifiers::ALT),
        })
    }

    /// How the help overlay shows it.
    #[must_use]
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCodeKey::Char(' ') => "space".to_string(),
            KeyCodeKey::Char(c) => c.to_string(),
            KeyCodeKey::F(n) => format!("F{n}"),
            KeyCodeKey::Named(i) => NAMED.get(i as usize).map_or("?", |(n, _)| n).to_string(),
        };
        format!("{}{}{base}", if self.ctrl { "ctrl-" } else { "" }, if self.alt { "alt-" } else { "" })
    }
}

/// Key → command, plus the help table.
#[derive(Debug, Clone)]
pub struct KeyMap {
    map: BTreeMap<Key, Command>,
    keys: Vec<(Command, Vec<Key>)>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    bindings: BTreeMap<String, Vec<String>>,
}

impl Default for KeyMap {
    fn default() -> KeyMap {
        let keys =
            COMMANDS.iter().map(|(c, _, _, ks)| (*c, ks.iter().filter_map(|k| Key::parse(k).ok()).collect())).collect();
        KeyMap::from_keys(keys)
    }
}

impl KeyMap {
    fn from_keys(keys: Vec<(Command, Vec<Key>)>) -> KeyMap {
        let mut map = BTreeMap::new();
        for (c, ks) in &keys {
            for k in ks {
                map.insert(*k, *c);
            }
        }
        KeyMap { map, keys }
    }

    /// Defaults with the bindings of a TOML file applied (a command listed there gets exactly the
    /// keys given; a key bound twice is an error).
    pub fn from_toml(text: &str) -> Result<KeyMap> {
        let file: KeysFile = toml::from_str(text).map_err(|e| Error::usage(format!("key bindings: {e}")))?;
        let mut keys = KeyMap::default().keys;
        let mut overridden: Vec<Command> = Vec::new();
        for (name, specs) in file.bindings {
            let Some((cmd, ..)) = COMMANDS.iter().find(|(_, n, ..)| *n == name) else {
                let names: Vec<&str> = COMMANDS.iter().map(|(_, n, ..)| *n).collect();
                return Err(Error::usage(format!(
                    "key bindings: unknown command '{name}' (one of {})",
                    names.join(", ")
                )));
            };
            let parsed = specs.iter().map(|s| Key::parse(s)).collect::<Result<Vec<_>>>()?;
            overridden.push(*cmd);
            if let Some(slot) = keys.iter_mut().find(|(c, _)| c == cmd) {
                slot.1 = parsed;
            }
        }
        // A key now bound by a rebound command is taken away from any default that had it.
        let mut seen: BTreeMap<Key, Command> = BTreeMap::new();
        for (c, ks) in keys.iter().filter(|(c, _)| overridden.contains(c)) {
            for k in ks {
                if let Some(other) = seen.insert(*k, *c) {
                    return Err(Error::usage(format!(
                        "key bindings: '{}' is bound to two commands ({other:?}, {c:?})",
                        k.label()
                    )));
                }
            }
        }
        for (c, ks) in &mut keys {
            if !overridden.contains(c) {
                ks.retain(|k| !seen.contains_key(k));
            }
        }
        Ok(KeyMap::from_keys(keys))
    }

    /// Load a bindings file.
    pub fn load(path: &Path) -> Result<KeyMap> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::usage(format!("key bindings {}: {e}", path.display())))?;
        KeyMap::from_toml(&text).map_err(|e| Error::usage(format!("{}: {e}", path.display())))
    }

    /// The command bound to a key.
    #[must_use]
    pub fn command(&self, key: &Key) -> Option<Command> {
        self.map.get(key).copied()
    }

    /// Translate a key event. In search mode, text keys edit the query.
    #[must_use]
    pub fn action(&self, ev: &KeyEvent, searching: bool) -> Option<Action> {
        if searching {
            return match ev.code {
                KeyCode::Enter => Some(Action::SearchConfirm),
                KeyCode::Esc => Some(Action::Cmd(Command::Cancel)),
                KeyCode::Backspace => Some(Action::SearchBackspace),
                KeyCode::Char('c') if ev.modifiers.contains(KeyModifiers::CONTROL) => Some(Action::Cmd(Command::Quit)),
                KeyCode::Char(c) => Some(Action::SearchInput(c)),
                _ => None,
            };
        }
        self.command(&Key::from_event(ev)?).map(Action::Cmd)
    }

    /// Help lines: keys and what they do, in table order.
    #[must_use]
    pub fn help(&self) -> Vec<(String, String)> {
        COMMANDS
            .iter()
            .map(|(c, _, help, _)| {
                let keys = self.keys.iter().find(|(k, _)| k == c).map(|(_, ks)| ks.as_slice()).unwrap_or_default();
                let label = if keys.is_empty() {
                    "(unbound)".to_string()
                } else {
                    keys.iter().map(Key::label).collect::<Vec<_>>().join(" ")
                };
                (label, (*help).to_string())
            })
            .collect()
    }

    /// The first key of a command, for hints (`?` for help).
    #[must_use]
    pub fn first_key(&self, cmd: Command) -> String {
        self.keys.iter().find(|(c, _)| *c == cmd).and_then(|(_, ks)| ks.first()).map_or_else(|| "-".into(), Key::label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn defaults_bind_every_command() {
        let k = KeyMap::default();
        for (c, name, _, defaults) in COMMANDS {
            assert!(!defaults.is_empty(), "{name}");
            for d in *defaults {
                assert_eq!(k.command(&Key::parse(d).expect("default parses")), Some(*c), "{name}: {d}");
            }
        }
        assert!(matches!(
            k.action(&ev(KeyCode::Char(' '), KeyModifiers::NONE), false),
            Some(Action::Cmd(Command::TogglePrecision))
        ));
        assert!(matches!(
            k.action(&ev(KeyCode::Char('c'), KeyModifiers::CONTROL), false),
            Some(Action::Cmd(Command::Quit))
        ));
        assert!(matches!(k.action(&ev(KeyCode::Char('q'), KeyModifiers::NONE), true), Some(Action::SearchInput('q'))));
    }

    #[test]
    fn a_file_rebinds_and_takes_keys_away_from_defaults() -> Result<()> {
        let k = KeyMap::from_toml("[bindings]\nrebuild = [\"ctrl-b\", \"q\"]\nquit = [\"ctrl-q\"]\n")?;
        assert_eq!(k.command(&Key::parse("ctrl-b")?), Some(Command::Rebuild));
        assert_eq!(k.command(&Key::parse("q")?), Some(Command::Rebuild));
        assert_eq!(k.command(&Key::parse("r")?), None, "the default key of a rebound command is gone");
        assert_eq!(k.command(&Key::parse("ctrl-q")?), Some(Command::Quit));
        assert!(k.help().iter().any(|(keys, help)| keys == "ctrl-b q" && help.contains("rebuild")));
        assert!(KeyMap::from_toml("[bindings]\nfly = [\"x\"]\n").is_err());
        assert!(KeyMap::from_toml("[bindings]\nrebuild = [\"ctrl-\"]\n").is_err());
        assert!(KeyMap::from_toml("[bindings]\nrebuild = [\"x\"]\nquit = [\"x\"]\n").is_err());
        Ok(())
    }
}
