//! Integration tests for cairn-ignition: one test per validation rule, the interop corpus
//! checked against the real `ignition-validate`, and translation between spec versions.

mod corpus;
mod parsing;
mod rules;
mod support;
mod translate;
