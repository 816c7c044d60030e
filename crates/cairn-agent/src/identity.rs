//! Who the agent is to the graph server and the FleetLock server: its node UUID, group and
//! rollout wariness, resolved as Zincati resolves them (`src/identity/mod.rs`).
//!
//! The node UUID, unless configured, is the app-specific machine ID of `/etc/machine-id` for
//! Zincati's application ID, as systemd's `sd_id128_get_machine_app_specific` computes it
//! (`src/libsystemd/sd-id128/sd-id128.c`): HMAC-SHA256 keyed with the 16 machine-ID bytes
//! over the 16 app-ID bytes, the first 16 bytes of the digest, then made a v4 UUID
//! (`byte[6] = byte[6] & 0x0f | 0x40`, `byte[8] = byte[8] & 0x3f | 0x80`). The same value as
//! `systemd-id128 machine-id --app-specific=de35106b6ec24688b63afddaa156679b`, so a machine
//! keeps its identity when it moves from Zincati to cairn.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::IdentitySettings;

/// Zincati's application ID, from which the node UUID is derived.
pub const ZINCATI_APP_ID: [u8; 16] = [
    0xde, 0x35, 0x10, 0x6b, 0x6e, 0xc2, 0x46, 0x88, 0xb6, 0x3a, 0xfd, 0xda, 0xa1, 0x56, 0x67, 0x9b,
];

/// Where systemd keeps the machine ID.
pub const MACHINE_ID_PATH: &str = "/etc/machine-id";

/// Why the identity could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The machine-ID file could not be read.
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The machine ID is not one systemd would accept.
    #[error("{}machine id {content:?} {problem}", in_file(path.as_deref()))]
    BadMachineId {
        /// The file it came from, when read from one.
        path: Option<PathBuf>,
        /// The offending content (at most 64 characters of it).
        content: String,
        problem: MachineIdProblem,
    },
}

fn in_file(path: Option<&Path>) -> String {
    path.map(|path| format!("{}: ", path.display()))
        .unwrap_or_default()
}

/// What is wrong with a machine ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineIdProblem {
    /// Not 32 hexadecimal digits (with or without the dashes of a UUID).
    NotHex,
    /// `uninitialized` or empty: systemd has not committed the machine ID yet.
    Uninitialized,
    /// All zeros, which systemd refuses.
    Null,
}

impl fmt::Display for MachineIdProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MachineIdProblem::NotHex => "is not 32 hexadecimal digits (see machine-id(5))",
            MachineIdProblem::Uninitialized => {
                "is not initialized yet: systemd writes it during the first boot"
            }
            MachineIdProblem::Null => "is all zeros, which systemd refuses",
        })
    }
}

/// The agent's identity, resolved from its settings and the machine ID.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The update group (`identity.group`, default `default`).
    pub group: String,
    /// The node UUID, 32 lowercase hexadecimal digits.
    pub node_uuid: String,
    pub rollout_wariness: RolloutWariness,
}

/// How eager the node is for a rollout: 0.0 (first) to 1.0 (last).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RolloutWariness {
    /// `identity.rollout_wariness`.
    Configured(f64),
    /// Not configured: the value the graph server derives from the node UUID
    /// ([`cairn_graph::wariness_from_node_uuid`]).
    Derived(f64),
}

impl RolloutWariness {
    pub fn value(self) -> f64 {
        match self {
            RolloutWariness::Configured(value) | RolloutWariness::Derived(value) => value,
        }
    }

    /// The `rollout_wariness` query parameter of a graph request, as Zincati sends it: only
    /// when configured (otherwise the server derives it), with six decimals.
    pub fn request_parameter(self) -> Option<String> {
        match self {
            RolloutWariness::Configured(value) => Some(format!("{value:.06}")),
            RolloutWariness::Derived(_) => None,
        }
    }
}

impl Identity {
    /// Resolve the identity: a configured node UUID wins, else it is derived from the
    /// machine ID at `machine_id_path` (read only then); a configured wariness wins, else
    /// the graph server's derivation from the node UUID.
    pub fn resolve(
        settings: &IdentitySettings,
        machine_id_path: &Path,
    ) -> Result<Identity, IdentityError> {
        let node_uuid = match &settings.node_uuid {
            Some(uuid) => uuid.clone(),
            None => node_uuid(&read_machine_id(machine_id_path)?)?,
        };
        let rollout_wariness = match settings.rollout_wariness {
            Some(value) => RolloutWariness::Configured(value),
            None => RolloutWariness::Derived(cairn_graph::wariness_from_node_uuid(&node_uuid)),
        };
        Ok(Identity {
            group: settings.group.clone(),
            node_uuid,
            rollout_wariness,
        })
    }

    /// The `client_params.id` the agent sends to a FleetLock server: the node UUID, lowercase
    /// hexadecimal without dashes, as Zincati sends it (`fleet_lock/mod.rs`, `lower_hex`).
    pub fn fleet_lock_client_id(&self) -> &str {
        &self.node_uuid
    }
}

/// Read a machine-ID file, returning the ID as 32 lowercase hexadecimal digits.
pub fn read_machine_id(path: &Path) -> Result<String, IdentityError> {
    let content = fs::read_to_string(path).map_err(|source| IdentityError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let id = parse_machine_id(&content).map_err(|problem| IdentityError::BadMachineId {
        path: Some(path.to_path_buf()),
        content: truncated(&content),
        problem,
    })?;
    Ok(format_id128(&id))
}

/// The node UUID Zincati derives from `machine_id` (the content of `/etc/machine-id`; a
/// trailing newline is fine): 32 lowercase hexadecimal digits.
pub fn node_uuid(machine_id: &str) -> Result<String, IdentityError> {
    let id = parse_machine_id(machine_id).map_err(|problem| IdentityError::BadMachineId {
        path: None,
        content: truncated(machine_id),
        problem,
    })?;
    Ok(format_id128(&app_specific_id(&id, &ZINCATI_APP_ID)))
}

/// systemd's app-specific ID of `base` for `app_id` (`get_app_specific` in `sd-id128.c`).
pub fn app_specific_id(base: &[u8; 16], app_id: &[u8; 16]) -> [u8; 16] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(base).expect("HMAC takes any key length");
    mac.update(app_id);
    let digest = mac.finalize().into_bytes();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    // Version 4, variant DCE (`id128_make_v4_uuid`).
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

/// A machine ID as systemd reads it: 32 hexadecimal digits or a dashed UUID, then optional
/// trailing whitespace; never `uninitialized`, empty or all zeros.
fn parse_machine_id(content: &str) -> Result<[u8; 16], MachineIdProblem> {
    let trimmed = content.trim_end();
    if trimmed.is_empty() || trimmed == "uninitialized" {
        return Err(MachineIdProblem::Uninitialized);
    }
    let id = parse_hex_id(trimmed).ok_or(MachineIdProblem::NotHex)?;
    if id == [0; 16] {
        return Err(MachineIdProblem::Null);
    }
    Ok(id)
}

/// A 128-bit ID in any form Zincati's parser (the uuid crate) accepts: 32 hexadecimal digits,
/// dashed `8-4-4-4-12`, braced `{…}` or `urn:uuid:…`; any case.
pub fn parse_id128(text: &str) -> Option<[u8; 16]> {
    let inner = if let Some(rest) = text.strip_prefix("urn:uuid:") {
        rest
    } else if let Some(rest) = text.strip_prefix('{') {
        rest.strip_suffix('}')?
    } else {
        text
    };
    parse_hex_id(inner)
}

/// 32 hexadecimal digits, or the dashed `8-4-4-4-12` form.
fn parse_hex_id(text: &str) -> Option<[u8; 16]> {
    let digits: Vec<u8> = match text.len() {
        32 => text.bytes().collect(),
        36 => {
            let dashes_ok = text
                .bytes()
                .enumerate()
                .all(|(i, b)| matches!(i, 8 | 13 | 18 | 23) == (b == b'-'));
            if !dashes_ok {
                return None;
            }
            text.bytes().filter(|&b| b != b'-').collect()
        }
        _ => return None,
    };
    let mut id = [0u8; 16];
    for (byte, pair) in id.iter_mut().zip(digits.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        *byte = u8::try_from(high * 16 + low).ok()?;
    }
    Some(id)
}

/// 32 lowercase hexadecimal digits, no dashes (Zincati's `lower_hex`).
pub fn format_id128(id: &[u8; 16]) -> String {
    id.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn truncated(content: &str) -> String {
    content.chars().take(64).collect()
}
