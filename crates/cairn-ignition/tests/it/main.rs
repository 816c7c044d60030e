//! Integration tests for cairn-ignition.
