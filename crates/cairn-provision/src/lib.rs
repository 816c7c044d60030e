//! cairn's provisioning language: Butane-compatible YAML, translated to Ignition JSON.
//!
//! `yaml` parses with positions, `translate` maps the language onto Ignition (with
//! `sugar` for the variant sections), `merge` joins several files, and `diagnostic`
//! renders every finding against the user's file. See ARCHITECTURE.md for the map.

pub mod diagnostic;
pub mod merge;
pub mod schema;
pub mod sugar;
pub mod translate;
pub mod yaml;

pub use diagnostic::{Diagnostic, Severity, Source};
pub use translate::{translate, Options, Spec, Translated};
