//! What parsing and validation found: errors and warnings, each at a JSON path.

use std::fmt;

/// One step of a JSON path: an object key (Ignition's camelCase name) or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathElem {
    Key(String),
    Index(usize),
}

impl From<&str> for PathElem {
    fn from(key: &str) -> Self {
        PathElem::Key(key.to_owned())
    }
}

impl From<usize> for PathElem {
    fn from(index: usize) -> Self {
        PathElem::Index(index)
    }
}

/// Renders a path the way Ignition prints it: `$.storage.files.0.path`.
pub fn path_to_string(path: &[PathElem]) -> String {
    let mut out = String::from("$");
    for elem in path {
        match elem {
            PathElem::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            PathElem::Index(index) => {
                out.push('.');
                out.push_str(&index.to_string());
            }
        }
    }
    out
}

/// An error makes the config unusable (Ignition refuses it); a warning does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEntry {
    pub severity: Severity,
    pub path: Vec<PathElem>,
    pub message: String,
}

impl ReportEntry {
    /// The entry's path as `$.a.0.b`.
    pub fn path_string(&self) -> String {
        path_to_string(&self.path)
    }
}

impl fmt::Display for ReportEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}: {}",
            self.severity,
            path_to_string(&self.path),
            self.message
        )
    }
}

/// Everything found in one config, in the order it was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub entries: Vec<ReportEntry>,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn errors(&self) -> impl Iterator<Item = &ReportEntry> {
        self.entries
            .iter()
            .filter(|e| e.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &ReportEntry> {
        self.entries
            .iter()
            .filter(|e| e.severity == Severity::Warning)
    }

    pub fn merge(&mut self, other: Report) {
        self.entries.extend(other.entries);
    }

    pub(crate) fn error(&mut self, path: Vec<PathElem>, message: impl Into<String>) {
        self.push(Severity::Error, path, message.into());
    }

    pub(crate) fn warning(&mut self, path: Vec<PathElem>, message: impl Into<String>) {
        self.push(Severity::Warning, path, message.into());
    }

    fn push(&mut self, severity: Severity, path: Vec<PathElem>, message: String) {
        self.entries.push(ReportEntry {
            severity,
            path,
            message,
        });
    }
}

impl fmt::Display for Report {
    /// One line per entry: `error at $.storage.files.0.path: path not absolute`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for entry in &self.entries {
            writeln!(f, "{entry}")?;
        }
        Ok(())
    }
}
