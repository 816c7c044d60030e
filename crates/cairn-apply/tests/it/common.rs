//! Helpers the integration tests share: the seeded `/etc` that Ignition's peer script
//! also seeds, files served over HTTP, hashes and gzip as configs carry them, and the
//! skip check of tests that need root.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha512};

/// Whether we run as root. Without it the caller skips (saying that `what` needs root),
/// unless `CAIRN_REQUIRE_PEERS` is set.
pub fn running_as_root(what: &str) -> bool {
    // A new file belongs to the effective uid: this avoids a dependency for geteuid.
    let probe = tempfile::tempfile().unwrap();
    if probe.metadata().unwrap().uid() == 0 {
        return true;
    }
    if std::env::var_os("CAIRN_REQUIRE_PEERS").is_some() {
        panic!("{what} needs root (CAIRN_REQUIRE_PEERS is set)");
    }
    eprintln!("skipping: {what} needs root");
    false
}

// ---------------------------------------------------------------------------------------
// Seeding

pub fn create_dir(path: &Path, mode: u32) {
    fs::create_dir(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn write_file(path: &Path, contents: &[u8], mode: u32) {
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The minimal `/etc` that `tests/peer/ignition-files-stage.sh --seed-etc` creates in the
/// existing directory `root`, with explicit modes so that the umask does not matter. The
/// differential test compares trees seeded by both, so the two must stay the same.
pub fn seed_etc(root: &Path) {
    for dir in ["etc", "etc/skel", "etc/default", "etc/selinux", "home"] {
        create_dir(&root.join(dir), 0o755);
    }
    let etc = root.join("etc");
    write_file(
        &etc.join("passwd"),
        b"root:x:0:0:root:/root:/bin/bash\n",
        0o644,
    );
    write_file(&etc.join("group"), b"root:x:0:\nwheel:x:10:\n", 0o644);
    write_file(&etc.join("shadow"), b"root:*:19000:0:99999:7:::\n", 0o640);
    write_file(&etc.join("gshadow"), b"root:*::\nwheel:*::\n", 0o640);
    // The peer copies the host's; where the host has none the peer cannot run, and the
    // tests without it still get the few settings `useradd` needs.
    let login_defs = fs::read("/etc/login.defs")
        .unwrap_or_else(|_| b"UID_MIN 1000\nGID_MIN 1000\nUSERGROUPS_ENAB yes\n".to_vec());
    write_file(&etc.join("login.defs"), &login_defs, 0o644);
    write_file(
        &etc.join("default/useradd"),
        b"HOME=/home\nSHELL=/bin/sh\n",
        0o644,
    );
    write_file(
        &etc.join("selinux/config"),
        b"SELINUX=permissive\nSELINUXTYPE=targeted\n",
        0o644,
    );
}

// ---------------------------------------------------------------------------------------
// Remote resources

/// Files served over HTTP from a temporary directory; written before or after starting.
pub struct Site {
    dir: tempfile::TempDir,
    server: cairn_repo_server::Background,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let server =
            cairn_repo_server::spawn(dir.path().to_owned(), "127.0.0.1:0".parse().unwrap())
                .unwrap();
        Site { dir, server }
    }

    /// The server's address, for tests that use it as a proxy.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Where `name` is served, whether or not it exists.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.server.addr)
    }

    /// Writes `name` and returns its URL.
    pub fn put(&self, name: &str, data: impl AsRef<[u8]>) -> String {
        fs::write(self.dir.path().join(name), data).unwrap();
        self.url(name)
    }

    pub fn put_json(&self, name: &str, config: &Value) -> String {
        self.put(name, config.to_string())
    }
}

/// The `verification.hash` of `data`.
pub fn sha512(data: impl AsRef<[u8]>) -> String {
    format!("sha512-{}", hex::encode(Sha512::digest(data)))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::default());
    let mut out = vec![0u8; c.gzip_compress_bound(data.len())];
    let n = c.gzip_compress(data, &mut out).unwrap();
    out.truncate(n);
    out
}
