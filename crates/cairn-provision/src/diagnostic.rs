//! Errors and warnings that point at the YAML: file, line, column, the YAML path, and the
//! offending line shown with a caret, as a compiler would.

use std::fmt;

use crate::yaml::Mark;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// The file as the user named it (`-` for standard input).
    pub file: String,
    pub mark: Mark,
    /// `$.storage.files.0.path`, with the keys as written in the YAML.
    pub yaml_path: String,
    /// The source line the mark is on.
    pub line_text: String,
}

impl Diagnostic {
    pub fn new(
        severity: Severity,
        message: impl Into<String>,
        source: &Source,
        mark: Mark,
        yaml_path: &str,
    ) -> Diagnostic {
        Diagnostic {
            severity,
            message: message.into(),
            file: source.name.clone(),
            mark,
            yaml_path: yaml_path.to_owned(),
            line_text: source
                .text
                .lines()
                .nth(mark.line.saturating_sub(1))
                .unwrap_or("")
                .to_owned(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{kind}: {}", self.message)?;
        write!(
            f,
            "  --> {}:{}:{}",
            self.file, self.mark.line, self.mark.column
        )?;
        if !self.yaml_path.is_empty() {
            write!(f, " at {}", self.yaml_path)?;
        }
        if !self.line_text.is_empty() {
            let number = self.mark.line.to_string();
            let pad = " ".repeat(number.len());
            let caret = " ".repeat(self.mark.column.saturating_sub(1));
            write!(
                f,
                "\n{pad} |\n{number} | {}\n{pad} | {caret}^",
                self.line_text
            )?;
        }
        Ok(())
    }
}

/// A YAML source: its name for messages and its text.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
}
