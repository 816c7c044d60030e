//! cairn-sysroot's integration tests: the library against real trees on disk.

mod etc_merge;
