//! `cairn quickstart`: the main job end to end, on embedded defaults, in a fresh directory.
//!
//! Today: build a sample OS tree, commit it to an archive repository, change it, commit
//! again, show the log and the diff, check the new commit out, verify the repository.
//! Each later capability adds its step here.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cairn_store::checkout::CheckoutOptions;
use cairn_store::commit::CommitOptions;
use cairn_store::gvariant::Value;
use cairn_store::{Repo, RepoMode};
use clap::Args;

#[derive(Args)]
pub struct QuickstartArgs {
    /// Where to work; a new directory under the system temp dir by default.
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn step(n: u32, text: &str) {
    println!("\n== {n}. {text}");
}

fn write(path: &Path, data: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    fs::write(path, data).with_context(|| format!("write {}", path.display()))
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
        "NAME=\"Sample OS\"\nVERSION_ID=1\n",
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
    fs::create_dir_all(tree.join("var/empty"))?;
    std::os::unix::fs::symlink("../lib/os-release", tree.join("usr/etc/os-release"))?;
    set_mode(&tree.join("usr/bin/hello"), 0o755)?;
    println!(
        "{} with files, a symlink and an empty directory",
        tree.display()
    );

    step(
        2,
        "commit it to an archive repository (as a web server would serve it)",
    );
    let repo_path = work.join("repo");
    let repo = Repo::init(&repo_path, RepoMode::Archive)?;
    let first = commit(&repo, &tree, "Sample OS 1", "1")?;
    println!(
        "cairn repo commit --repo {} -b sample/x86_64/stable {}\n{first}",
        repo_path.display(),
        tree.display()
    );

    step(3, "change the tree and commit again");
    write(
        &tree.join("usr/lib/os-release"),
        "NAME=\"Sample OS\"\nVERSION_ID=2\n",
    )?;
    write(
        &tree.join("usr/bin/hello"),
        "#!/bin/sh\necho hello from sample OS 2\n",
    )?;
    fs::remove_file(tree.join("usr/share/doc/sample/README"))?;
    write(
        &tree.join("usr/share/doc/sample/CHANGES"),
        "2: new greeting\n",
    )?;
    let second = commit(&repo, &tree, "Sample OS 2", "2")?;
    println!("{second}");

    step(4, "log");
    let mut next = Some(second);
    while let Some(c) = next {
        let commit = repo.read_commit(&c)?;
        println!(
            "commit {c}\n  version {}  {}  {}",
            commit.version().unwrap_or("-"),
            crate::time::format_utc(commit.timestamp),
            commit.subject
        );
        next = commit.parent;
    }

    step(5, "diff between the two commits");
    for change in cairn_store::diff::diff_commits(&repo, &first, &second)? {
        println!("{}    {}", change.letter(), change.path());
    }

    step(6, "check the new commit out");
    let dest = work.join("checkout");
    let stats = cairn_store::checkout::checkout(
        &repo,
        &second,
        &dest,
        &CheckoutOptions {
            user_mode: true,
            verify: true,
            ..Default::default()
        },
    )?;
    println!(
        "{} files, {} directories into {}",
        stats.files,
        stats.dirs,
        dest.display()
    );
    print!("{}", fs::read_to_string(dest.join("usr/lib/os-release"))?);

    step(7, "verify the repository");
    let report = cairn_store::fsck::fsck(&repo)?;
    println!(
        "{} commits, {} dirtrees, {} dirmetas, {} content objects: {}",
        report.commits,
        report.dirtrees,
        report.dirmetas,
        report.files,
        if report.problems.is_empty() {
            "all good".to_owned()
        } else {
            report.problems.join("; ")
        }
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    cairn_store::summary::update_summary(&repo, now)?;
    println!(
        "\nDone. The repository at {} can be read by `ostree --repo={} log sample/x86_64/stable`.",
        repo_path.display(),
        repo_path.display()
    );
    Ok(if report.problems.is_empty() { 0 } else { 1 })
}

fn commit(repo: &Repo, tree: &Path, subject: &str, version: &str) -> Result<cairn_store::Checksum> {
    let options = CommitOptions {
        branch: Some("sample/x86_64/stable".into()),
        subject: subject.into(),
        metadata: vec![("version".into(), Value::Str(version.into()))],
        ..Default::default()
    };
    Ok(cairn_store::commit::commit_directory(repo, tree, &options)?.0)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}
