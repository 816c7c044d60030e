//! ed25519 commit and summary signatures, as `ostree sign` writes them.
//!
//! A signature is 64 raw bytes over the exact bytes of the `.commit` object (or of
//! `summary`), stored in detached metadata (`.commitmeta`, `summary.sig`) under
//! `ostree.sign.ed25519` as `aay`. Public keys are base64 of 32 bytes; a secret key is
//! base64 of the 32-byte seed followed by the 32-byte public key (libsodium's layout).

use std::fs;
use std::path::Path;

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::gvariant::{self, Type, Value};
use crate::object::{self, Checksum, ObjectType};
use crate::repo::{write_file_atomic, Error, IoContext, Repo, Result};

pub const ED25519_KEY: &str = "ostree.sign.ed25519";
pub const GPG_KEY: &str = "ostree.gpgsigs";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Parses a secret key: base64 of seed ‖ public key (64 bytes), or of the seed alone.
pub fn parse_secret_key(text: &str) -> Result<SigningKey> {
    let raw = b64()
        .decode(text.trim())
        .map_err(|e| Error::Invalid(format!("ed25519 secret key is not base64: {e}")))?;
    match raw.len() {
        64 => {
            let seed: [u8; 32] = raw[..32].try_into().expect("length checked");
            let key = SigningKey::from_bytes(&seed);
            if key.verifying_key().as_bytes() != &raw[32..] {
                return Err(Error::Invalid(
                    "ed25519 secret key: the public half does not match the seed".into(),
                ));
            }
            Ok(key)
        }
        32 => Ok(SigningKey::from_bytes(
            &raw.try_into().expect("length checked"),
        )),
        n => Err(Error::Invalid(format!(
            "ed25519 secret key must be 64 bytes (seed and public key), not {n}"
        ))),
    }
}

pub fn parse_public_key(text: &str) -> Result<VerifyingKey> {
    let raw = b64()
        .decode(text.trim())
        .map_err(|e| Error::Invalid(format!("ed25519 public key is not base64: {e}")))?;
    let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
        Error::Invalid(format!(
            "ed25519 public key must be 32 bytes, not {}",
            raw.len()
        ))
    })?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| Error::Invalid(format!("invalid ed25519 public key: {e}")))
}

/// The base64 forms `ostree sign` uses: (secret = seed ‖ public, public).
pub fn encode_keypair(key: &SigningKey) -> (String, String) {
    let mut secret = key.to_bytes().to_vec();
    secret.extend_from_slice(key.verifying_key().as_bytes());
    (
        b64().encode(secret),
        b64().encode(key.verifying_key().as_bytes()),
    )
}

/// Keys from a file, one base64 key per line (blank lines and `#` comments ignored).
pub fn read_key_lines(path: &Path) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).at(path)?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// Parses detached metadata (`a{sv}`).
pub fn parse_detached(data: &[u8]) -> Result<Vec<(String, Value)>> {
    let ty = Type::parse("a{sv}").expect("static type");
    let v = gvariant::decode(&ty, data)
        .map_err(|e| Error::Invalid(format!("detached metadata: {e}")))?;
    object::parse_metadata_dict(&v)
        .ok_or_else(|| Error::Invalid("detached metadata is not a{sv}".into()))
}

/// Signatures stored under `key` (`aay`) in detached metadata.
pub fn signatures(detached: &[(String, Value)], key: &str) -> Vec<Vec<u8>> {
    match detached.iter().find(|(k, _)| k == key).map(|(_, v)| v) {
        Some(Value::Array(_, items)) => items
            .iter()
            .filter_map(|i| i.as_bytes().map(<[u8]>::to_vec))
            .collect(),
        _ => vec![],
    }
}

/// Adds an ed25519 signature of `signed` to detached metadata, keeping everything else.
pub fn add_signature(detached: &mut Vec<(String, Value)>, key: &SigningKey, signed: &[u8]) {
    let signature = key.sign(signed).to_bytes().to_vec();
    let mut sigs = signatures(detached, ED25519_KEY);
    if !sigs.contains(&signature) {
        sigs.push(signature);
    }
    let value = Value::Array(
        Type::Array(Box::new(Type::Byte)),
        sigs.into_iter().map(Value::Bytes).collect(),
    );
    match detached.iter_mut().find(|(k, _)| k == ED25519_KEY) {
        Some(entry) => entry.1 = value,
        None => detached.push((ED25519_KEY.to_owned(), value)),
    }
}

/// True when at least one signature under `ostree.sign.ed25519` verifies with one of `keys`.
pub fn verify_ed25519(detached: &[(String, Value)], keys: &[VerifyingKey], signed: &[u8]) -> bool {
    signatures(detached, ED25519_KEY).iter().any(|sig| {
        let Ok(sig) = Signature::from_slice(sig) else {
            return false;
        };
        keys.iter().any(|k| k.verify(signed, &sig).is_ok())
    })
}

impl Repo {
    pub fn read_detached_metadata(&self, commit: &Checksum) -> Result<Vec<(String, Value)>> {
        match self.read_metadata(commit, ObjectType::CommitMeta) {
            Ok(data) => parse_detached(&data),
            Err(Error::MissingObject { .. }) => Ok(vec![]),
            Err(e) => Err(e),
        }
    }

    pub fn write_detached_metadata(
        &self,
        commit: &Checksum,
        detached: &[(String, Value)],
    ) -> Result<()> {
        let path = self.object_path(commit, ObjectType::CommitMeta);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).at(dir)?;
        }
        write_file_atomic(&path, &object::metadata_dict(detached).to_bytes(), true)
    }

    /// `ostree sign`: adds one signature per key to the commit's detached metadata.
    pub fn sign_commit(&self, commit: &Checksum, keys: &[SigningKey]) -> Result<()> {
        let data = self.read_metadata(commit, ObjectType::Commit)?;
        let mut detached = self.read_detached_metadata(commit)?;
        for key in keys {
            add_signature(&mut detached, key, &data);
        }
        self.write_detached_metadata(commit, &detached)
    }

    /// Checks a commit's ed25519 signatures; the error says why it is not trusted.
    pub fn verify_commit_ed25519(&self, commit: &Checksum, keys: &[VerifyingKey]) -> Result<()> {
        let data = self.read_metadata(commit, ObjectType::Commit)?;
        let detached = self.read_detached_metadata(commit)?;
        check_ed25519(commit, &detached, keys, &data)
    }

    /// Signs `summary` into `summary.sig`.
    pub fn sign_summary(&self, keys: &[SigningKey]) -> Result<()> {
        let path = self.path().join("summary");
        let summary = fs::read(&path).at(&path)?;
        let sig_path = self.path().join("summary.sig");
        let mut detached = match fs::read(&sig_path) {
            Ok(d) => parse_detached(&d)?,
            Err(_) => vec![],
        };
        for key in keys {
            add_signature(&mut detached, key, &summary);
        }
        write_file_atomic(
            &sig_path,
            &object::metadata_dict(&detached).to_bytes(),
            true,
        )
    }
}

/// The verdict on a commit's ed25519 signatures, as an error naming the commit.
pub fn check_ed25519(
    commit: &Checksum,
    detached: &[(String, Value)],
    keys: &[VerifyingKey],
    data: &[u8],
) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::Invalid(format!(
            "commit {commit}: ed25519 verification is on but no public key is configured"
        )));
    }
    let sigs = signatures(detached, ED25519_KEY);
    if sigs.is_empty() {
        return Err(Error::Invalid(format!(
            "commit {commit}: no ed25519 signature (unsigned commit)"
        )));
    }
    if !verify_ed25519(detached, keys, data) {
        return Err(Error::Invalid(format!(
            "commit {commit}: none of its {} ed25519 signature(s) is valid for a trusted key",
            sigs.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_rfc8032_test_1() {
        // RFC 8032 section 7.1, TEST 1: empty message.
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap();
        let key = SigningKey::from_bytes(&seed.try_into().unwrap());
        assert_eq!(
            hex::encode(key.verifying_key().as_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let mut detached = vec![];
        add_signature(&mut detached, &key, b"");
        let sigs = signatures(&detached, ED25519_KEY);
        assert_eq!(
            hex::encode(&sigs[0]),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        // The detached metadata is exactly {'ostree.sign.ed25519': <[@ay sig]>}, in normal form.
        let bytes = object::metadata_dict(&detached).to_bytes();
        let mut expected = b"ostree.sign.ed25519\0".to_vec();
        expected.extend_from_slice(&[0; 4]); // pad the variant to 8
        expected.extend_from_slice(&sigs[0]);
        expected.push(64); // the aay's framing offset: end of its one element
        expected.extend_from_slice(b"\0aay");
        // entry framing: key end offset (20), then the array-of-entries end offset.
        expected.push(20);
        let entry_len = expected.len();
        expected.push(entry_len as u8);
        assert_eq!(bytes, expected);
        assert_eq!(parse_detached(&bytes).unwrap(), detached);
    }

    #[test]
    fn tampering_breaks_verification() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let (secret, public) = encode_keypair(&key);
        assert_eq!(
            parse_secret_key(&secret).unwrap().to_bytes(),
            key.to_bytes()
        );
        let public = parse_public_key(&public).unwrap();
        let mut detached = vec![];
        add_signature(&mut detached, &key, b"commit bytes");
        assert!(verify_ed25519(&detached, &[public], b"commit bytes"));
        assert!(!verify_ed25519(&detached, &[public], b"commit bytez"));
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert!(!verify_ed25519(&detached, &[other], b"commit bytes"));
    }
}
