//! The Ignition config spec versions this crate reads and writes.

use std::fmt;

/// A supported `ignition.version`. Ordered oldest first, so `>=` asks "has this feature".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V3_0_0,
    V3_1_0,
    V3_2_0,
    V3_3_0,
    V3_4_0,
    V3_5_0,
    V3_6_0,
    /// `3.7.0-experimental`: 3.6.0 plus `virtiofs` filesystems. Subject to change upstream.
    V3_7_0Experimental,
}

impl Version {
    /// The newest stable spec, the one configs are up-translated to.
    pub const LATEST: Version = Version::V3_6_0;

    /// Every supported version, oldest first.
    pub const ALL: [Version; 8] = [
        Version::V3_0_0,
        Version::V3_1_0,
        Version::V3_2_0,
        Version::V3_3_0,
        Version::V3_4_0,
        Version::V3_5_0,
        Version::V3_6_0,
        Version::V3_7_0Experimental,
    ];

    /// The version named exactly by `s`, as Ignition compares them: `3.1.0` is 3.1, `3.1` or
    /// `3.1.0+build` are not supported versions.
    pub fn parse(s: &str) -> Option<Version> {
        Version::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The `ignition.version` string of this spec.
    pub fn as_str(&self) -> &'static str {
        match self {
            Version::V3_0_0 => "3.0.0",
            Version::V3_1_0 => "3.1.0",
            Version::V3_2_0 => "3.2.0",
            Version::V3_3_0 => "3.3.0",
            Version::V3_4_0 => "3.4.0",
            Version::V3_5_0 => "3.5.0",
            Version::V3_6_0 => "3.6.0",
            Version::V3_7_0Experimental => "3.7.0-experimental",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `s` is a semantic version at all (`MAJOR.MINOR.PATCH[-PRE][+BUILD]`), which decides
/// between "invalid" and "unsupported" for a version string this crate does not know.
pub(crate) fn is_semver(s: &str) -> bool {
    let core = s.split_once('+').map_or(s, |(core, _)| core);
    let core = core.split_once('-').map_or(core, |(core, _)| core);
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}
