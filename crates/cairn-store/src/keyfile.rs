//! The repository `config` file: a GLib key file, read and rewritten as OSTree does.
//!
//! Groups keep their order and their keys keep theirs, so that editing a remote leaves
//! the rest of the file as it was; a blank line separates groups, as GKeyFile writes.

use std::fmt::Write as _;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyFile {
    /// Lines before the first group (comments), kept verbatim.
    preamble: Vec<String>,
    groups: Vec<Group>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    name: String,
    /// Either `key=value` entries or comment lines, in file order.
    entries: Vec<Line>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Line {
    Entry(String, String),
    Comment(String),
}

impl KeyFile {
    /// Parses a key file; `Err` names the line that is neither a group, an entry nor a comment.
    pub fn parse(text: &str) -> Result<KeyFile, String> {
        let mut kf = KeyFile::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if line.starts_with('#') {
                match kf.groups.last_mut() {
                    Some(g) => g.entries.push(Line::Comment(raw.to_owned())),
                    None => kf.preamble.push(raw.to_owned()),
                }
            } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                kf.groups.push(Group {
                    name: name.to_owned(),
                    entries: Vec::new(),
                });
            } else if let Some((k, v)) = line.split_once('=') {
                let group = kf
                    .groups
                    .last_mut()
                    .ok_or_else(|| format!("line {}: key outside any [group]", i + 1))?;
                group
                    .entries
                    .push(Line::Entry(k.trim().to_owned(), v.trim_start().to_owned()));
            } else {
                return Err(format!(
                    "line {}: {raw:?} is not a group, key=value or comment",
                    i + 1
                ));
            }
        }
        Ok(kf)
    }

    pub fn get(&self, group: &str, key: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|g| g.name == group)?
            .entries
            .iter()
            .rev()
            .find_map(|l| match l {
                Line::Entry(k, v) if k == key => Some(v.as_str()),
                _ => None,
            })
    }

    /// A boolean as GKeyFile reads it (`true`/`false`, `1`/`0`).
    pub fn get_bool(&self, group: &str, key: &str) -> Option<bool> {
        match self.get(group, key)? {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }

    pub fn set(&mut self, group: &str, key: &str, value: &str) {
        let g = match self.groups.iter_mut().position(|g| g.name == group) {
            Some(i) => &mut self.groups[i],
            None => {
                self.groups.push(Group {
                    name: group.to_owned(),
                    entries: Vec::new(),
                });
                self.groups.last_mut().expect("just pushed")
            }
        };
        for line in &mut g.entries {
            if let Line::Entry(k, v) = line {
                if k == key {
                    *v = value.to_owned();
                    return;
                }
            }
        }
        g.entries
            .push(Line::Entry(key.to_owned(), value.to_owned()));
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g.name == group)
    }

    pub fn remove_group(&mut self, group: &str) -> bool {
        let before = self.groups.len();
        self.groups.retain(|g| g.name != group);
        before != self.groups.len()
    }

    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|g| g.name.as_str())
    }

    /// The keys and values of a group, in file order.
    pub fn entries(&self, group: &str) -> Vec<(&str, &str)> {
        self.groups
            .iter()
            .filter(|g| g.name == group)
            .flat_map(|g| g.entries.iter())
            .filter_map(|l| match l {
                Line::Entry(k, v) => Some((k.as_str(), v.as_str())),
                Line::Comment(_) => None,
            })
            .collect()
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for line in &self.preamble {
            let _ = writeln!(out, "{line}");
        }
        for (i, g) in self.groups.iter().enumerate() {
            if i > 0 || !self.preamble.is_empty() {
                out.push('\n');
            }
            let _ = writeln!(out, "[{}]", g.name);
            for line in &g.entries {
                match line {
                    Line::Entry(k, v) => {
                        let _ = writeln!(out, "{k}={v}");
                    }
                    Line::Comment(c) => {
                        let _ = writeln!(out, "{c}");
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_ostree_config() {
        let text = "[core]\nrepo_version=1\nmode=archive-z2\n\n[remote \"origin\"]\nurl=http://127.0.0.1:8080/repo\ngpg-verify=false\n";
        let kf = KeyFile::parse(text).unwrap();
        assert_eq!(kf.to_text(), text);
        assert_eq!(
            kf.get("remote \"origin\"", "url"),
            Some("http://127.0.0.1:8080/repo")
        );
        assert_eq!(kf.get_bool("remote \"origin\"", "gpg-verify"), Some(false));
        assert!(KeyFile::parse("orphan=1\n").is_err());
    }
}
