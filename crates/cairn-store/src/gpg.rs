//! Verifying OpenPGP signatures as `ostree gpg-sign` writes them: one binary detached
//! signature per key, over the exact bytes of the `.commit` object (or of `summary`),
//! in detached metadata under `ostree.gpgsigs` (`aay`). Fedora signs its commits so.

use std::fs;
use std::path::{Path, PathBuf};

use pgp::types::PublicKeyTrait;
use pgp::{Deserializable, SignedPublicKey, StandaloneSignature};

use crate::gvariant::Value;
use crate::object::Checksum;
use crate::repo::{Error, IoContext, Result};
use crate::sign::{signatures, GPG_KEY};

/// Trusted public keys, from keyring files (binary or ASCII-armored) or directories of them.
#[derive(Debug, Default)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
}

impl Keyring {
    /// Loads every key in `paths`; a directory contributes each file in it, in name order.
    pub fn load(paths: &[PathBuf]) -> Result<Keyring> {
        let mut keyring = Keyring::default();
        for path in paths {
            if path.is_dir() {
                let mut files: Vec<PathBuf> = fs::read_dir(path)
                    .at(path)?
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect();
                files.sort();
                for f in files {
                    keyring.add_file(&f)?;
                }
            } else {
                keyring.add_file(path)?;
            }
        }
        Ok(keyring)
    }

    fn add_file(&mut self, path: &Path) -> Result<()> {
        let data = fs::read(path).at(path)?;
        let bad = |e: pgp::errors::Error| {
            Error::Invalid(format!("{}: not an OpenPGP keyring: {e}", path.display()))
        };
        let keys: Vec<SignedPublicKey> = if data.trim_ascii_start().starts_with(b"-----BEGIN") {
            let (iter, _) = SignedPublicKey::from_armor_many(&data[..]).map_err(bad)?;
            iter.collect::<std::result::Result<_, _>>().map_err(bad)?
        } else {
            SignedPublicKey::from_bytes_many(&data[..])
                .collect::<std::result::Result<_, _>>()
                .map_err(bad)?
        };
        for key in keys {
            match key.verify() {
                Ok(()) => self.keys.push(key),
                Err(e) => tracing::warn!(
                    "{}: skipping a key whose self-signatures do not verify: {e}",
                    path.display()
                ),
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// True when `signature` (one binary OpenPGP signature) is a valid signature of
    /// `data` by a primary key or subkey of this keyring.
    pub fn verifies(&self, signature: &[u8], data: &[u8]) -> bool {
        let Ok(sig) = StandaloneSignature::from_bytes(signature) else {
            return false;
        };
        self.keys.iter().any(|key| {
            sig.verify(&key.primary_key, data).is_ok()
                || key
                    .public_subkeys
                    .iter()
                    .any(|sub| sub.key.is_signing_key() && sig.verify(&sub.key, data).is_ok())
        })
    }
}

/// The verdict on a commit's GPG signatures, as an error naming the commit.
pub fn check_gpg(
    commit: &Checksum,
    detached: &[(String, Value)],
    keyring: &Keyring,
    data: &[u8],
) -> Result<()> {
    if keyring.is_empty() {
        return Err(Error::Invalid(format!(
            "commit {commit}: gpg-verify is on but no trusted key is configured (set gpgkeypath)"
        )));
    }
    let sigs = signatures(detached, GPG_KEY);
    if sigs.is_empty() {
        return Err(Error::Invalid(format!(
            "commit {commit}: no GPG signature (unsigned commit)"
        )));
    }
    if !sigs.iter().any(|s| keyring.verifies(s, data)) {
        return Err(Error::Invalid(format!(
            "commit {commit}: none of its {} GPG signature(s) is by a trusted key",
            sigs.len()
        )));
    }
    Ok(())
}
