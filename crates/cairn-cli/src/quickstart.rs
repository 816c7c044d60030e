//! `cairn quickstart`: the main job end to end, on embedded defaults, in a fresh directory.
//!
//! Build a sample OS tree, commit it to an archive repository and sign it, serve the
//! repository over HTTP, let a "machine" (a bare-user repository that verifies
//! signatures) pull it; change the tree, commit, sign and generate a static delta; the
//! machine pulls the update through the delta; show log and diff, check the update out
//! and verify both repositories; then provision a machine, serve the update graph and
//! coordinate reboots through reboot slots. Each later capability adds its step here.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cairn_store::checkout::CheckoutOptions;
use cairn_store::commit::CommitOptions;
use cairn_store::gvariant::Value;
use cairn_store::pull::PullOptions;
use cairn_store::{Checksum, Repo, RepoMode};
use cairn_sysroot::deploy::{DeployOptions, KargsEdit, UpgradeOptions, UpgradeOutcome};
use cairn_sysroot::sysroot::BootSource;
use cairn_sysroot::Sysroot;
use clap::Args;

const BRANCH: &str = "sample/x86_64/stable";
const STATEROOT: &str = "sample";
const PROVISIONING_CONFIG: &str = "variant: fcos
version: 1.6.0
passwd:
  users:
    - name: core
      ssh_authorized_keys:
        - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnly core@example
storage:
  files:
    - path: /etc/motd
      mode: 0644
      contents:
        inline: Provisioned by cairn.
  filesystems:
    - device: /dev/disk/by-partlabel/var
      path: /var
      format: xfs
      with_mount_unit: true
systemd:
  units:
    - name: hello.service
      enabled: true
      contents: |
        [Service]
        Type=oneshot
        ExecStart=/usr/bin/echo hello
        [Install]
        WantedBy=multi-user.target
";

#[derive(Args)]
pub struct QuickstartArgs {
    /// Where to work; a new directory under the system temp dir by default.
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn step(n: u32, text: &str) {
    println!("\n== {n}. {text}");
}

pub(crate) fn write(path: &Path, data: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    fs::write(path, data).with_context(|| format!("write {}", path.display()))
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn run(args: QuickstartArgs) -> Result<i32> {
    let work = match args.dir {
        Some(d) => {
            fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
            d
        }
        None => tempfile::Builder::new()
            .prefix("cairn-quickstart-")
            .tempdir()?
            .keep(),
    };
    println!("cairn quickstart in {}", work.display());

    step(1, "build a sample OS tree");
    let tree = work.join("rootfs");
    write(
        &tree.join("usr/lib/os-release"),
        "NAME=\"Sample OS\"\nPRETTY_NAME=\"Sample OS\"\nVERSION_ID=1\n",
    )?;
    write(
        &tree.join("usr/lib/modules/6.1.0-sample/vmlinuz"),
        "a sample kernel\n",
    )?;
    write(
        &tree.join("usr/lib/modules/6.1.0-sample/initramfs.img"),
        "a sample initramfs\n",
    )?;
    write(
        &tree.join("usr/bin/hello"),
        "#!/bin/sh\necho hello from sample OS 1\n",
    )?;
    write(&tree.join("usr/etc/hostname"), "sample\n")?;
    write(
        &tree.join("usr/share/doc/sample/README"),
        "A tree committed by cairn.\n",
    )?;
    let library: String = (0..4000)
        .map(|i| format!("symbol_{i} = {}\n", i * 7))
        .collect();
    write(&tree.join("usr/lib/libsample.so"), &library)?;
    fs::create_dir_all(tree.join("var/empty"))?;
    std::os::unix::fs::symlink("../lib/os-release", tree.join("usr/etc/os-release"))?;
    set_mode(&tree.join("usr/bin/hello"), 0o755)?;
    println!(
        "{} with files, a symlink and an empty directory",
        tree.display()
    );

    step(
        2,
        "commit it to an archive repository and sign the commit (ed25519, as `ostree sign`)",
    );
    let repo_path = work.join("repo");
    let repo = Repo::init(&repo_path, RepoMode::Archive)?;
    let key = new_signing_key()?;
    let (_, public) = cairn_store::sign::encode_keypair(&key);
    let first = commit(&repo, &tree, "Sample OS 1", "1")?;
    repo.sign_commit(&first, std::slice::from_ref(&key))?;
    cairn_store::summary::update_summary(&repo, now())?;
    println!(
        "cairn repo commit --repo {} -b {BRANCH} {}\n{first}",
        repo_path.display(),
        tree.display()
    );
    println!("public key: {public}");

    step(
        3,
        "serve the repository over HTTP (any static web server would do)",
    );
    let server = cairn_repo_server::spawn(repo_path.clone(), "127.0.0.1:0".parse()?)?;
    let url = format!("http://{}/", server.addr);
    println!(
        "cairn repo serve --repo {} --listen {}",
        repo_path.display(),
        server.addr
    );

    step(4, "a machine pulls it, verifying the signature");
    let machine_path = work.join("machine");
    let machine = Repo::init(&machine_path, RepoMode::BareUser)?;
    add_signed_origin(&machine, &url, &public)?;
    let options = PullOptions {
        refs: vec![BRANCH.into()],
        progress: false,
        ..Default::default()
    };
    let report = cairn_store::pull::pull(&machine, &machine.remote("origin")?, &options)?;
    println!(
        "pulled {} objects ({} bytes) in {:.2}s",
        report.objects_fetched, report.bytes_fetched, report.seconds
    );

    step(
        5,
        "install release 1 on a machine's sysroot (OSTree's layout: `ostree admin status` reads it)",
    );
    let sysroot_path = work.join("sysroot");
    let cmdline = work.join("cmdline");
    let sysroot = Sysroot::init_fs(&sysroot_path)?;
    sysroot.os_init(STATEROOT)?;
    add_signed_origin(sysroot.repo(), &url, &public)?;
    cairn_store::pull::pull(sysroot.repo(), &sysroot.repo().remote("origin")?, &options)?;
    let booted = |n: u32| -> Result<Sysroot> {
        crate::admin_cmd::simulate_boot(&sysroot_path, &cmdline)?;
        Ok(Sysroot::open(&sysroot_path)?.with_boot_source(BootSource {
            cmdline: cmdline.clone(),
            boot_id: Some(format!("quickstart-boot-{n}")),
        }))
    };
    let deployed = cairn_sysroot::deploy::deploy(
        &sysroot,
        &format!("origin:{BRANCH}"),
        &DeployOptions {
            kargs: KargsEdit {
                replace: vec!["root=LABEL=root".into(), "rw".into()],
                ..Default::default()
            },
            ..Default::default()
        },
    )?;
    println!(
        "cairn admin init-fs {0}; cairn admin os-init --sysroot {0} {STATEROOT}\ncairn admin deploy --sysroot {0} origin:{BRANCH} --karg root=LABEL=root --karg rw\ndeployed {1}",
        sysroot_path.display(),
        deployed.deployment.dir_name()
    );
    println!("(simulated) boot it:");
    let sysroot = booted(1)?;
    print_sysroot_status(&sysroot)?;

    step(
        6,
        "change the tree, commit, sign, and publish a static delta",
    );
    write(
        &tree.join("usr/lib/os-release"),
        "NAME=\"Sample OS\"\nPRETTY_NAME=\"Sample OS\"\nVERSION_ID=2\n",
    )?;
    write(
        &tree.join("usr/bin/hello"),
        "#!/bin/sh\necho hello from sample OS 2\n",
    )?;
    write(
        &tree.join("usr/lib/libsample.so"),
        &library.replace("symbol_42 ", "symbol_forty_two "),
    )?;
    fs::remove_file(tree.join("usr/share/doc/sample/README"))?;
    write(
        &tree.join("usr/share/doc/sample/CHANGES"),
        "2: new greeting\n",
    )?;
    let second = commit(&repo, &tree, "Sample OS 2", "2")?;
    repo.sign_commit(&second, std::slice::from_ref(&key))?;
    let delta = cairn_store::delta::generate(
        &repo,
        &cairn_store::delta::GenerateOptions::new(Some(first), second),
        now(),
    )?;
    cairn_store::summary::update_summary(&repo, now())?;
    println!(
        "{second}\ndelta {}: {} objects, {} as bsdiff patches, {} bytes",
        cairn_store::delta::delta_name(Some(&first), &second),
        delta.objects,
        delta.bsdiffs,
        delta.bytes
    );

    step(7, "the machine pulls the update through the delta");
    let report = cairn_store::pull::pull(&machine, &machine.remote("origin")?, &options)?;
    println!(
        "pulled {} objects ({} bytes) using {}",
        report.objects_fetched,
        report.bytes_fetched,
        if report.deltas.is_empty() {
            "no delta".to_owned()
        } else {
            format!("delta {}", report.deltas.join(", "))
        }
    );

    step(
        8,
        "upgrade the sysroot over HTTP: pull the origin's ref, deploy beside the booted one",
    );
    match cairn_sysroot::deploy::upgrade(
        &sysroot,
        &UpgradeOptions {
            pull: PullOptions {
                progress: false,
                ..Default::default()
            },
            ..Default::default()
        },
    )? {
        UpgradeOutcome::NoUpdate(c) => anyhow::bail!("the upgrade found nothing new ({c})"),
        UpgradeOutcome::Deployed(d) => println!(
            "cairn admin upgrade --sysroot {}\ndeployed {}; /var and the machine's /etc changes carry over",
            sysroot_path.display(),
            d.deployment.dir_name()
        ),
    }
    println!("(simulated) reboot into it:");
    let sysroot = booted(2)?;
    print_sysroot_status(&sysroot)?;

    step(9, "roll back to release 1, and reboot");
    let back = cairn_sysroot::deploy::rollback(&sysroot)?;
    println!(
        "cairn admin rollback --sysroot {}\n{} is the default again",
        sysroot_path.display(),
        back.dir_name()
    );
    let sysroot = booted(3)?;
    print_sysroot_status(&sysroot)?;
    drop(server);

    step(10, "log");
    let mut next = Some(second);
    while let Some(c) = next {
        let commit = repo.read_commit(&c)?;
        println!(
            "commit {c}\n  version {}  {}  {}",
            commit.version().unwrap_or("-"),
            cairn_store::time::format_utc(commit.timestamp as i64),
            commit.subject
        );
        next = commit.parent;
    }

    step(11, "diff between the two commits");
    for change in cairn_store::diff::diff_commits(&repo, &first, &second)? {
        println!("{}    {}", change.letter(), change.path());
    }

    step(12, "check the update out on the machine (hardlinks)");
    let dest = work.join("checkout");
    let head = machine.resolve_rev(&format!("origin:{BRANCH}"))?;
    let stats = cairn_store::checkout::checkout(
        &machine,
        &head,
        &dest,
        &CheckoutOptions {
            user_mode: true,
            verify: true,
            ..Default::default()
        },
    )?;
    println!(
        "{} files ({} hardlinked), {} directories into {}",
        stats.files,
        stats.hardlinked,
        stats.dirs,
        dest.display()
    );
    print!("{}", fs::read_to_string(dest.join("usr/lib/os-release"))?);

    step(
        13,
        "write the machines' provisioning config in YAML (Butane's language) and translate it to Ignition",
    );
    let config_path = work.join("machine.bu");
    write(&config_path, PROVISIONING_CONFIG)?;
    let source = cairn_provision::Source {
        name: config_path.display().to_string(),
        text: PROVISIONING_CONFIG.to_owned(),
    };
    let translated = cairn_provision::translate(&source, &cairn_provision::Options::default())
        .map_err(|diagnostics| {
            let text: Vec<String> = diagnostics.iter().map(|d| d.to_string()).collect();
            anyhow::anyhow!("the sample config is invalid:\n{}", text.join("\n"))
        })?;
    let ignition_path = work.join("machine.ign");
    write(
        &ignition_path,
        &serde_json::to_string_pretty(&translated.config)?,
    )?;
    println!(
        "cairn config translate {} -o {}\n{} {} → Ignition {}; {} bytes of JSON, checked with every rule of that spec",
        config_path.display(),
        ignition_path.display(),
        translated.spec.variant,
        translated.spec.version,
        translated.spec.ignition,
        fs::metadata(&ignition_path)?.len()
    );
    let bad = PROVISIONING_CONFIG.replace("path: /etc/motd", "path: etc/motd");
    let errors = cairn_provision::translate(
        &cairn_provision::Source {
            name: "typo.bu".into(),
            text: bad,
        },
        &cairn_provision::Options::default(),
    )
    .err()
    .unwrap_or_default();
    println!("and a typo is caught before any machine boots:");
    for d in errors.iter().filter(|d| d.is_error()) {
        println!("{d}");
    }

    step(
        14,
        "first boot: apply the config to the machine's root — all or nothing, exactly once",
    );
    first_boot(&work.join("firstboot"), &ignition_path)?;

    step(
        15,
        "serve the update graph (Cincinnati, as Fedora CoreOS serves it): release 2 rolls out gradually",
    );
    update_graph(&work.join("graph"), &first.to_string(), &second.to_string())?;

    step(
        16,
        "coordinate reboots (FleetLock, as Zincati asks and Airlock answers): three machines, two slots",
    );
    reboot_slots(&work.join("lock"))?;

    step(
        17,
        "a small fleet: three machines provisioned, release 3 rolled out gradually through two reboot slots, one machine rolling back",
    );
    crate::quickstart_fleet::run(
        &work,
        &crate::quickstart_fleet::Release {
            repo: &repo,
            repo_path: &repo_path,
            tree: &tree,
            key: &key,
            public: &public,
            branch: BRANCH,
            stateroot: STATEROOT,
        },
        &first,
        &second,
    )?;

    step(18, "verify the repositories");
    let mut clean = true;
    for (name, r) in [
        ("server", &repo),
        ("machine", &machine),
        ("sysroot", sysroot.repo()),
    ] {
        let report = cairn_store::fsck::fsck(r)?;
        clean &= report.problems.is_empty();
        println!(
            "{name}: {} commits, {} dirtrees, {} content objects: {}",
            report.commits,
            report.dirtrees,
            report.files,
            if report.problems.is_empty() {
                "all good".to_owned()
            } else {
                report.problems.join("; ")
            }
        );
    }
    println!(
        "\nDone. `ostree --repo={} log {BRANCH}` reads the same repository.",
        repo_path.display()
    );
    Ok(if clean { 0 } else { 1 })
}

/// Publishes both releases in a release index, starts the rollout of release 2 (a quarter
/// of the fleet now, everyone in an hour), serves the graph, and asks it as an eager and
/// as a wary machine.
fn update_graph(dir: &Path, first: &str, second: &str) -> Result<()> {
    fs::create_dir_all(dir)?;
    let modified = cairn_store::time::format_rfc3339(now() as i64);
    let release = |version: &str, checksum: &str| {
        serde_json::json!({
            "version": version,
            "metadata": format!("https://example.invalid/{version}/release.json"),
            "commits": [{"architecture": "x86_64", "checksum": checksum}],
        })
    };
    let index = serde_json::json!({
        "stream": "stable",
        "metadata": {"last-modified": modified},
        "releases": [release("1", first), release("2", second)],
    });
    write(
        &dir.join("releases-stable.json"),
        &serde_json::to_string_pretty(&index)?,
    )?;
    let updates_path = dir.join("updates-stable.json");
    let mut updates = cairn_graph::wire::parse_updates(&format!(
        r#"{{"stream": "stable", "metadata": {{"last-modified": "{modified}"}}, "releases": []}}"#
    ))?;
    cairn_graph::edit::start_rollout(&mut updates, "2", now() as i64, 0.25, 60)?;
    write(&updates_path, &cairn_graph::wire::to_pretty_json(&updates))?;
    println!(
        "cairn graph rollout start --updates {} --start-percentage 0.25 --duration 60 2",
        updates_path.display()
    );
    for line in cairn_graph::edit::describe(&updates, now() as i64) {
        println!("{line}");
    }
    let settings = cairn_graph_server::Settings::from_dir(dir, &["stable"], None);
    let server = cairn_graph_server::spawn(settings, "127.0.0.1:0".parse()?)?;
    println!("cairn graph serve --listen {} …", server.addr);
    for (who, wariness) in [("an eager machine", "0.1"), ("a wary machine", "0.9")] {
        let url = format!(
            "http://{}/v1/graph?basearch=x86_64&stream=stable&rollout_wariness={wariness}",
            server.addr
        );
        let body = http_get(&url)?;
        let graph: cairn_graph::Graph = serde_json::from_str(&body)?;
        let offered: Vec<String> = graph
            .edges
            .iter()
            .map(|(from, to)| {
                format!(
                    "{} → {}",
                    graph.nodes[*from as usize].version, graph.nodes[*to as usize].version
                )
            })
            .collect();
        println!(
            "{who} (rollout_wariness={wariness}) is offered: {}",
            if offered.is_empty() {
                "nothing yet".to_string()
            } else {
                offered.join(", ")
            }
        );
    }
    Ok(())
}

/// A GET that returns the body of a 200.
/// Serves FleetLock on the embedded store with 2 reboot slots; three machines ask for one,
/// the third waits until the first is back and healthy, and the operator's status shows who
/// holds what since when.
fn reboot_slots(dir: &Path) -> Result<()> {
    let store = cairn_lock::EmbeddedStore::open(&dir.join("data"))?;
    let mut settings = cairn_lock_server::Settings::with_slots([("workers", 2)]);
    settings.admin_token = Some("quickstart".into());
    let service = cairn_lock_server::Service::new(store, settings);
    let server = cairn_lock_server::spawn(service, "127.0.0.1:0".parse()?)?;
    println!(
        "cairn lock serve --listen {} --data-dir {} (group workers: 2 slots)",
        server.addr,
        dir.join("data").display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::new();
    let ask = |endpoint: &str, machine: &str| {
        let url = format!("http://{}/v1/{endpoint}", server.addr);
        let body = serde_json::json!({"client_params": {"id": machine, "group": "workers"}});
        let request = client
            .post(url)
            .header("fleet-lock-protocol", "true")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        runtime.block_on(async {
            let response = request.send().await?;
            let status = response.status();
            let text = response.text().await?;
            anyhow::Ok((status, text))
        })
    };
    for machine in ["machine-1", "machine-2", "machine-3"] {
        let (status, text) = ask("pre-reboot", machine)?;
        if status.is_success() {
            println!("{machine} asks to reboot: granted, it reboots into the update");
        } else {
            let error: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            println!(
                "{machine} asks to reboot: wait ({} {}: {})",
                status.as_u16(),
                error["kind"].as_str().unwrap_or_default(),
                error["value"].as_str().unwrap_or_default()
            );
        }
    }
    let report = runtime.block_on(async {
        let url = format!("http://{}/v1/admin/groups", server.addr);
        let response = client
            .get(url)
            .bearer_auth("quickstart")
            .send()
            .await?
            .error_for_status()?;
        let bytes = response.bytes().await?;
        anyhow::Ok(serde_json::from_slice::<cairn_lock_server::GroupsReport>(
            &bytes,
        )?)
    })?;
    println!("cairn lock status:");
    for line in crate::lock_cmd::describe(&report.groups, now()).lines() {
        println!("  {line}");
    }
    let (status, _) = ask("steady-state", "machine-1")?;
    anyhow::ensure!(status.is_success(), "steady-state answered {status}");
    println!("machine-1 is back and healthy: it gives its slot back");
    let (status, _) = ask("pre-reboot", "machine-3")?;
    println!(
        "machine-3 asks again: {}",
        if status.is_success() {
            "granted".to_string()
        } else {
            format!("refused ({status})")
        }
    );
    Ok(())
}

fn http_get(url: &str) -> Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let response = reqwest::get(url).await?.error_for_status()?;
        Ok(response.text().await?)
    })
}

/// Applies the translated config to a fresh root, as the first boot would.
fn first_boot(root: &Path, config: &Path) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        println!("skipped: setting owners in a root needs root (sudo cairn quickstart)");
        return Ok(());
    }
    // A root with the account files a distribution ships.
    fs::create_dir_all(root.join("etc/skel"))?;
    fs::create_dir_all(root.join("home"))?;
    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\n",
    )?;
    write(&root.join("etc/group"), "root:x:0:\nwheel:x:10:\n")?;
    write(&root.join("etc/shadow"), "root:*:19000:0:99999:7:::\n")?;
    write(&root.join("etc/gshadow"), "root:*::\nwheel:*::\n")?;
    write(
        &root.join("etc/login.defs"),
        "UID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\nUSERGROUPS_ENAB yes\nUMASK 022\n",
    )?;
    let input = fs::read(config)?;
    let shown = format!(
        "cairn provision apply --root {} {}",
        root.display(),
        config.display()
    );
    let mut options = cairn_apply::ApplyOptions::default();
    match cairn_apply::apply_config(root, &input, &options) {
        Err(e) => println!("{shown}\nrefused: {e}"),
        Ok(_) => anyhow::bail!("a config with a filesystem was applied without --skip-storage"),
    }
    options.skip_storage = true;
    let outcome = cairn_apply::apply_config(root, &input, &options)?;
    let cairn_apply::Outcome::Applied { changes, .. } = outcome else {
        anyhow::bail!("the fresh root was already provisioned");
    };
    println!("{shown} --skip-storage\n{changes} changes, switched in one journalled transaction:");
    let passwd = fs::read_to_string(root.join("etc/passwd"))?;
    for line in passwd.lines().filter(|l| l.starts_with("core:")) {
        println!("  /etc/passwd: {line}");
    }
    for path in [
        "etc/motd",
        "home/core/.ssh/authorized_keys.d/ignition",
        "etc/systemd/system/hello.service",
        "etc/systemd/system-preset/20-ignition.preset",
    ] {
        let meta = fs::metadata(root.join(path))?;
        println!(
            "  /{path}: {} bytes, mode {:o}",
            meta.len(),
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777
        );
    }
    if let cairn_apply::Outcome::AlreadyProvisioned { date } =
        cairn_apply::apply_config(root, &input, &options)?
    {
        println!("run again: already provisioned on {date}; nothing changed");
    }
    Ok(())
}

fn new_signing_key() -> Result<ed25519_dalek::SigningKey> {
    use std::io::Read;
    let mut seed = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .context("read a random key seed from /dev/urandom")?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

pub(crate) fn commit(repo: &Repo, tree: &Path, subject: &str, version: &str) -> Result<Checksum> {
    let options = CommitOptions {
        branch: Some(BRANCH.into()),
        subject: subject.into(),
        metadata: vec![("version".into(), Value::Str(version.into()))],
        ..Default::default()
    };
    Ok(cairn_store::commit::commit_directory(repo, tree, &options)?.0)
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// `origin` at `url`, with ed25519 signatures required (the public key given).
pub(crate) fn add_signed_origin(repo: &Repo, url: &str, public: &str) -> Result<()> {
    repo.add_remote(
        "origin",
        url,
        &[
            ("gpg-verify".into(), "false".into()),
            ("sign-verify".into(), "true".into()),
            ("verification-ed25519-key".into(), public.to_owned()),
        ],
        false,
    )?;
    Ok(())
}

fn print_sysroot_status(sysroot: &Sysroot) -> Result<()> {
    let state = sysroot.load()?;
    crate::admin_cmd::print_status(&mut std::io::stdout().lock(), sysroot, &state)
}
