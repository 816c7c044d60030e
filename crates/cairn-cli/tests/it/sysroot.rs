//! `cairn admin` on test sysroots: interop with `ostree admin`, upgrade and rollback
//! across simulated reboots, staging, crash safety at every write, self-healing, errors.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::*;

/// A test sysroot with a simulated kernel command line and boot counter.
pub(crate) struct Sys {
    pub(crate) root: PathBuf,
    pub(crate) cmdline: PathBuf,
    boot: u32,
}

impl Sys {
    pub(crate) fn new(dir: &Path) -> Sys {
        Sys {
            root: dir.join("sysroot"),
            cmdline: dir.join("cmdline"),
            boot: 0,
        }
    }

    pub(crate) fn repo_arg(&self) -> String {
        format!("--repo={}", self.root.join("ostree/repo").display())
    }

    pub(crate) fn admin_with(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.arg("admin")
            .args(args)
            .arg("--sysroot")
            .arg(&self.root)
            .arg("--cmdline")
            .arg(&self.cmdline)
            .env("CAIRN_BOOT_ID", format!("boot-{}", self.boot))
            .env_remove("CAIRN_FAULT");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().expect("run cairn admin")
    }

    pub(crate) fn admin(&self, args: &[&str]) -> String {
        let out = self.admin_with(args, &[]);
        assert!(
            out.status.success(),
            "cairn admin {args:?} failed: {}",
            stderr(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) fn status(&self) -> Vec<Value> {
        let json: Value = serde_json::from_str(&self.admin(&["status", "--json"])).unwrap();
        json["deployments"].as_array().unwrap().clone()
    }

    /// What the boot loader does: boot the entry with the highest version.
    pub(crate) fn reboot(&mut self) {
        let loader = fs::read_link(self.root.join("boot/loader")).unwrap();
        let entries = self.root.join("boot").join(loader).join("entries");
        let mut best = (0u64, String::new());
        for e in fs::read_dir(entries).unwrap() {
            let text = fs::read_to_string(e.unwrap().path()).unwrap();
            let field = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k} ")).map(str::to_owned))
                    .unwrap()
            };
            let version: u64 = field("version").parse().unwrap();
            if version > best.0 {
                best = (version, field("options"));
            }
        }
        fs::write(&self.cmdline, best.1).unwrap();
        self.boot += 1;
    }

    /// Commits release `version` (kernel `kernel`) to `testos/stable`; its checksum.
    pub(crate) fn release(&self, dir: &Path, version: &str, kernel: &str) -> String {
        commit(
            &self.repo_arg(),
            "testos/stable",
            &os_tree(dir, version, kernel),
            version,
        )
    }

    /// Deploys `testos/stable` and boots it.
    pub(crate) fn deploy_and_boot(&mut self) {
        self.admin(&["deploy", "testos/stable"]);
        self.reboot();
    }

    pub(crate) fn init(&self, stateroot: &str) {
        cairn_ok(&["admin", "init-fs", self.root.to_str().unwrap()]);
        self.admin(&["os-init", stateroot]);
    }

    fn deploy_dir(&self, d: &Value) -> PathBuf {
        self.root.join(format!(
            "ostree/deploy/{}/deploy/{}.{}",
            d["stateroot"].as_str().unwrap(),
            d["checksum"].as_str().unwrap(),
            d["serial"]
        ))
    }
}

/// An OS tree: a kernel (its content set by `kernel`), /usr/etc defaults, os-release.
pub(crate) fn os_tree(dir: &Path, version: &str, kernel: &str) -> PathBuf {
    let tree = dir.join(format!("tree-{version}"));
    let _ = fs::remove_dir_all(&tree);
    write(
        &tree.join("usr/lib/modules/6.1.0/vmlinuz"),
        format!("kernel {kernel}\n").as_bytes(),
        0o644,
    );
    write(
        &tree.join("usr/lib/modules/6.1.0/initramfs.img"),
        format!("initramfs {kernel}\n").as_bytes(),
        0o644,
    );
    write(
        &tree.join("usr/lib/os-release"),
        b"NAME=Test\nPRETTY_NAME=\"Test OS\"\n",
        0o644,
    );
    write(
        &tree.join("usr/bin/hello"),
        format!("#!/bin/sh\necho {version}\n").as_bytes(),
        0o755,
    );
    write(
        &tree.join("usr/etc/motd"),
        format!("welcome to {version}\n").as_bytes(),
        0o644,
    );
    write(&tree.join("usr/etc/hostname"), b"test\n", 0o644);
    fs::create_dir_all(tree.join("var")).unwrap();
    tree
}

pub(crate) fn commit(repo_arg: &str, branch: &str, tree: &Path, version: &str) -> String {
    cairn_ok(&[
        "repo",
        "commit",
        repo_arg,
        "-b",
        branch,
        &format!("--add-metadata-string=version={version}"),
        &format!("--tree=dir={}", tree.display()),
    ])
    .trim()
    .to_owned()
}

fn ids(deployments: &[Value]) -> Vec<String> {
    deployments
        .iter()
        .map(|d| format!("{}.{}", d["checksum"].as_str().unwrap(), d["serial"]))
        .collect()
}

/// `ostree admin status` as (stateroot, checksum.serial) in order.
fn ostree_status(root: &Path) -> Vec<String> {
    let out = ostree_ok(&["admin", "status", "--sysroot", root.to_str().unwrap()]);
    out.lines()
        .filter(|l| !l.starts_with("    "))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

fn entries(root: &Path) -> BTreeMap<String, String> {
    let dir = root.join("boot/loader/entries");
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn ostree_and_cairn_read_each_others_sysroots() {
    if !have_peer("ostree") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (t1, t2) = (os_tree(dir.path(), "1", "a"), os_tree(dir.path(), "2", "b"));

    // Deployed by ostree, read by cairn.
    let by_ostree = dir.path().join("by-ostree");
    let s = by_ostree.to_str().unwrap();
    fs::create_dir_all(&by_ostree).unwrap();
    ostree_ok(&["admin", "init-fs", s]);
    ostree_ok(&["admin", "os-init", "--sysroot", s, "testos"]);
    let repo = format!("--repo={s}/ostree/repo");
    for (tree, version) in [(&t1, "1"), (&t2, "2")] {
        ostree_ok(&[
            &repo,
            "commit",
            "-b",
            "testos/stable",
            &format!("--add-metadata-string=version={version}"),
            &format!("--tree=dir={}", tree.display()),
        ]);
        ostree_ok(&[
            "admin",
            "deploy",
            "--sysroot",
            s,
            "--os",
            "testos",
            "testos/stable",
            "--karg=root=LABEL=root",
        ]);
    }
    let mut sys = Sys::new(dir.path());
    sys.root = by_ostree.clone();
    let status = sys.status();
    assert_eq!(ids(&status), ostree_status(&by_ostree));
    assert_eq!(status.len(), 2);
    assert_eq!(status[0]["version"], "2");
    assert_eq!(status[1]["version"], "1");
    assert_eq!(status[0]["origin"], "testos/stable");
    assert_eq!(status[0]["kargs"], "root=LABEL=root");
    // cairn deploys beside ostree's deployments; ostree reads the result.
    sys.admin(&["deploy", "testos/stable", "--retain"]);
    let after = sys.status();
    assert_eq!(after.len(), 3);
    assert_eq!(after[0]["serial"], 1);
    assert_eq!(ids(&after), ostree_status(&by_ostree));
    sys.admin(&["cleanup"]);
    ostree_fsck_ok(&repo);

    // Deployed by cairn, read by ostree; and the same commits deployed by both give the
    // same boot entries, field for field.
    let ours = Sys::new(&dir.path().join("c"));
    ours.init("testos");
    ostree_ok(&[
        &ours.repo_arg(),
        "pull-local",
        "--depth=1",
        &format!("{s}/ostree/repo"),
        "testos/stable",
    ]);
    let reference = dir.path().join("reference");
    fs::create_dir_all(&reference).unwrap();
    let r = reference.to_str().unwrap();
    ostree_ok(&["admin", "init-fs", r]);
    ostree_ok(&["admin", "os-init", "--sysroot", r, "testos"]);
    ostree_ok(&[
        &format!("--repo={r}/ostree/repo"),
        "pull-local",
        "--depth=1",
        &format!("{s}/ostree/repo"),
        "testos/stable",
    ]);
    for rev in ["testos/stable^", "testos/stable"] {
        let checksum = ostree_ok(&[&ours.repo_arg(), "rev-parse", rev]);
        let checksum = checksum.trim();
        ours.admin(&["deploy", checksum, "--karg=root=LABEL=root", "--karg=rw"]);
        ostree_ok(&[
            "admin",
            "deploy",
            "--sysroot",
            r,
            "--os",
            "testos",
            checksum,
            "--karg=root=LABEL=root",
            "--karg=rw",
        ]);
        assert_eq!(ids(&ours.status()), ostree_status(&ours.root));
        assert_eq!(entries(&ours.root), entries(&reference));
    }
    assert_eq!(ostree_status(&ours.root), ostree_status(&reference));
    // Pinning is read the same way.
    ours.admin(&["pin", "1"]);
    let text = ostree_ok(&["admin", "status", "--sysroot", ours.root.to_str().unwrap()]);
    assert!(text.contains("Pinned: yes"), "{text}");
    ostree_fsck_ok(&ours.repo_arg());
    // ostree makes deployment roots immutable; let the temporary directory go.
    for root in [&by_ostree, &reference] {
        unfreeze(root);
    }
}

fn unfreeze(root: &Path) {
    for stateroot in fs::read_dir(root.join("ostree/deploy")).unwrap() {
        let deploy = stateroot.unwrap().path().join("deploy");
        for d in fs::read_dir(deploy).unwrap() {
            let _ = Command::new("chattr")
                .arg("-i")
                .arg(d.unwrap().path())
                .status();
        }
    }
}

#[test]
fn upgrade_over_http_then_rollback_keeps_var_and_etc() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let source_arg = format!("--repo={}", source.display());
    cairn_ok(&["repo", "init", &source_arg, "--mode=archive"]);
    let v1 = commit(
        &source_arg,
        "testos/stable",
        &os_tree(dir.path(), "1", "a"),
        "1",
    );
    let (_server, url) = crate::pull::cairn_serve(&source);

    let mut sys = Sys::new(dir.path());
    sys.init("testos");
    cairn_ok(&[
        "repo",
        "remote",
        "add",
        &sys.repo_arg(),
        "--no-gpg-verify",
        "origin",
        &url,
    ]);
    cairn_ok(&["repo", "pull", &sys.repo_arg(), "origin", "testos/stable"]);
    sys.admin(&["deploy", "origin:testos/stable", "--karg=root=LABEL=root"]);
    sys.reboot();
    let status = sys.status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0]["checksum"], v1.as_str());
    assert_eq!(status[0]["booted"], true);

    // The machine's state: /var data and an admin's edit of /etc.
    let var = sys.root.join("ostree/deploy/testos/var");
    write(&var.join("lib/app/data"), b"precious\n", 0o600);
    let booted_dir = sys.deploy_dir(&status[0]);
    write(&booted_dir.join("etc/hostname"), b"machine-42\n", 0o644);
    write(&booted_dir.join("etc/added-by-admin"), b"mine\n", 0o600);
    assert_eq!(
        sys.admin(&["upgrade"]).lines().next().unwrap(),
        format!("No update available ({v1})")
    );

    let v2 = commit(
        &source_arg,
        "testos/stable",
        &os_tree(dir.path(), "2", "b"),
        "2",
    );
    sys.admin(&["upgrade"]);
    let status = sys.status();
    assert_eq!(
        ids(&status),
        vec![format!("{v2}.0"), format!("{v1}.0")],
        "the upgrade goes first"
    );
    assert_eq!(status[0]["pending"], true);
    assert_eq!(status[1]["booted"], true);
    if have_peer("ostree") {
        assert_eq!(ostree_status(&sys.root), ids(&status));
    }

    sys.reboot();
    let status = sys.status();
    assert_eq!(status[0]["checksum"], v2.as_str());
    assert_eq!(status[0]["booted"], true);
    assert_eq!(status[1]["checksum"], v1.as_str());
    assert_eq!(status[1]["rollback"], true);
    let new_dir = sys.deploy_dir(&status[0]);
    assert_eq!(
        fs::read_to_string(new_dir.join("etc/hostname")).unwrap(),
        "machine-42\n"
    );
    assert_eq!(
        fs::read_to_string(new_dir.join("etc/added-by-admin")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        fs::read_to_string(new_dir.join("etc/motd")).unwrap(),
        "welcome to 2\n",
        "an untouched file takes the new default"
    );
    assert_eq!(
        fs::read_to_string(var.join("lib/app/data")).unwrap(),
        "precious\n"
    );

    sys.admin(&["rollback"]);
    sys.reboot();
    let status = sys.status();
    assert_eq!(status[0]["checksum"], v1.as_str());
    assert_eq!(status[0]["booted"], true);
    assert_eq!(status[1]["checksum"], v2.as_str());
    assert_eq!(status[1]["rollback"], true);
    assert_eq!(
        fs::read_to_string(var.join("lib/app/data")).unwrap(),
        "precious\n"
    );
    if have_peer("ostree") {
        assert_eq!(ostree_status(&sys.root), ids(&status));
        ostree_fsck_ok(&sys.repo_arg());
    }
    cairn_ok(&["repo", "fsck", &sys.repo_arg()]);
}

#[test]
fn staged_deployments_wait_for_finalization() {
    let dir = tempfile::tempdir().unwrap();
    let mut sys = Sys::new(dir.path());
    sys.init("testos");
    let v1 = sys.release(dir.path(), "1", "a");
    sys.deploy_and_boot();
    let v2 = sys.release(dir.path(), "2", "a");

    let before = entries(&sys.root);
    sys.admin(&["deploy", "testos/stable", "--stage"]);
    let status = sys.status();
    assert_eq!(status[0]["staged"], true);
    assert_eq!(status[0]["checksum"], v2.as_str());
    assert_eq!(
        entries(&sys.root),
        before,
        "staging leaves the entries alone"
    );
    // An /etc change after staging still reaches the new deployment.
    let booted = sys.deploy_dir(&status[1]);
    write(&booted.join("etc/late-change"), b"late\n", 0o644);
    sys.admin(&["finalize-staged"]);
    let status = sys.status();
    assert_eq!(ids(&status), vec![format!("{v2}.0"), format!("{v1}.0")]);
    assert!(status.iter().all(|d| d["staged"] == false));
    assert_eq!(
        fs::read_to_string(sys.deploy_dir(&status[0]).join("etc/late-change")).unwrap(),
        "late\n"
    );
    sys.reboot();

    // Locked: finalize-staged (at shutdown) leaves it; finalize-deployment writes it.
    let v3 = sys.release(dir.path(), "3", "c");
    sys.admin(&["deploy", "testos/stable", "--stage", "--lock-finalization"]);
    let before = entries(&sys.root);
    let out = sys.admin(&["finalize-staged"]);
    assert!(out.contains("locked"), "{out}");
    assert_eq!(entries(&sys.root), before);
    let status = sys.status();
    assert_eq!(status[0]["finalization_locked"], true);
    let wrong = sys.admin_with(&["finalize-deployment", &v1], &[]);
    assert!(!wrong.status.success());
    assert!(stderr(&wrong).contains("not"), "{}", stderr(&wrong));
    sys.admin(&["finalize-deployment", &v3]);
    let status = sys.status();
    assert_eq!(status[0]["checksum"], v3.as_str());
    assert_eq!(status[1]["booted"], true);
    assert_eq!(status.len(), 2);
}

/// Every deployment in the status exists and holds its commit's /usr.
fn assert_complete(sys: &Sys, references: &BTreeMap<String, PathBuf>) {
    for d in sys.status() {
        let dir = sys.deploy_dir(&d);
        let checksum = d["checksum"].as_str().unwrap();
        let reference = &references[checksum];
        assert_same_tree(
            &snapshot(&reference.join("usr"), true, false),
            &snapshot(&dir.join("usr"), true, false),
        );
        assert!(
            dir.join("etc/motd").is_file(),
            "{} has no /etc",
            dir.display()
        );
        assert!(dir
            .with_file_name(format!("{checksum}.{}.origin", d["serial"]))
            .is_file());
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_crash_at_any_write_leaves_a_complete_boot_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut template = Sys::new(&dir.path().join("template"));
    template.init("testos");
    let repo_arg = template.repo_arg();
    let v1 = commit(
        &repo_arg,
        "testos/stable",
        &os_tree(dir.path(), "1", "a"),
        "1",
    );
    template.admin(&["deploy", "testos/stable", "--karg=root=LABEL=root"]);
    template.reboot();
    let v2 = commit(
        &repo_arg,
        "testos/stable",
        &os_tree(dir.path(), "2", "b"),
        "2",
    );
    let mut references = BTreeMap::new();
    for c in [&v1, &v2] {
        let dest = dir.path().join(format!("ref-{c}"));
        cairn_ok(&["repo", "checkout", &repo_arg, c, dest.to_str().unwrap()]);
        references.insert(c.clone(), dest);
    }
    // Starting points: v1 booted; v2 deployed too; v2 staged.
    let mut two = Sys::new(&dir.path().join("two"));
    copy_tree(&template.root, &two.root);
    fs::copy(&template.cmdline, &two.cmdline).unwrap();
    two.boot = template.boot;
    two.admin(&["deploy", "testos/stable"]);
    let mut staged = Sys::new(&dir.path().join("staged"));
    copy_tree(&template.root, &staged.root);
    fs::copy(&template.cmdline, &staged.cmdline).unwrap();
    staged.boot = template.boot;
    staged.admin(&["deploy", "testos/stable", "--stage"]);

    // Leftovers for cleanup: an unreferenced deployment, boot set, kernel copy and ref.
    let mut dirty = Sys::new(&dir.path().join("dirty"));
    copy_tree(&two.root, &dirty.root);
    fs::copy(&two.cmdline, &dirty.cmdline).unwrap();
    dirty.boot = two.boot;
    let deploy = dirty.root.join("ostree/deploy/testos/deploy");
    copy_tree(
        &deploy.join(format!("{v2}.0")),
        &deploy.join(format!("{v2}.5")),
    );
    fs::write(
        deploy.join(format!("{v2}.5.origin")),
        "[origin]\nrefspec=x\n",
    )
    .unwrap();
    let live = fs::read_link(dirty.root.join("boot/loader")).unwrap();
    let other = if live == Path::new("loader.0") {
        "loader.1"
    } else {
        "loader.0"
    };
    copy_tree(
        &dirty.root.join("boot").join(&live),
        &dirty.root.join("boot").join(other),
    );
    let kernels = dirty.root.join("boot/ostree");
    let first_kernel = fs::read_dir(&kernels)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    copy_tree(&first_kernel, &kernels.join("testos-0000"));
    cairn_ok(&["repo", "refs", &repo_arg, "--create=ostree/9/9/9", &v2]);

    let old = vec![format!("{v1}.0")];
    let both = vec![format!("{v2}.0"), format!("{v1}.0")];
    let rolled = vec![format!("{v1}.0"), format!("{v2}.0")];
    /// (name, starting sysroot, command, entries before, entries after)
    type Scenario<'a> = (&'a str, &'a Sys, Vec<&'a str>, Vec<String>, Vec<String>);
    let scenarios: Vec<Scenario> = vec![
        (
            "deploy",
            &template,
            vec!["deploy", "testos/stable"],
            old.clone(),
            both.clone(),
        ),
        (
            "stage",
            &template,
            vec!["deploy", "testos/stable", "--stage"],
            old.clone(),
            old.clone(),
        ),
        (
            "finalize-staged",
            &staged,
            vec!["finalize-staged"],
            old.clone(),
            both.clone(),
        ),
        (
            "rollback",
            &two,
            vec!["rollback"],
            both.clone(),
            rolled.clone(),
        ),
        (
            "cleanup",
            &dirty,
            vec!["cleanup"],
            both.clone(),
            both.clone(),
        ),
    ];
    let work = dir.path().join("work");
    let mut total_faults = 0;
    for (name, start, args, before, after) in scenarios {
        let mut hit = 1;
        loop {
            let mut sys = Sys::new(&work);
            copy_tree(&start.root, &sys.root);
            fs::copy(&start.cmdline, &sys.cmdline).unwrap();
            sys.boot = start.boot;
            let fault = format!("sysroot:{hit}");
            let out = sys.admin_with(&args, &[("CAIRN_FAULT", &fault)]);
            let list = ids(&sys
                .status()
                .into_iter()
                .filter(|d| d["staged"] == false)
                .collect::<Vec<_>>());
            assert!(
                list == before || list == after,
                "{name} at {fault}: entries list {list:?}"
            );
            assert_complete(&sys, &references);
            if have_peer("ostree") {
                assert_eq!(ostree_status(&sys.root), list, "{name} at {fault}");
            }
            if out.status.success() {
                assert_eq!(list, after, "{name} without a fault");
                if name == "cleanup" {
                    let leftovers = [
                        format!("ostree/deploy/testos/deploy/{v2}.5"),
                        format!("ostree/deploy/testos/deploy/{v2}.5.origin"),
                        format!("boot/{other}"),
                        "boot/ostree/testos-0000".to_owned(),
                        "ostree/repo/refs/heads/ostree/9/9/9".to_owned(),
                    ];
                    for rel in leftovers {
                        assert!(!sys.root.join(&rel).exists(), "cleanup left {rel}");
                    }
                }
                break;
            }
            assert!(
                stderr(&out).contains("fault injected"),
                "{name} at {fault}: {}",
                stderr(&out)
            );
            // Before the commit point, running the command again completes the change;
            // after it, cleanup finishes what was left.
            if list == before {
                sys.admin(&args);
            } else {
                sys.admin(&["cleanup"]);
            }
            let list = ids(&sys
                .status()
                .into_iter()
                .filter(|d| d["staged"] == false)
                .collect::<Vec<_>>());
            assert_eq!(list, after, "{name} rerun after {fault}");
            assert_complete(&sys, &references);
            total_faults += 1;
            hit += 1;
            assert!(hit < 500, "{name}: too many write points");
        }
        eprintln!("{name}: {} write points", hit - 1);
    }
    assert!(total_faults > 20, "only {total_faults} faults injected");
}

#[test]
fn failing_health_checks_roll_back_and_the_bad_commit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut sys = Sys::new(dir.path());
    sys.init("testos");
    let good_tree = os_tree(dir.path(), "1", "a");
    write(
        &good_tree.join("usr/lib/cairn/health-check.d/10-ok"),
        b"#!/bin/sh\ntest -f \"$CAIRN_DEPLOYMENT/usr/bin/hello\"\n",
        0o755,
    );
    let v1 = commit(&sys.repo_arg(), "testos/stable", &good_tree, "1");
    sys.deploy_and_boot();
    let out = sys.admin(&["health-check"]);
    assert!(out.contains("1 health checks passed; marked good"), "{out}");
    assert_eq!(sys.status()[0]["health"], "good");
    // Marked good: later runs do nothing and never count.
    assert!(sys.admin(&["health-check"]).contains("earlier boot"));

    let bad_tree = os_tree(dir.path(), "2", "b");
    write(
        &bad_tree.join("usr/lib/cairn/health-check.d/10-ok"),
        b"#!/bin/sh\nexit 0\n",
        0o755,
    );
    write(
        &bad_tree.join("usr/lib/cairn/health-check.d/20-service"),
        b"#!/bin/sh\necho service down >&2\nexit 3\n",
        0o755,
    );
    let v2 = commit(&sys.repo_arg(), "testos/stable", &bad_tree, "2");
    sys.admin(&["upgrade"]);
    for boot in 1..=3u32 {
        sys.reboot();
        let status = sys.status();
        assert_eq!(status[0]["checksum"], v2.as_str(), "boot {boot}");
        assert_eq!(status[0]["booted"], true);
        let out = sys.admin_with(&["health-check"], &[]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("20-service: exited with"),
            "{}",
            stderr(&out)
        );
        if boot < 3 {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                text.contains(&format!("failed on {boot} of 3 boots")),
                "{text}"
            );
            // Twice in one boot counts once.
            let again = sys.admin_with(&["health-check"], &[]);
            assert!(String::from_utf8_lossy(&again.stdout)
                .contains(&format!("failed on {boot} of 3 boots")));
        } else {
            assert!(String::from_utf8_lossy(&out.stdout).contains("rolled back"));
        }
    }
    let status = sys.status();
    assert_eq!(status[0]["checksum"], v1.as_str(), "rolled back by itself");
    assert_eq!(status[1]["checksum"], v2.as_str());
    assert_eq!(status[1]["bad"], true);
    sys.reboot();
    assert_eq!(sys.status()[0]["booted"], true);
    assert_eq!(sys.status()[0]["health"], "good");

    // The bad commit is refused until an admin says otherwise.
    let out = sys.admin_with(&["upgrade"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("recorded as bad"), "{}", stderr(&out));
    let out = sys.admin_with(&["deploy", &v2], &[]);
    assert!(!out.status.success());
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    sys.admin(&["upgrade", "--allow-bad"]);
    assert_eq!(sys.status()[0]["checksum"], v2.as_str());
}

#[test]
fn errors_are_one_line_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut sys = Sys::new(dir.path());

    // Not initialised.
    fs::create_dir_all(&sys.root).unwrap();
    for args in [vec!["status"], vec!["deploy", "x"], vec!["upgrade"]] {
        let out = sys.admin_with(&args, &[]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("not an initialised sysroot"), "{err}");
    }
    assert_eq!(fs::read_dir(&sys.root).unwrap().count(), 0);

    sys.init("testos");
    sys.release(dir.path(), "1", "a");
    sys.deploy_and_boot();
    let no_kernel = dir.path().join("no-kernel");
    write(&no_kernel.join("usr/etc/motd"), b"x\n", 0o644);
    commit(&sys.repo_arg(), "testos/nokernel", &no_kernel, "9");
    sys.release(dir.path(), "2", "b");
    sys.status();
    let before = snapshot(&sys.root, true, false);

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["deploy", "testos/missing"], "not found"),
        (vec!["deploy", "testos/nokernel"], "has no kernel"),
        (vec!["undeploy", "7"], "no deployment 7"),
        (vec!["undeploy", "0"], "booted"),
    ];
    for (args, want) in cases {
        let out = sys.admin_with(&args, &[]);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_same_tree(&before, &snapshot(&sys.root, true, false));
    }
    // A full disk at each write of a deploy: an error naming it, and nothing changed.
    let mut hit = 1;
    loop {
        let fault = format!("sysroot:{hit}:enospc");
        let out = sys.admin_with(&["deploy", "testos/stable"], &[("CAIRN_FAULT", &fault)]);
        if out.status.success() {
            break;
        }
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{fault}: {err}");
        assert_eq!(
            err.matches("No space left on device").count(),
            1,
            "{fault}: {err}"
        );
        assert_same_tree(&before, &snapshot(&sys.root, true, false));
        hit += 1;
        assert!(hit < 500);
    }
    assert!(hit > 10, "only {hit} write points");
    assert_eq!(sys.status().len(), 2);
}

#[test]
fn kargs_pins_and_undeploy() {
    let dir = tempfile::tempdir().unwrap();
    let mut sys = Sys::new(dir.path());
    sys.init("testos");
    let v1 = sys.release(dir.path(), "1", "a");
    sys.admin(&[
        "deploy",
        "testos/stable",
        "--karg=root=LABEL=root",
        "--karg=console=tty0",
    ]);
    sys.reboot();
    assert_eq!(sys.admin(&["kargs"]).trim(), "root=LABEL=root console=tty0");
    let out = sys.admin(&["kargs", "--append", "quiet", "--replace", "console=ttyS0"]);
    assert_eq!(out.trim(), "root=LABEL=root console=ttyS0 quiet");
    let options = entries(&sys.root).values().next().unwrap().clone();
    assert!(
        options.contains("options root=LABEL=root console=ttyS0 quiet ostree=/ostree/boot."),
        "{options}"
    );
    sys.reboot();
    assert_eq!(
        sys.status()[0]["booted"],
        true,
        "the kargs change kept the booted one"
    );
    let out = sys.admin_with(&["kargs", "--delete", "nosuch"], &[]);
    assert!(stderr(&out).contains("is not set"), "{}", stderr(&out));

    // A new deployment inherits the kernel arguments; a pinned one survives deploys.
    let v2 = sys.release(dir.path(), "2", "b");
    sys.admin(&["deploy", "testos/stable", "--karg-delete", "quiet"]);
    assert_eq!(sys.status()[0]["kargs"], "root=LABEL=root console=ttyS0");
    sys.reboot();
    sys.admin(&["pin", "1"]);
    assert_eq!(sys.status()[1]["pinned"], true);
    let v3 = sys.release(dir.path(), "3", "c");
    sys.admin(&["deploy", "testos/stable"]);
    let status = sys.status();
    assert_eq!(
        ids(&status),
        vec![format!("{v3}.0"), format!("{v2}.0"), format!("{v1}.0")],
        "the pinned v1 stays"
    );
    let out = sys.admin_with(&["undeploy", "1"], &[]);
    assert!(stderr(&out).contains("booted"), "{}", stderr(&out));
    sys.admin(&["unpin", "2"]);
    sys.admin(&["undeploy", "2"]);
    assert_eq!(
        ids(&sys.status()),
        vec![format!("{v3}.0"), format!("{v2}.0")]
    );
    assert!(!sys
        .root
        .join(format!("ostree/deploy/testos/deploy/{v1}.0"))
        .exists());
    if have_peer("ostree") {
        assert_eq!(ostree_status(&sys.root), ids(&sys.status()));
        ostree_fsck_ok(&sys.repo_arg());
    }
}

#[test]
fn writers_wait_for_the_sysroot_lock_ostree_uses() {
    let dir = tempfile::tempdir().unwrap();
    let sys = Sys::new(dir.path());
    sys.init("testos");
    sys.release(dir.path(), "1", "a");
    // Another writer (here util-linux flock, as ostree would) holds /ostree/lock.
    let lock = sys.root.join("ostree/lock");
    fs::write(&lock, b"").unwrap();
    let ready = dir.path().join("locked");
    let mut holder = Command::new("flock")
        .arg(&lock)
        .arg("sh")
        .arg("-c")
        .arg(format!("touch {}; sleep 1", ready.display()))
        .spawn()
        .unwrap();
    while !ready.exists() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = sys.admin_with(&["deploy", "testos/stable"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("waiting for the sysroot lock"),
        "{}",
        stderr(&out)
    );
    // It went ahead only once the holder let go.
    assert!(holder.try_wait().unwrap().is_some());
    holder.wait().unwrap();
    assert_eq!(sys.status().len(), 1);
}

#[test]
fn a_change_after_staging_retires_the_staged_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let mut sys = Sys::new(dir.path());
    sys.init("testos");
    let v1 = sys.release(dir.path(), "1", "a");
    sys.deploy_and_boot();
    sys.release(dir.path(), "2", "b");
    for change in [
        vec!["deploy", &v1, "--karg-append", "quiet"],
        vec!["kargs", "--append", "x=1"],
    ] {
        sys.admin(&["deploy", "testos/stable", "--stage"]);
        assert_eq!(sys.status()[0]["staged"], true);
        sys.admin(&change);
        let after = ids(&sys.status());
        assert!(
            sys.status().iter().all(|d| d["staged"] == false),
            "{change:?}"
        );
        // Shutdown must not put the older staged deployment back on top.
        let out = sys.admin(&["finalize-staged"]);
        assert!(out.contains("No staged deployment"), "{change:?}: {out}");
        assert_eq!(ids(&sys.status()), after, "{change:?}");
        assert!(!sys.root.join("run/cairn/staged-deployment").exists());
    }
}

#[test]
fn hostile_or_broken_sysroot_content_is_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut sys = Sys::new(dir.path());
    sys.init("testos");
    // A newline in commit metadata never becomes a boot entry field.
    commit(
        &sys.repo_arg(),
        "testos/stable",
        &os_tree(dir.path(), "1", "a"),
        "1\noptions init=/bin/sh",
    );
    sys.deploy_and_boot();
    let entry = entries(&sys.root).into_values().next().unwrap();
    assert_eq!(entry.matches("\noptions ").count(), 1, "{entry}");
    assert!(!entry.contains("init=/bin/sh\n"), "{entry}");
    let out = sys.admin_with(&["kargs", "--append", "a\u{1}b"], &[]);
    assert!(
        stderr(&out).contains("control character"),
        "{}",
        stderr(&out)
    );

    // Fields ostree wrote that cairn does not know survive a rewrite; refs that only
    // look like the sysroot's are the user's and stay.
    let loader = sys.root.join("boot/loader/entries");
    let name = fs::read_dir(&loader)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = fs::read_to_string(&name).unwrap();
    fs::write(&name, format!("{text}devicetree /dtb/board.dtb\n")).unwrap();
    let v1 = sys.status()[0]["checksum"].as_str().unwrap().to_owned();
    cairn_ok(&["repo", "refs", &sys.repo_arg(), "--create=ostree/mine", &v1]);
    sys.admin(&["kargs", "--append", "quiet"]);
    let entry = entries(&sys.root).into_values().next().unwrap();
    assert!(entry.contains("\ndevicetree /dtb/board.dtb\n"), "{entry}");
    sys.admin(&["cleanup"]);
    let refs = cairn_ok(&["repo", "refs", &sys.repo_arg()]);
    assert!(refs.lines().any(|l| l == "ostree/mine"), "{refs}");

    // A staged record naming files outside /boot/ostree is ignored, never followed.
    sys.release(dir.path(), "2", "b");
    sys.admin(&["deploy", "testos/stable", "--stage"]);
    let record = sys.root.join("run/cairn/staged-deployment");
    let outside = dir.path().join("pwned");
    let text = fs::read_to_string(&record).unwrap();
    let tampered: String = text
        .lines()
        .map(|l| {
            if l.starts_with("initrd=") {
                format!("initrd={}\n", outside.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(&record, tampered).unwrap();
    let out = sys.admin(&["finalize-staged"]);
    assert!(out.contains("No staged deployment"), "{out}");
    assert!(!outside.exists());

    // A malformed ostree= argument is an error naming the entry, not a crash.
    let name = fs::read_dir(&loader)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = fs::read_to_string(&name).unwrap();
    fs::write(&name, text.replace("ostree=/ostree/", "ostree=/aaaaaé/")).unwrap();
    let out = sys.admin_with(&["status"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("malformed ostree="),
        "{}",
        stderr(&out)
    );
}

#[test]
fn health_checks_that_cannot_run_fail_and_a_lone_deployment_is_not_rebooted_forever() {
    let dir = tempfile::tempdir().unwrap();
    let mut sys = Sys::new(dir.path());
    sys.init("testos");
    let tree = os_tree(dir.path(), "1", "a");
    // A check the admin linked to a program the release no longer ships.
    fs::create_dir_all(tree.join("usr/etc/cairn/health-check.d")).unwrap();
    std::os::unix::fs::symlink(
        "/usr/lib/app/check",
        tree.join("usr/etc/cairn/health-check.d/20-app"),
    )
    .unwrap();
    write(
        &tree.join("usr/lib/cairn/health-check.d/10-data"),
        b"not executable\n",
        0o644,
    );
    commit(&sys.repo_arg(), "testos/stable", &tree, "1");
    sys.admin(&["deploy", "testos/stable"]);
    let marker = dir.path().join("rebooted");
    let reboot = format!("touch {}", marker.display());
    for boot in 1..=4u32 {
        sys.reboot();
        let _ = fs::remove_file(&marker);
        let out = sys.admin_with(&["health-check", "--reboot-command", &reboot], &[]);
        assert_eq!(out.status.code(), Some(1), "boot {boot}");
        let err = stderr(&out);
        assert!(err.contains("20-app: cannot run"), "{err}");
        assert!(err.contains("10-data: not an executable file"), "{err}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if boot < 3 {
            assert!(
                text.contains(&format!("failed on {boot} of 3 boots")),
                "{text}"
            );
            assert!(
                marker.exists(),
                "boot {boot}: a failed boot reboots to try again"
            );
        } else {
            assert!(text.contains("no other deployment"), "{text}");
            assert!(
                !marker.exists(),
                "boot {boot}: nothing to roll back to, no reboot"
            );
        }
    }
    assert_eq!(sys.status()[0]["bad"], true);
}
