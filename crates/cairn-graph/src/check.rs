//! Validation of updates metadata against its release index, beyond what parsing checks:
//! what operators run before publishing an edit and what a graph refresh can log.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use crate::wire::{ReleaseIndex, UpdatesMetadata};

/// One thing wrong with a pair of documents. `releases[i]` paths are into the updates
/// metadata unless the message names the release index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON path of the offending field, e.g. `releases[2].metadata.rollout.start_percentage`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found, in document order. Displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CheckError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "updates metadata is not valid ({count} problem{})",
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// Check updates metadata against the release index of the same stream:
/// - both name the same stream;
/// - every version is non-empty, named once, and present in the release index;
/// - `start_percentage` is a number in 0.0..=1.0 (the schema's range);
/// - the release index names every version once, none empty.
///
/// `build` does not require this: like the reference graph builder it serves what it is
/// given (a version missing from the index simply gets no node).
pub fn check_updates(updates: &UpdatesMetadata, index: &ReleaseIndex) -> Result<(), CheckError> {
    let mut problems = Vec::new();
    let mut problem = |path: String, message: String| problems.push(Problem { path, message });

    if updates.stream != index.stream {
        problem(
            "stream".to_string(),
            format!(
                "stream {:?} differs from the release index's {:?}",
                updates.stream, index.stream
            ),
        );
    }

    let mut index_versions: BTreeMap<&str, usize> = BTreeMap::new();
    for (position, release) in index.releases.iter().enumerate() {
        let path = format!("release index releases[{position}].version");
        if release.version.is_empty() {
            problem(path, "empty version".to_string());
        } else if let Some(first) = index_versions.insert(&release.version, position) {
            index_versions.insert(&release.version, first);
            problem(
                path,
                format!(
                    "version {:?} already named at releases[{first}]",
                    release.version
                ),
            );
        }
    }

    let mut seen: HashSet<&str> = HashSet::new();
    for (position, entry) in updates.releases.iter().enumerate() {
        let path = format!("releases[{position}]");
        let version = entry.version.as_str();
        if version.is_empty() {
            problem(format!("{path}.version"), "empty version".to_string());
        } else if !seen.insert(version) {
            problem(
                format!("{path}.version"),
                format!("version {version:?} has more than one entry"),
            );
        } else if !index_versions.contains_key(version) {
            problem(
                format!("{path}.version"),
                format!(
                    "version {version:?} is not in the release index of stream {:?}",
                    index.stream
                ),
            );
        }
        if let Some(value) = entry
            .metadata
            .rollout
            .as_ref()
            .and_then(|rollout| rollout.start_percentage)
        {
            if !(0.0..=1.0).contains(&value) {
                problem(
                    format!("{path}.metadata.rollout.start_percentage"),
                    format!("{value} is outside 0.0..=1.0 (a fraction, despite the name)"),
                );
            }
        }
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(CheckError { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse_release_index, parse_updates};

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let index = parse_release_index(
            r#"{"stream": "stable", "metadata": {"last-modified": ""}, "releases": [
                {"version": "1", "metadata": ""}, {"version": "1", "metadata": ""},
                {"version": "", "metadata": ""}]}"#,
        )
        .unwrap();
        let updates = parse_updates(
            r#"{"stream": "testing", "metadata": {"last-modified": ""}, "releases": [
                {"version": "1", "metadata": {"rollout": {"start_percentage": -0.5}}},
                {"version": "1", "metadata": {}},
                {"version": "9", "metadata": {}},
                {"version": "", "metadata": {}}]}"#,
        )
        .unwrap();
        let error = check_updates(&updates, &index).unwrap_err();
        assert_eq!(
            error.to_string(),
            "updates metadata is not valid (7 problems)
  stream: stream \"testing\" differs from the release index's \"stable\"
  release index releases[1].version: version \"1\" already named at releases[0]
  release index releases[2].version: empty version
  releases[0].metadata.rollout.start_percentage: -0.5 is outside 0.0..=1.0 (a fraction, despite the name)
  releases[1].version: version \"1\" has more than one entry
  releases[2].version: version \"9\" is not in the release index of stream \"stable\"
  releases[3].version: empty version"
        );
    }
}
