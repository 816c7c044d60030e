//! `cairn repo …`: the store's verbs, with ostree's option names.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cairn_store::checkout::{CheckoutOptions, HardlinkMode};
use cairn_store::commit::CommitOptions;
use cairn_store::gvariant::Value;
use cairn_store::object::{display_value, S_IFDIR, S_IFLNK, S_IFMT};
use cairn_store::prune::PruneOptions;
use cairn_store::pull::PullOptions;
use cairn_store::remote::Remote;
use cairn_store::repo::Entry;
use cairn_store::{Checksum, Repo, RepoMode};
use clap::{Args, Subcommand};
use serde::Serialize;

use cairn_store::time;

#[derive(Args)]
pub struct RepoArgs {
    /// Path to the repository.
    #[arg(long, global = true, value_name = "PATH")]
    repo: Option<PathBuf>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Create a repository.
    Init {
        /// archive, bare-user, bare or bare-user-only.
        #[arg(long, default_value = "bare")]
        mode: String,
    },
    /// Commit a directory to a branch; prints the commit checksum.
    Commit(CommitArgs),
    /// Show a branch's history.
    Log { rev: String },
    /// Show a commit.
    Show {
        rev: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// List a commit's files.
    Ls {
        /// Recurse into directories.
        #[arg(short = 'R', long)]
        recursive: bool,
        rev: String,
        paths: Vec<String>,
    },
    /// Print a file of a commit.
    Cat { rev: String, path: String },
    /// Paths added (A), modified (M) and removed (D) between two commits.
    Diff { from: String, to: String },
    /// List refs, or create or delete them.
    Refs {
        /// Create ref NAME pointing at the given revision.
        #[arg(long, value_name = "NAME")]
        create: Option<String>,
        /// Delete the named refs.
        #[arg(long)]
        delete: bool,
        refs: Vec<String>,
    },
    /// Print the checksum a ref or revision names.
    RevParse { rev: String },
    /// Check a commit out into a directory.
    Checkout(CheckoutArgs),
    /// Verify every object reachable from the refs.
    Fsck {
        #[arg(long)]
        json: bool,
    },
    /// Delete objects nothing keeps.
    Prune {
        /// Only refs keep objects (commits outside ref histories go too).
        #[arg(long)]
        refs_only: bool,
        /// Keep this many parents of each ref (-1: all).
        #[arg(long, allow_negative_numbers = true, default_value_t = -1)]
        depth: i64,
        /// Also keep commits newer than this (e.g. "2 weeks ago", 2024-05-01T00:00:00Z).
        #[arg(long, value_name = "DATE")]
        keep_younger_than: Option<String>,
        /// Print what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Regenerate (-u) or show the summary file.
    Summary {
        #[arg(short = 'u', long)]
        update: bool,
    },
    /// Serve an archive repository over HTTP.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Manage remotes (stored in the repository config as ostree stores them).
    #[command(subcommand)]
    Remote(RemoteVerb),
    /// Fetch refs from a remote (by name, or a URL) with their commits and trees.
    Pull(PullArgs),
    /// Sign a commit (or the summary) with ed25519 keys, as `ostree sign` does.
    Sign {
        #[arg(long, default_value = "ed25519")]
        sign_type: String,
        /// File of base64 secret keys, one per line.
        #[arg(long)]
        keys_file: Option<PathBuf>,
        /// Sign the summary file instead of a commit.
        #[arg(long)]
        summary: bool,
        /// The commit (omit with --summary), then base64 secret keys.
        args: Vec<String>,
    },
    /// Static deltas: generate or list.
    #[command(subcommand)]
    StaticDelta(DeltaVerb),
    /// Verify a commit's signatures: ed25519 against public keys, or gpg against keyrings.
    Verify {
        #[arg(long, default_value = "ed25519")]
        sign_type: String,
        /// ed25519: a file of base64 public keys, one per line; gpg: a keyring file.
        #[arg(long)]
        keys_file: Option<PathBuf>,
        /// The commit, then base64 public keys (ed25519) or keyring paths (gpg).
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum DeltaVerb {
    /// Write the delta FROM → TO under deltas/ (run `summary -u` to announce it).
    Generate {
        /// The starting commit; TO's parent by default.
        #[arg(long)]
        from: Option<String>,
        /// The target commit.
        #[arg(long)]
        to: String,
        /// A delta from nothing: every object of TO.
        #[arg(long, conflicts_with = "from")]
        empty: bool,
        /// Send changed files whole instead of as bsdiff patches.
        #[arg(long)]
        disable_bsdiff: bool,
    },
    /// List the deltas in the repository.
    List,
}

#[derive(Subcommand)]
enum RemoteVerb {
    /// Add a remote.
    Add {
        name: String,
        url: String,
        /// Do nothing if the remote exists.
        #[arg(long)]
        if_not_exists: bool,
        /// Do not verify GPG signatures (ostree's default is to verify them).
        #[arg(long)]
        no_gpg_verify: bool,
        /// Verify ed25519 signatures: `ed25519=inline:KEY` or `ed25519=file:PATH`.
        #[arg(long, value_name = "ed25519=inline:KEY|ed25519=file:PATH")]
        sign_verify: Option<String>,
        /// Do not verify ed25519 signatures.
        #[arg(long, conflicts_with = "sign_verify")]
        no_sign_verify: bool,
        /// Further KEY=VALUE settings (e.g. gpgkeypath=…).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// List remotes (-u: with URLs).
    List {
        #[arg(short = 'u', long)]
        show_urls: bool,
    },
    /// Delete a remote.
    Delete {
        name: String,
        #[arg(long)]
        if_exists: bool,
    },
}

#[derive(Args)]
struct PullArgs {
    /// Also pull this many parents (-1: all).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
    depth: i64,
    /// Fetch the commit objects only.
    #[arg(long)]
    commit_metadata_only: bool,
    /// Do not verify signatures even where the remote asks for it.
    #[arg(long)]
    no_sign_verify: bool,
    /// Print a JSON summary at the end.
    #[arg(long)]
    json: bool,
    /// Never use static deltas.
    #[arg(long)]
    disable_static_deltas: bool,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    max_in_flight: usize,
    /// Seconds allowed for one request.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Retries of one request after network errors and 5xx answers.
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// A remote name, or a URL.
    remote: String,
    refs: Vec<String>,
}

#[derive(Args)]
struct CommitArgs {
    #[arg(short = 'b', long)]
    branch: Option<String>,
    #[arg(short = 's', long, default_value = "")]
    subject: String,
    #[arg(long, default_value = "")]
    body: String,
    /// KEY=VALUE string metadata; repeatable.
    #[arg(long = "add-metadata-string", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Commit time (RFC 3339 or @EPOCH); now by default.
    #[arg(long)]
    timestamp: Option<String>,
    /// Source as `dir=PATH` (ostree's form); or give DIR positionally.
    #[arg(long = "tree", value_name = "dir=PATH")]
    tree: Vec<String>,
    /// Record no parent.
    #[arg(long)]
    orphan: bool,
    /// Do not record `ostree.ref-binding`.
    #[arg(long)]
    no_bindings: bool,
    /// uid/gid 0 and modes 0755/0644.
    #[arg(long)]
    canonical_permissions: bool,
    /// Hash every file, ignoring the cache of the previous commit.
    #[arg(long)]
    no_cache: bool,
    /// Deflate level for archive repositories (1–12).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=12))]
    compression_level: Option<i32>,
    /// Print statistics on stderr.
    #[arg(long)]
    stats: bool,
    dir: Option<PathBuf>,
}

#[derive(Args)]
struct CheckoutArgs {
    /// User mode: no ownership or xattrs, no setuid bits.
    #[arg(short = 'U', long = "user-mode")]
    user_mode: bool,
    /// Fail unless every file can be hardlinked.
    #[arg(short = 'H', long = "require-hardlinks")]
    require_hardlinks: bool,
    /// Copy every file.
    #[arg(long)]
    force_copy: bool,
    /// Merge into an existing directory, replacing files.
    #[arg(long)]
    union: bool,
    /// Check out only this directory.
    #[arg(long)]
    subpath: Option<String>,
    /// Skip re-hashing content before hardlinking (copies are always verified).
    #[arg(long)]
    no_verify: bool,
    rev: String,
    dest: PathBuf,
}

fn open_repo(path: &Option<PathBuf>) -> Result<Repo> {
    let path = path
        .as_ref()
        .context("no repository given: pass --repo PATH")?;
    Ok(Repo::open(path)?)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn run(args: RepoArgs) -> Result<i32> {
    let out = std::io::stdout();
    let mut out = out.lock();
    match args.verb {
        Verb::Init { mode } => {
            let path = args
                .repo
                .as_ref()
                .context("no repository given: pass --repo PATH")?;
            let mode: RepoMode = mode.parse()?;
            Repo::init(path, mode)
                .with_context(|| format!("initialise repository {}", path.display()))?;
        }
        Verb::Commit(c) => {
            let repo = open_repo(&args.repo)?;
            let checksum = commit(&repo, c)?;
            writeln!(out, "{checksum}")?;
        }
        Verb::Log { rev } => {
            let repo = open_repo(&args.repo)?;
            let mut next = Some(repo.resolve_rev(&rev)?);
            while let Some(checksum) = next {
                if !repo.has_object(&checksum, cairn_store::ObjectType::Commit) {
                    writeln!(out, "<< History beyond this commit not fetched >>")?;
                    break;
                }
                let c = repo.read_commit(&checksum)?;
                print_commit(&mut out, &checksum, &c)?;
                next = c.parent;
            }
        }
        Verb::Show { rev, json } => {
            let repo = open_repo(&args.repo)?;
            let checksum = repo.resolve_rev(&rev)?;
            let c = repo.read_commit(&checksum)?;
            if json {
                serde_json::to_writer_pretty(&mut out, &CommitJson::new(&checksum, &c))?;
                writeln!(out)?;
            } else {
                print_commit(&mut out, &checksum, &c)?;
                for (k, v) in &c.metadata {
                    writeln!(out, "{k}: {}", display_value(v))?;
                }
            }
        }
        Verb::Ls {
            recursive,
            rev,
            paths,
        } => {
            let repo = open_repo(&args.repo)?;
            let checksum = repo.resolve_rev(&rev)?;
            let paths = if paths.is_empty() {
                vec!["/".to_owned()]
            } else {
                paths
            };
            for path in paths {
                let clean = normalize(&path);
                let entry = repo.lookup_path(&checksum, &clean)?;
                ls_entry(&repo, &mut out, &clean, &entry, recursive, true)?;
            }
        }
        Verb::Cat { rev, path } => {
            let repo = open_repo(&args.repo)?;
            let checksum = repo.resolve_rev(&rev)?;
            let clean = normalize(&path);
            match repo.lookup_path(&checksum, &clean)? {
                Entry::File(f) => {
                    let content = repo.read_content(&f, true)?;
                    if content.is_symlink() {
                        bail!(
                            "{clean} in {rev} is a symlink to {:?}, not a file",
                            content.symlink_target
                        );
                    }
                    out.write_all(&content.data)?;
                }
                Entry::Dir { .. } => bail!("{clean} in {rev} is a directory"),
            }
        }
        Verb::Diff { from, to } => {
            let repo = open_repo(&args.repo)?;
            let a = repo.resolve_rev(&from)?;
            let b = repo.resolve_rev(&to)?;
            let mut changes = cairn_store::diff::diff_commits(&repo, &a, &b)?;
            // ostree prints modified, then removed, then added paths.
            changes.sort_by_key(|c| match c {
                cairn_store::diff::Change::Modified(_) => 0,
                cairn_store::diff::Change::Removed(_) => 1,
                cairn_store::diff::Change::Added(_) => 2,
            });
            for change in changes {
                writeln!(out, "{}    {}", change.letter(), change.path())?;
            }
        }
        Verb::Refs {
            create,
            delete,
            refs,
        } => {
            let repo = open_repo(&args.repo)?;
            if let Some(name) = create {
                let [rev] = refs.as_slice() else {
                    bail!("refs --create NAME needs exactly one revision to point at")
                };
                if repo.read_ref(&name)?.is_some() {
                    bail!("ref {name:?} already exists");
                }
                let checksum = repo.resolve_rev(rev)?;
                repo.write_ref(&name, &checksum)?;
            } else if delete {
                if refs.is_empty() {
                    bail!("refs --delete needs the names of the refs to delete");
                }
                for name in refs {
                    repo.delete_ref(&name)?;
                }
            } else {
                for (name, _) in repo.list_refs()? {
                    if refs.is_empty() || refs.iter().any(|p| name.starts_with(p.as_str())) {
                        writeln!(out, "{name}")?;
                    }
                }
            }
        }
        Verb::RevParse { rev } => {
            let repo = open_repo(&args.repo)?;
            writeln!(out, "{}", repo.resolve_rev(&rev)?)?;
        }
        Verb::Checkout(c) => {
            let repo = open_repo(&args.repo)?;
            let checksum = repo.resolve_rev(&c.rev)?;
            let options = CheckoutOptions {
                user_mode: c.user_mode,
                hardlinks: if c.force_copy {
                    HardlinkMode::Never
                } else if c.require_hardlinks {
                    HardlinkMode::Require
                } else {
                    HardlinkMode::Auto
                },
                union: c.union,
                subpath: c.subpath,
                verify: !c.no_verify,
            };
            let stats = cairn_store::checkout::checkout(&repo, &checksum, &c.dest, &options)
                .with_context(|| format!("check out {} into {}", c.rev, c.dest.display()))?;
            tracing::info!(
                files = stats.files,
                dirs = stats.dirs,
                hardlinked = stats.hardlinked,
                copied = stats.copied,
                "checked out"
            );
        }
        Verb::Fsck { json } => {
            let repo = open_repo(&args.repo)?;
            let report = cairn_store::fsck::fsck(&repo)?;
            if json {
                serde_json::to_writer_pretty(
                    &mut out,
                    &serde_json::json!({
                        "refs": report.refs, "commits": report.commits, "dirtrees": report.dirtrees,
                        "dirmetas": report.dirmetas, "files": report.files, "problems": report.problems,
                    }),
                )?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "Checked {} refs, {} commits, {} dirtrees, {} dirmetas, {} content objects",
                    report.refs, report.commits, report.dirtrees, report.dirmetas, report.files
                )?;
                for c in &report.partial {
                    writeln!(
                        out,
                        "commit {c} is partial (its tree was not pulled); not checked"
                    )?;
                }
                for p in &report.problems {
                    eprintln!("error: {p}");
                }
            }
            if !report.problems.is_empty() {
                eprintln!("fsck: {} problem(s) found", report.problems.len());
                return Ok(1);
            }
        }
        Verb::Prune {
            refs_only,
            depth,
            keep_younger_than,
            dry_run,
        } => {
            let repo = open_repo(&args.repo)?;
            let keep_younger_than = keep_younger_than
                .map(|t| time::parse_timestamp(&t, now()).map_err(anyhow::Error::msg))
                .transpose()?;
            let options = PruneOptions {
                refs_only,
                depth: u64::try_from(depth).ok(),
                keep_younger_than,
                dry_run,
            };
            let report = cairn_store::prune::prune(&repo, &options)?;
            if dry_run {
                for (c, kind) in &report.deleted {
                    writeln!(out, "would delete {c}.{kind}")?;
                }
            }
            writeln!(
                out,
                "Total objects: {}\n{} {} objects, {} bytes freed",
                report.total,
                if dry_run { "Would delete" } else { "Deleted" },
                report.deleted.len(),
                report.freed_bytes
            )?;
        }
        Verb::Serve { listen } => {
            let repo = open_repo(&args.repo)?;
            if !repo.is_archive() {
                bail!(
                    "{} is a {} repository; only archive repositories can be served over HTTP",
                    repo.path().display(),
                    repo.mode().cli_name()
                );
            }
            cairn_repo_server::run(repo.path().to_owned(), listen)
                .with_context(|| format!("serve on {listen}"))?;
        }
        Verb::Remote(verb) => {
            let repo = open_repo(&args.repo)?;
            remote(&repo, verb, &mut out)?;
        }
        Verb::Pull(p) => {
            let repo = open_repo(&args.repo)?;
            let remote = if p.remote.contains("://") {
                Remote::from_url(&p.remote)
            } else {
                repo.remote(&p.remote)?
            };
            let options = PullOptions {
                refs: p.refs.clone(),
                depth: p.depth,
                commit_metadata_only: p.commit_metadata_only,
                max_in_flight: p.max_in_flight,
                timeout: std::time::Duration::from_secs(p.timeout.max(1)),
                retries: p.retries,
                no_sign_verify: p.no_sign_verify,
                progress: !p.json,
                disable_static_deltas: p.disable_static_deltas,
                override_commit: None,
            };
            let report = cairn_store::pull::pull(&repo, &remote, &options)
                .with_context(|| format!("pull from {}", remote.url))?;
            if p.json {
                serde_json::to_writer_pretty(
                    &mut out,
                    &serde_json::json!({
                        "refs": report.refs.iter().map(|(n, c)| serde_json::json!({"ref": n, "commit": c.to_hex()})).collect::<Vec<_>>(),
                        "requests": report.requests, "objects_fetched": report.objects_fetched,
                        "objects_present": report.objects_present, "bytes_fetched": report.bytes_fetched,
                        "deltas": report.deltas,
                        "seconds": report.seconds,
                    }),
                )?;
                writeln!(out)?;
            } else {
                for (name, checksum) in &report.refs {
                    writeln!(out, "{name} {checksum}")?;
                }
                eprintln!(
                    "{} objects fetched ({} already present), {} bytes in {} requests, {:.1}s",
                    report.objects_fetched,
                    report.objects_present,
                    report.bytes_fetched,
                    report.requests,
                    report.seconds
                );
            }
        }
        Verb::Sign {
            sign_type,
            keys_file,
            summary,
            args: rest,
        } => {
            let repo = open_repo(&args.repo)?;
            if sign_type != "ed25519" {
                bail!("--sign-type {sign_type:?}: only ed25519 is supported");
            }
            let (commit, keys) = if summary {
                (None, rest.as_slice())
            } else {
                let (first, keys) = rest.split_first().context("give the commit to sign")?;
                (Some(first.clone()), keys)
            };
            let mut texts: Vec<String> = keys.to_vec();
            if let Some(f) = keys_file {
                texts.extend(cairn_store::sign::read_key_lines(&f)?);
            }
            if texts.is_empty() {
                bail!("no secret key given: pass keys after the commit or --keys-file FILE");
            }
            let keys = texts
                .iter()
                .map(|t| cairn_store::sign::parse_secret_key(t))
                .collect::<Result<Vec<_>, _>>()?;
            match commit {
                Some(rev) => {
                    let checksum = repo.resolve_rev(&rev)?;
                    repo.sign_commit(&checksum, &keys)?;
                }
                None => repo.sign_summary(&keys)?,
            }
        }
        Verb::Verify {
            sign_type,
            keys_file,
            args: rest,
        } => {
            let repo = open_repo(&args.repo)?;
            let (rev, keys) = rest.split_first().context("give the commit to verify")?;
            if sign_type == "gpg" {
                let mut paths: Vec<PathBuf> = keys.iter().map(PathBuf::from).collect();
                paths.extend(keys_file);
                let keyring = cairn_store::gpg::Keyring::load(&paths)?;
                let checksum = repo.resolve_rev(rev)?;
                let data = repo.read_metadata(&checksum, cairn_store::ObjectType::Commit)?;
                cairn_store::gpg::check_gpg(
                    &checksum,
                    &repo.read_detached_metadata(&checksum)?,
                    &keyring,
                    &data,
                )?;
                writeln!(out, "commit {checksum}: valid GPG signature")?;
                return Ok(0);
            }
            if sign_type != "ed25519" {
                bail!("--sign-type {sign_type:?}: ed25519 or gpg");
            }
            let mut texts: Vec<String> = keys.to_vec();
            if let Some(f) = keys_file {
                texts.extend(cairn_store::sign::read_key_lines(&f)?);
            }
            let keys = texts
                .iter()
                .map(|t| cairn_store::sign::parse_public_key(t))
                .collect::<Result<Vec<_>, _>>()?;
            let checksum = repo.resolve_rev(rev)?;
            repo.verify_commit_ed25519(&checksum, &keys)?;
            writeln!(out, "commit {checksum}: valid ed25519 signature")?;
        }
        Verb::StaticDelta(DeltaVerb::Generate {
            from,
            to,
            empty,
            disable_bsdiff,
        }) => {
            let repo = open_repo(&args.repo)?;
            let to = repo.resolve_rev(&to)?;
            let from = if empty {
                None
            } else {
                Some(match from {
                    Some(f) => repo.resolve_rev(&f)?,
                    None => repo.read_commit(&to)?.parent.with_context(|| {
                        format!("commit {to} has no parent: pass --from or --empty")
                    })?,
                })
            };
            let mut options = cairn_store::delta::GenerateOptions::new(from, to);
            options.bsdiff = !disable_bsdiff;
            let report = cairn_store::delta::generate(&repo, &options, now())?;
            writeln!(
                out,
                "{}",
                cairn_store::delta::delta_name(from.as_ref(), &to)
            )?;
            eprintln!(
                "{} objects ({} as bsdiff patches) in {} part(s), {} bytes",
                report.objects, report.bsdiffs, report.parts, report.bytes
            );
        }
        Verb::StaticDelta(DeltaVerb::List) => {
            let repo = open_repo(&args.repo)?;
            for d in cairn_store::delta::list_deltas(&repo)? {
                writeln!(out, "{}", d.name())?;
            }
        }
        Verb::Summary { update } => {
            let repo = open_repo(&args.repo)?;
            if update {
                cairn_store::summary::update_summary(&repo, now())?;
            } else {
                for (name, checksum) in repo.list_refs()? {
                    if !name.contains(':') {
                        writeln!(out, "* {name}\n    Latest Commit: {checksum}")?;
                    }
                }
            }
        }
    }
    Ok(0)
}

fn remote(repo: &Repo, verb: RemoteVerb, out: &mut impl Write) -> Result<()> {
    match verb {
        RemoteVerb::Add {
            name,
            url,
            if_not_exists,
            no_gpg_verify,
            sign_verify,
            no_sign_verify,
            set,
        } => {
            let mut options = Vec::new();
            if no_gpg_verify {
                options.push(("gpg-verify".to_owned(), "false".to_owned()));
            }
            if let Some(spec) = sign_verify {
                let (kind, source) = spec
                    .split_once('=')
                    .context("--sign-verify expects ed25519=inline:KEY or ed25519=file:PATH")?;
                if kind != "ed25519" {
                    bail!("--sign-verify {spec:?}: only ed25519 is supported");
                }
                options.push(("sign-verify".to_owned(), "true".to_owned()));
                if let Some(key) = source.strip_prefix("inline:") {
                    cairn_store::sign::parse_public_key(key)?;
                    options.push(("verification-ed25519-key".to_owned(), key.to_owned()));
                } else if let Some(path) = source.strip_prefix("file:") {
                    options.push(("verification-ed25519-file".to_owned(), path.to_owned()));
                } else {
                    bail!(
                        "--sign-verify {spec:?}: expected inline:KEY or file:PATH after ed25519="
                    );
                }
            }
            if no_sign_verify {
                options.push(("sign-verify".to_owned(), "false".to_owned()));
            }
            for kv in set {
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("--set {kv:?}: expected KEY=VALUE"))?;
                options.push((k.to_owned(), v.to_owned()));
            }
            repo.add_remote(&name, &url, &options, if_not_exists)?;
        }
        RemoteVerb::List { show_urls } => {
            for r in repo.remotes()? {
                if show_urls {
                    writeln!(out, "{}  {}", r.name, r.url)?;
                } else {
                    writeln!(out, "{}", r.name)?;
                }
            }
        }
        RemoteVerb::Delete { name, if_exists } => repo.delete_remote(&name, if_exists)?,
    }
    Ok(())
}

fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

fn commit(repo: &Repo, c: CommitArgs) -> Result<Checksum> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for t in &c.tree {
        match t.split_once('=') {
            Some(("dir", d)) => dirs.push(d.into()),
            _ => bail!("--tree {t:?}: only --tree=dir=PATH is supported"),
        }
    }
    dirs.extend(c.dir.clone());
    let [dir] = dirs.as_slice() else {
        bail!("give exactly one directory to commit (DIR or --tree=dir=DIR)")
    };
    if c.branch.is_none() && !c.orphan {
        bail!("a branch is required: pass -b/--branch NAME (or --orphan for a commit without one)");
    }
    let mut metadata = Vec::new();
    for kv in &c.metadata {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--add-metadata-string {kv:?}: expected KEY=VALUE"))?;
        metadata.retain(|(key, _): &(String, Value)| key != k);
        metadata.push((k.to_owned(), Value::Str(v.to_owned())));
    }
    let timestamp = c
        .timestamp
        .as_deref()
        .map(|t| time::parse_timestamp(t, now()).map_err(anyhow::Error::msg))
        .transpose()?;
    let options = CommitOptions {
        branch: c.branch,
        subject: c.subject,
        body: c.body,
        metadata,
        timestamp,
        orphan: c.orphan,
        no_bindings: c.no_bindings,
        canonical_permissions: c.canonical_permissions,
        no_cache: c.no_cache,
        compression_level: c.compression_level,
    };
    let started = std::time::Instant::now();
    let (checksum, stats) = cairn_store::commit::commit_directory(repo, dir, &options)
        .with_context(|| format!("commit {}", dir.display()))?;
    if c.stats {
        eprintln!(
            "files: {}, dirs: {}, new objects: {}, unchanged (cached): {}, bytes read: {}, {:.2}s",
            stats.files,
            stats.dirs,
            stats.new_objects,
            stats.cache_hits,
            stats.bytes_read,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(checksum)
}

fn print_commit(
    out: &mut impl Write,
    checksum: &Checksum,
    c: &cairn_store::object::Commit,
) -> Result<()> {
    writeln!(out, "commit {checksum}")?;
    if let Some(p) = &c.parent {
        writeln!(out, "Parent:  {p}")?;
    }
    writeln!(out, "ContentChecksum:  {}", c.content_checksum())?;
    writeln!(out, "Date:  {}", time::format_utc(c.timestamp as i64))?;
    if let Some(v) = c.version() {
        writeln!(out, "Version: {v}")?;
    }
    writeln!(out)?;
    if !c.subject.is_empty() {
        writeln!(out, "    {}", c.subject)?;
    }
    if !c.body.is_empty() {
        writeln!(out)?;
        for line in c.body.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    writeln!(out)?;
    Ok(())
}

fn ls_entry(
    repo: &Repo,
    out: &mut impl Write,
    path: &str,
    entry: &Entry,
    recursive: bool,
    top: bool,
) -> Result<()> {
    match entry {
        Entry::File(f) => {
            let (meta, target, size) = repo.read_content_meta(f)?;
            let kind = if meta.mode & S_IFMT == S_IFLNK {
                'l'
            } else {
                '-'
            };
            let suffix = if target.is_empty() {
                String::new()
            } else {
                format!(" -> {target}")
            };
            writeln!(
                out,
                "{kind}0{:04o} {} {} {size:>6} {path}{suffix}",
                meta.mode & 0o7777,
                meta.uid,
                meta.gid
            )?;
        }
        Entry::Dir { tree, meta } => {
            let m = repo.read_dirmeta(meta)?;
            debug_assert_eq!(m.mode & S_IFMT, S_IFDIR);
            writeln!(
                out,
                "d0{:04o} {} {} {:>6} {path}",
                m.mode & 0o7777,
                m.uid,
                m.gid,
                0
            )?;
            if top || recursive {
                let t = repo.read_dirtree(tree)?;
                let join = |name: &str| {
                    if path == "/" {
                        format!("/{name}")
                    } else {
                        format!("{path}/{name}")
                    }
                };
                for (name, c) in &t.files {
                    ls_entry(repo, out, &join(name), &Entry::File(*c), recursive, false)?;
                }
                for (name, t, m) in &t.dirs {
                    let child = Entry::Dir { tree: *t, meta: *m };
                    if recursive {
                        ls_entry(repo, out, &join(name), &child, recursive, false)?;
                    } else {
                        let dm = repo.read_dirmeta(m)?;
                        writeln!(
                            out,
                            "d0{:04o} {} {} {:>6} {}",
                            dm.mode & 0o7777,
                            dm.uid,
                            dm.gid,
                            0,
                            join(name)
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// `cairn repo show --json`: cairn's own output format, versioned by its field names.
#[derive(Serialize)]
struct CommitJson {
    checksum: String,
    parent: Option<String>,
    subject: String,
    body: String,
    timestamp: u64,
    date: String,
    version: Option<String>,
    root_dirtree: String,
    root_dirmeta: String,
    content_checksum: String,
    metadata: serde_json::Map<String, serde_json::Value>,
}

impl CommitJson {
    fn new(checksum: &Checksum, c: &cairn_store::object::Commit) -> Self {
        CommitJson {
            checksum: checksum.to_hex(),
            parent: c.parent.map(|p| p.to_hex()),
            subject: c.subject.clone(),
            body: c.body.clone(),
            timestamp: c.timestamp,
            date: time::format_rfc3339(c.timestamp as i64),
            version: c.version().map(str::to_owned),
            root_dirtree: c.root_tree.to_hex(),
            root_dirmeta: c.root_meta.to_hex(),
            content_checksum: c.content_checksum().to_hex(),
            metadata: c
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), value_json(v)))
                .collect(),
        }
    }
}

fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => s.clone().into(),
        Value::Bool(b) => (*b).into(),
        Value::Byte(x) => (*x).into(),
        Value::U16(x) => (*x).into(),
        Value::I16(x) => (*x).into(),
        Value::U32(x) => (*x).into(),
        Value::I32(x) => (*x).into(),
        Value::U64(x) => (*x).into(),
        Value::I64(x) => (*x).into(),
        Value::F64(x) => (*x).into(),
        Value::Bytes(b) => hex_string(b).into(),
        Value::Array(_, items) | Value::Struct(items) => items.iter().map(value_json).collect(),
        Value::Variant(inner) => value_json(inner),
        Value::Maybe(_, inner) => inner
            .as_ref()
            .map(|i| value_json(i))
            .unwrap_or(serde_json::Value::Null),
        Value::DictEntry(k, v) => serde_json::Value::Array(vec![value_json(k), value_json(v)]),
    }
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
