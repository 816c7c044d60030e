//! Real etcd members on loopback for tests (Debian's etcd-server): one, or a cluster whose
//! members a test can kill. Shared by the etcd store's tests, the lock service's and the CLI's.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::have_peer;

pub const ETCD: &str = "etcd";
pub const ETCDCTL: &str = "etcdctl";

/// One etcd process, killed when dropped.
pub struct EtcdMember {
    client_url: String,
    log: PathBuf,
    process: Option<Child>,
    /// `sh` waiting for its stdin (a pipe from this process) to close: if this process exits
    /// without dropping the member (the shared member lives in a static), it kills etcd and
    /// removes the temp dir.
    watchdog: Option<Child>,
    _dir: tempfile::TempDir,
}

impl EtcdMember {
    pub fn client_url(&self) -> &str {
        &self.client_url
    }

    /// SIGKILL: no goodbye to the other members, no leadership transfer.
    pub fn kill(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn exited(&mut self) -> bool {
        match &mut self.process {
            Some(process) => !matches!(process.try_wait(), Ok(None)),
            None => true,
        }
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Members of one etcd cluster on loopback (a cluster of one is a plain etcd).
pub struct EtcdCluster {
    members: Vec<EtcdMember>,
}

/// The files of a TLS client port that requires client certificates.
pub struct ServerTls<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
}

impl EtcdCluster {
    /// `size` members over plain HTTP, or `None` (after a skip message) when etcd is not
    /// installed and `CAIRN_REQUIRE_PEERS` is unset.
    pub fn start(size: usize) -> Option<EtcdCluster> {
        EtcdCluster::start_with(size, &[], None)
    }

    pub fn start_with(
        size: usize,
        extra_args: &[&str],
        tls: Option<&ServerTls>,
    ) -> Option<EtcdCluster> {
        if !have_peer(ETCD) {
            return None;
        }
        let mut last_failure = String::new();
        // Free ports are only free until someone takes them: try again with others.
        for _ in 0..3 {
            match EtcdCluster::try_start(size, extra_args, tls) {
                Ok(cluster) => return Some(cluster),
                Err(failure) if failure.contains("address already in use") => {
                    last_failure = failure
                }
                Err(failure) => panic!("etcd did not start:\n{failure}"),
            }
        }
        panic!("etcd did not start:\n{last_failure}");
    }

    fn try_start(
        size: usize,
        extra_args: &[&str],
        tls: Option<&ServerTls>,
    ) -> Result<EtcdCluster, String> {
        static CLUSTERS: AtomicU64 = AtomicU64::new(0);
        let cluster_token = format!(
            "cairn-test-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        );
        let ports = free_ports(2 * size);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let peer_url = |index: usize| format!("http://127.0.0.1:{}", ports[2 * index + 1]);
        let initial_cluster = (0..size)
            .map(|index| format!("m{index}={}", peer_url(index)))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for index in 0..size {
            let dir = tempfile::tempdir().unwrap();
            let client_url = format!("{scheme}://127.0.0.1:{}", ports[2 * index]);
            let log = dir.path().join("etcd.log");
            let log_file = std::fs::File::create(&log).unwrap();
            let mut command = Command::new(ETCD);
            command
                .arg(format!("--name=m{index}"))
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--listen-client-urls={client_url}"))
                .arg(format!("--advertise-client-urls={client_url}"))
                .arg(format!("--listen-peer-urls={}", peer_url(index)))
                .arg(format!("--initial-advertise-peer-urls={}", peer_url(index)))
                .arg(format!("--initial-cluster={initial_cluster}"))
                .arg(format!("--initial-cluster-token={cluster_token}"))
                .arg("--initial-cluster-state=new")
                .args(extra_args)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file);
            if let Some(tls) = tls {
                command
                    .arg(format!("--cert-file={}", tls.cert.display()))
                    .arg(format!("--key-file={}", tls.key.display()))
                    .arg(format!("--trusted-ca-file={}", tls.ca.display()))
                    .arg("--client-cert-auth");
            }
            let process = command.spawn().expect("start etcd");
            let watchdog = Command::new("sh")
                .arg("-c")
                .arg(r#"read _; kill -9 "$1" 2>/dev/null; sleep 0.5; rm -rf "$2""#)
                .arg("watchdog")
                .arg(process.id().to_string())
                .arg(dir.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the etcd watchdog");
            members.push(EtcdMember {
                client_url,
                log,
                process: Some(process),
                watchdog: Some(watchdog),
                _dir: dir,
            });
        }
        let mut cluster = EtcdCluster { members };
        let deadline = Instant::now() + Duration::from_secs(30);
        for index in 0..size {
            loop {
                let member = &mut cluster.members[index];
                if member.exited() {
                    return Err(member.log_tail());
                }
                let ready = if tls.is_some() {
                    // No TLS client here: etcd logs this once it has joined the cluster.
                    std::fs::read_to_string(&member.log)
                        .unwrap_or_default()
                        .contains("ready to serve client requests")
                } else {
                    healthy(&member.client_url)
                };
                if ready {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("not healthy after 30 s\n{}", member.log_tail()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(cluster)
    }

    pub fn client_urls(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|member| member.client_url.clone())
            .collect()
    }

    pub fn member(&self, index: usize) -> &EtcdMember {
        &self.members[index]
    }

    pub fn kill(&mut self, index: usize) {
        self.members[index].kill();
    }

    /// The index of the leader, as `etcdctl endpoint status` tells.
    pub fn leader(&self) -> Option<usize> {
        if !have_peer(ETCDCTL) {
            return None;
        }
        let status = etcdctl(
            &self.client_urls().join(","),
            &["endpoint", "status", "-w", "json"],
        );
        let status: serde_json::Value = serde_json::from_str(&status).ok()?;
        status.as_array()?.iter().find_map(|entry| {
            let endpoint = entry["Endpoint"].as_str()?;
            let leader = &entry["Status"]["leader"];
            (entry["Status"]["header"]["member_id"] == *leader).then(|| {
                self.members
                    .iter()
                    .position(|member| member.client_url == endpoint)
            })?
        })
    }
}

/// `/health` over plain HTTP says the member has a leader.
fn healthy(client_url: &str) -> bool {
    let address = client_url.trim_start_matches("http://");
    let Ok(mut stream) = TcpStream::connect(address) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: etcd\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains(r#""health":"true""#)
}

pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().unwrap().port())
        .collect()
}

/// The etcd that the conformance suite and most tests here share, started once.
pub fn shared() -> Option<&'static EtcdCluster> {
    static SHARED: OnceLock<Option<EtcdCluster>> = OnceLock::new();
    SHARED.get_or_init(|| EtcdCluster::start(1)).as_ref()
}

/// A key prefix no other test of this process uses.
pub fn unique_prefix() -> String {
    static PREFIXES: AtomicU64 = AtomicU64::new(0);
    format!("cairn-test/{}/", PREFIXES.fetch_add(1, Ordering::Relaxed))
}

/// etcdctl's standard output; the command must succeed.
pub fn etcdctl(endpoints: &str, args: &[&str]) -> String {
    let output = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .output()
        .expect("run etcdctl");
    assert!(
        output.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
