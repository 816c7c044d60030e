//! `cairn config`: translate Butane-compatible YAML to Ignition JSON, validate either.
//! Butane's flags and exit codes: 0 success, 1 an invalid config; messages on stderr.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn_provision::{Diagnostic, Options, Source};
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// YAML → Ignition JSON (several files merge in order; the later wins on conflicts).
    Translate {
        /// Fail on warnings too.
        #[arg(long, short = 's')]
        strict: bool,
        /// Indent the JSON.
        #[arg(long, short = 'p')]
        pretty: bool,
        /// Where `local:` files are read from.
        #[arg(long, short = 'd')]
        files_dir: Option<PathBuf>,
        /// Write the JSON here instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// YAML files, or - for stdin (the default).
        files: Vec<String>,
    },
    /// Print the JSON Schema of the YAML language (for editors).
    Schema,
    /// Check an Ignition JSON config or a YAML config; print every finding.
    Validate {
        #[arg(long, short = 's')]
        strict: bool,
        #[arg(long, short = 'd')]
        files_dir: Option<PathBuf>,
        file: String,
    },
}

/// The bytes of a named file, or of standard input for `-`.
pub fn read_input(name: &str) -> Result<Vec<u8>> {
    if name == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("read standard input")?;
        Ok(bytes)
    } else {
        std::fs::read(name).with_context(|| format!("read {name}"))
    }
}

fn read_source(name: &str) -> Result<Source> {
    let text = String::from_utf8(read_input(name)?)
        .with_context(|| format!("{name} is not UTF-8 text"))?;
    Ok(Source {
        name: name.to_owned(),
        text,
    })
}

fn report(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        eprintln!("{d}");
    }
}

pub fn run(args: ConfigArgs) -> Result<i32> {
    match args.verb {
        Verb::Translate {
            strict,
            pretty,
            files_dir,
            output,
            files,
        } => {
            let names = if files.is_empty() {
                vec!["-".to_owned()]
            } else {
                files
            };
            let options = Options { files_dir };
            let mut configs = Vec::new();
            let mut failed = false;
            let mut only_warnings = true;
            for name in &names {
                let source = read_source(name)?;
                match cairn_provision::translate(&source, &options) {
                    Ok(t) => {
                        report(&t.warnings);
                        failed |= strict && !t.warnings.is_empty();
                        configs.push(t.config);
                    }
                    Err(diagnostics) => {
                        report(&diagnostics);
                        failed = true;
                        only_warnings = false;
                    }
                }
            }
            if failed {
                if only_warnings {
                    eprintln!("error: the config is invalid (--strict makes warnings errors)");
                }
                return Ok(1);
            }
            let config = if configs.len() == 1 {
                configs.remove(0)
            } else {
                let inputs: Vec<(String, serde_json::Value)> =
                    names.iter().cloned().zip(configs.iter().cloned()).collect();
                let merged = cairn_provision::merge::merge_configs(configs);
                if let Err(problems) = check_merged(&merged, &inputs, strict) {
                    for p in problems {
                        eprintln!("{p}");
                    }
                    return Ok(1);
                }
                merged
            };
            let mut json = if pretty {
                serde_json::to_string_pretty(&config)?
            } else {
                serde_json::to_string(&config)?
            };
            json.push('\n');
            match output {
                Some(path) => cairn_store::repo::write_file_atomic(&path, json.as_bytes(), false)
                    .with_context(|| format!("write {}", path.display()))?,
                None => std::io::stdout().lock().write_all(json.as_bytes())?,
            }
            Ok(0)
        }
        Verb::Schema => {
            std::io::stdout()
                .lock()
                .write_all(cairn_provision::schema::yaml_schema_text().as_bytes())?;
            Ok(0)
        }
        Verb::Validate {
            strict,
            files_dir,
            file,
        } => {
            let source = read_source(&file)?;
            if source.text.trim_start().starts_with('{') {
                return Ok(validate_json(&source, strict));
            }
            match cairn_provision::translate(&source, &Options { files_dir }) {
                Ok(t) => {
                    report(&t.warnings);
                    Ok(i32::from(strict && !t.warnings.is_empty()))
                }
                Err(diagnostics) => {
                    report(&diagnostics);
                    Ok(1)
                }
            }
        }
    }
}

/// Validates the merged config; each finding names the input files that set its path
/// (every file was valid alone, so the conflict is between them).
fn check_merged(
    config: &serde_json::Value,
    inputs: &[(String, serde_json::Value)],
    strict: bool,
) -> Result<(), Vec<String>> {
    let (_, _, report) =
        cairn_ignition::parse_value(config).map_err(|e| vec![format!("error: {e}")])?;
    let bad: Vec<String> = report
        .entries
        .iter()
        .filter(|e| strict || matches!(e.severity, cairn_ignition::Severity::Error))
        .map(|e| {
            let pointer: String = e
                .path
                .iter()
                .map(|p| match p {
                    cairn_ignition::PathElem::Key(k) => format!("/{k}"),
                    cairn_ignition::PathElem::Index(i) => format!("/{i}"),
                })
                .collect();
            // The entry's identity (its path or name) is what files share, not its index.
            let entry = config.pointer(&pointer);
            let identity = entry
                .and_then(|v| v.get("path").or_else(|| v.get("name")).or(Some(v)))
                .cloned();
            let from: Vec<&str> = inputs
                .iter()
                .filter(|(_, c)| identity.as_ref().is_some_and(|id| contains(c, id)))
                .map(|(name, _)| name.as_str())
                .collect();
            if from.is_empty() {
                format!("{e} (in the merged config)")
            } else {
                format!("{e} (in the merged config, from {})", from.join(", "))
            }
        })
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad)
    }
}

fn contains(haystack: &serde_json::Value, needle: &serde_json::Value) -> bool {
    haystack == needle
        || match haystack {
            serde_json::Value::Object(m) => m.values().any(|v| contains(v, needle)),
            serde_json::Value::Array(a) => a.iter().any(|v| contains(v, needle)),
            _ => false,
        }
}

/// Ignition JSON: every finding as `FILE: error at $.path: message`.
fn validate_json(source: &Source, strict: bool) -> i32 {
    match cairn_ignition::parse(source.text.as_bytes()) {
        Ok((_, _, report)) => {
            for entry in &report.entries {
                eprintln!("{}: {entry}", source.name);
            }
            let errors = report
                .entries
                .iter()
                .any(|e| strict || matches!(e.severity, cairn_ignition::Severity::Error));
            i32::from(errors)
        }
        Err(e) => {
            eprintln!("{}: error: {e}", source.name);
            1
        }
    }
}
