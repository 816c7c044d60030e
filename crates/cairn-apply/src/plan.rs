//! The files stage, planned: a resolved config run against a [`View`] of the root, in
//! Ignition's order and with its semantics, without writing anything. The view then
//! gives the changes that turn the root into what Ignition would have left, which
//! [`crate::txn`] applies all or nothing.
//!
//! Each step reads through the view, so a later step sees what an earlier one planned: a
//! file owned by a user the same config creates, a hard link to a file written in the
//! same config, a unit file replaced by its mask.
//!
//! Order (Ignition 2.x `stages/files`): groups; users, each with its home, password and
//! SSH keys; directories, files and symlinks sorted by depth, then hard links; units
//! (drop-ins, contents, mask), then the preset file; kernel arguments recorded; the
//! result file.

use std::collections::BTreeMap;
use std::io;

use cairn_ignition::{Config, NodeOwner, PasswdUser};

use crate::fetch::decode_data_url;
use crate::passwd::{self, AccountFiles, Defaults, LoginDefs, NewGroup, NewUser, UserChange};
use crate::view::{clean, depth, join, parent_of, Kind, Node, Stat, View};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{path}: {message}")]
    At { path: String, message: String },
    #[error("{0}")]
    Passwd(String),
    #[error("reading {path}: {error}")]
    Io { path: String, error: io::Error },
}

pub(crate) fn at(path: &str, message: impl Into<String>) -> PlanError {
    PlanError::At {
        path: path.to_string(),
        message: message.into(),
    }
}

pub(crate) type Result<T> = std::result::Result<T, PlanError>;

/// What the plan needs besides the config.
#[derive(Clone, Debug)]
pub struct Context {
    /// Days since the epoch, for `shadow`'s last-change field.
    pub days_since_epoch: u64,
    /// The result file's `provisioningDate` (RFC 3339) and `provisioningBootID`.
    pub date: String,
    pub boot_id: String,
}

/// The account files as the plan changes them, with shadow-utils' `NAME-` backups.
struct Accounts {
    files: AccountFiles,
    original: AccountFiles,
    /// Each file's content before the last command that wrote it.
    backups: [Option<String>; 4],
    defs: LoginDefs,
    defaults: Defaults,
}

fn account_entry<'t>(text: &'t str, name: &str) -> Option<Vec<&'t str>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == name)
}

const ACCOUNT_FILES: [&str; 4] = ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"];

fn field(files: &AccountFiles, i: usize) -> &String {
    match i {
        0 => &files.passwd,
        1 => &files.group,
        2 => &files.shadow,
        _ => &files.gshadow,
    }
}

impl Accounts {
    fn load(view: &View) -> Result<Accounts> {
        let text = |path: &str| -> Result<String> {
            view.read(path)?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .ok_or_else(|| at(path, "the root has no such file; users and groups need it"))
        };
        let files = AccountFiles {
            passwd: text(ACCOUNT_FILES[0])?,
            group: text(ACCOUNT_FILES[1])?,
            shadow: text(ACCOUNT_FILES[2])?,
            gshadow: text(ACCOUNT_FILES[3])?,
        };
        let optional = |path: &str| -> Result<String> {
            Ok(view
                .read(path)?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default())
        };
        Ok(Accounts {
            original: files.clone(),
            files,
            backups: [None, None, None, None],
            defs: LoginDefs::parse(&optional("/etc/login.defs")?),
            defaults: Defaults::parse(&optional("/etc/default/useradd")?),
        })
    }

    /// Runs one account command; the files it wrote get their backup.
    fn command<T>(
        &mut self,
        op: impl FnOnce(
            &mut AccountFiles,
        )
            -> std::result::Result<(T, Option<passwd::Written>), passwd::PasswdError>,
        what: &str,
    ) -> Result<T> {
        let before = self.files.clone();
        let (out, written) =
            op(&mut self.files).map_err(|e| PlanError::Passwd(format!("{what}: {e}")))?;
        for i in 0..4 {
            let wrote = match written {
                Some(w) => [w.passwd, w.group, w.shadow, w.gshadow][i],
                None => field(&before, i) != field(&self.files, i),
            };
            if wrote {
                self.backups[i] = Some(field(&before, i).clone());
            }
        }
        Ok(out)
    }

    fn user(&self, name: &str) -> Option<(u32, u32, String)> {
        let f = account_entry(&self.files.passwd, name)?;
        Some((
            f.get(2)?.parse().ok()?,
            f.get(3)?.parse().ok()?,
            f.get(5).copied().unwrap_or("").to_string(),
        ))
    }

    fn group(&self, name: &str) -> Option<u32> {
        account_entry(&self.files.group, name)?.get(2)?.parse().ok()
    }

    /// The account files and backups, written with each file's own mode and owner.
    fn write(&self, view: &mut View) -> Result<()> {
        for (i, path) in ACCOUNT_FILES.iter().enumerate() {
            let now = field(&self.files, i);
            if now == field(&self.original, i) && self.backups[i].is_none() {
                continue;
            }
            let st = view
                .stat(path)
                .ok_or_else(|| at(path, "vanished while planning"))?;
            view.set(
                path,
                Node::File {
                    contents: Some(now.clone().into_bytes()),
                    mode: st.mode,
                    uid: st.uid,
                    gid: st.gid,
                },
            );
            if let Some(backup) = &self.backups[i] {
                view.set(
                    &format!("{path}-"),
                    Node::File {
                        contents: Some(backup.clone().into_bytes()),
                        mode: st.mode,
                        uid: st.uid,
                        gid: st.gid,
                    },
                );
            }
        }
        Ok(())
    }
}

/// Plans `config` (every resource already a verified `data:` URL) against `view`.
pub fn plan(view: &mut View, config: &Config, ctx: &Context) -> Result<()> {
    let mut accounts = None;
    if !config.passwd.groups.is_empty() || !config.passwd.users.is_empty() {
        let mut a = Accounts::load(view)?;
        plan_passwd(view, &mut a, config, ctx)?;
        accounts = Some(a);
    }
    plan_entries(view, accounts, config)?;
    plan_units(view, config)?;
    plan_kernel_arguments(view, config)?;
    plan_result_file(view, ctx)?;
    Ok(())
}

/// Where the kernel arguments a config asks for are recorded for the sysroot layer.
pub const KERNEL_ARGUMENTS: &str = "/etc/cairn/provision/kernel-arguments.json";

/// Ignition hands `kernelArguments` to a distro hook in its own stage; a root has no
/// boot loader to change, so the request is recorded, for the sysroot layer to apply
/// at the next deployment (docs/protocols/provision-apply.md).
fn plan_kernel_arguments(view: &mut View, config: &Config) -> Result<()> {
    let k = &config.kernel_arguments;
    if k.should_exist.is_empty() && k.should_not_exist.is_empty() {
        return Ok(());
    }
    let record = serde_json::json!({
        "shouldExist": k.should_exist,
        "shouldNotExist": k.should_not_exist,
    });
    let mut text =
        serde_json::to_vec_pretty(&record).map_err(|e| at(KERNEL_ARGUMENTS, e.to_string()))?;
    text.push(b'\n');
    write_plain(view, KERNEL_ARGUMENTS, text)
}

fn data(source: Option<&str>, what: &str) -> Result<Vec<u8>> {
    match source {
        None => Ok(Vec::new()),
        Some(url) => decode_data_url(url).map_err(|e| at(what, e.to_string())),
    }
}

fn plan_passwd(view: &mut View, a: &mut Accounts, config: &Config, ctx: &Context) -> Result<()> {
    for g in &config.passwd.groups {
        let exists = a.group(&g.name).is_some();
        if g.should_exist == Some(false) {
            if exists {
                a.command(
                    |f| passwd::delete_group(f, &g.name).map(|w| ((), Some(w))),
                    &format!("group {:?}", g.name),
                )?;
            }
            continue;
        }
        let new = NewGroup {
            name: g.name.clone(),
            gid: g.gid.and_then(|v| u32::try_from(v).ok()),
            system: g.system == Some(true),
            password_hash: Some(
                g.password_hash
                    .clone()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "*".into()),
            ),
        };
        let defs = a.defs.clone();
        a.command(
            |f| passwd::add_group(f, &defs, &new).map(|_| ((), None)),
            &format!("group {:?}", g.name),
        )?;
    }
    for u in &config.passwd.users {
        plan_user(view, a, u, ctx)?;
    }
    a.write(view)
}

fn plan_user(view: &mut View, a: &mut Accounts, u: &PasswdUser, ctx: &Context) -> Result<()> {
    let what = format!("user {:?}", u.name);
    let exists = a.user(&u.name).is_some();
    let hash = u.password_hash.as_ref().map(|h| {
        if h.is_empty() {
            "*".to_string()
        } else {
            h.clone()
        }
    });
    if u.should_exist == Some(false) {
        if exists {
            let defs = a.defs.clone();
            let home = a.command(
                |f| passwd::delete_user(f, &defs, &u.name).map(|(h, w)| (h, Some(w))),
                &what,
            )?;
            if let Some(home) = home {
                let home = view.resolve(&home)?;
                view.remove_all(&home);
            }
            let spool = view.resolve(&format!("/var/mail/{}", u.name))?;
            if view.stat(&spool).is_some() {
                view.remove_all(&spool);
            }
        }
        return Ok(());
    }
    let uid = u.uid.and_then(|v| u32::try_from(v).ok());
    if exists {
        if let (Some(home), Some((_, _, old))) = (&u.home_dir, a.user(&u.name)) {
            if *home != old {
                return Err(PlanError::Passwd(format!(
                    "{what}: moving an existing user's home ({old} to {home}) is not supported"
                )));
            }
        }
        let change = UserChange {
            name: u.name.clone(),
            password_hash: hash.clone(),
            uid,
            gecos: u.gecos.clone(),
            primary_group: u.primary_group.clone(),
            groups: (!u.groups.is_empty()).then(|| u.groups.clone()),
            shell: u.shell.clone(),
        };
        a.command(
            |f| passwd::modify_user(f, &change, ctx.days_since_epoch).map(|w| ((), Some(w))),
            &what,
        )?;
    } else {
        let new = NewUser {
            name: u.name.clone(),
            uid,
            gecos: u.gecos.clone(),
            home_dir: u.home_dir.clone(),
            no_create_home: u.no_create_home == Some(true),
            primary_group: u.primary_group.clone(),
            groups: u.groups.clone(),
            no_user_group: u.no_user_group == Some(true),
            shell: u.shell.clone(),
            password_hash: Some(hash.clone().unwrap_or_else(|| "*".into())),
            system: u.system == Some(true),
        };
        let mut defs = a.defs.clone();
        // Ignition always passes --create-home unless noCreateHome.
        defs.create_home = true;
        let defaults = a.defaults.clone();
        let (uid, gid, home) = a.command(
            |f| {
                passwd::add_user(f, &defs, &defaults, &new, ctx.days_since_epoch).map(|r| (r, None))
            },
            &what,
        )?;
        // useradd --create-home makes a home for a system user too when asked.
        let home = home.or_else(|| {
            (!new.no_create_home).then(|| {
                new.home_dir
                    .clone()
                    .unwrap_or_else(|| format!("{}/{}", defaults.home, new.name))
            })
        });
        if let Some(home) = home {
            create_home(view, a, &home, uid, gid)?;
        }
    }
    // SetPasswordHash: a second usermod -p.
    if let Some(hash) = &hash {
        let change = UserChange {
            name: u.name.clone(),
            password_hash: Some(hash.clone()),
            ..UserChange::default()
        };
        a.command(
            |f| passwd::modify_user(f, &change, ctx.days_since_epoch).map(|w| ((), Some(w))),
            &what,
        )?;
    }
    if !u.ssh_authorized_keys.is_empty() {
        let (uid, gid, home) = a
            .user(&u.name)
            .ok_or_else(|| PlanError::Passwd(format!("{what}: not found after creation")))?;
        let mut keys = u.ssh_authorized_keys.join("\n");
        if !keys.ends_with('\n') {
            keys.push('\n');
        }
        let path = view.resolve(&format!("{home}/.ssh/authorized_keys.d/ignition"))?;
        mkdir_all_as(view, parent_of(&path), uid, gid)?;
        let (mode, fuid, fgid) = match view.stat(&path) {
            Some(Stat {
                kind: Kind::File,
                mode,
                uid,
                gid,
                ..
            }) => (mode, uid, gid),
            Some(_) => return Err(at(&path, "exists and is not a regular file")),
            None => (0o600, uid, gid),
        };
        view.set(
            &path,
            Node::File {
                contents: Some(keys.into_bytes()),
                mode,
                uid: fuid,
                gid: fgid,
            },
        );
    }
    Ok(())
}

/// Missing directories made as the user would make them (`as_user.MkdirAll(…, 0700)`).
fn mkdir_all_as(view: &mut View, path: &str, uid: u32, gid: u32) -> Result<()> {
    view.mkdir_all(path, 0o700, uid, gid)
}

/// `useradd --create-home`: the home from `/etc/skel`, unless it exists already.
fn create_home(view: &mut View, a: &Accounts, home: &str, uid: u32, gid: u32) -> Result<()> {
    let home = view.resolve(home)?;
    if view.stat(&home).is_some() {
        return Ok(());
    }
    view.mkdir_all(parent_of(&home), 0o755, 0, 0)?;
    view.set(
        &home,
        Node::Dir {
            mode: a.defs.home_mode,
            uid,
            gid,
            fresh: true,
        },
    );
    let skel = view.resolve("/etc/skel/x")?;
    let skel = parent_of(&skel).to_string();
    if matches!(
        view.stat(&skel),
        Some(Stat {
            kind: Kind::Dir,
            ..
        })
    ) {
        copy_tree(view, &skel, &home, uid, gid)?;
    }
    Ok(())
}

fn copy_tree(view: &mut View, from: &str, to: &str, uid: u32, gid: u32) -> Result<()> {
    for name in view.list(from) {
        let src = join(from, &name);
        let dst = join(to, &name);
        let Some(st) = view.stat(&src) else { continue };
        match st.kind {
            Kind::Dir => {
                view.set(
                    &dst,
                    Node::Dir {
                        mode: st.mode,
                        uid,
                        gid,
                        fresh: true,
                    },
                );
                copy_tree(view, &src, &dst, uid, gid)?;
            }
            Kind::File => {
                let contents = view.read(&src)?.unwrap_or_default();
                view.set(
                    &dst,
                    Node::File {
                        contents: Some(contents),
                        mode: st.mode,
                        uid,
                        gid,
                    },
                );
            }
            Kind::Symlink(target) => view.set(&dst, Node::Symlink { target, uid, gid }),
            Kind::Other => {}
        }
    }
    Ok(())
}

/// An owner given by id or name, resolved in the root's account files as planned.
fn owner(
    accounts: Option<&Accounts>,
    user: &NodeOwner,
    group: &NodeOwner,
    default: (u32, u32),
    path: &str,
) -> Result<(u32, u32)> {
    let uid = match (&user.id, &user.name) {
        (Some(id), _) => u32::try_from(*id).map_err(|_| at(path, format!("bad uid {id}")))?,
        (None, Some(name)) if !name.is_empty() => accounts
            .and_then(|a| a.user(name))
            .map(|(uid, _, _)| uid)
            .ok_or_else(|| at(path, format!("no such user {name:?} in the root")))?,
        _ => default.0,
    };
    let gid = match (&group.id, &group.name) {
        (Some(id), _) => u32::try_from(*id).map_err(|_| at(path, format!("bad gid {id}")))?,
        (None, Some(name)) if !name.is_empty() => accounts
            .and_then(|a| a.group(name))
            .ok_or_else(|| at(path, format!("no such group {name:?} in the root")))?,
        _ => default.1,
    };
    Ok((uid, gid))
}

enum Entry<'a> {
    Dir(&'a cairn_ignition::Directory),
    File(&'a cairn_ignition::File),
    Link(&'a cairn_ignition::Link),
}

fn plan_entries(view: &mut View, accounts: Option<Accounts>, config: &Config) -> Result<()> {
    let storage = &config.storage;
    let by_name = |o: &NodeOwner| o.name.as_deref().is_some_and(|n| !n.is_empty());
    let names = storage
        .files
        .iter()
        .map(|f| (&f.user, &f.group))
        .chain(storage.directories.iter().map(|d| (&d.user, &d.group)))
        .chain(storage.links.iter().map(|l| (&l.user, &l.group)))
        .any(|(u, g)| by_name(u) || by_name(g));
    let accounts = match accounts {
        None if names => Some(Accounts::load(view)?),
        other => other,
    };
    let accounts = accounts.as_ref();
    // Every path is resolved before anything is made, and two entries may not land on
    // the same place (Ignition's getOrderedCreationList).
    let mut entries: Vec<(String, Entry)> = Vec::new();
    let mut hard: Vec<(String, Entry)> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let all = storage
        .directories
        .iter()
        .map(|d| (d.path.as_str(), Entry::Dir(d)))
        .chain(
            storage
                .files
                .iter()
                .map(|f| (f.path.as_str(), Entry::File(f))),
        )
        .chain(
            storage
                .links
                .iter()
                .map(|l| (l.path.as_str(), Entry::Link(l))),
        );
    for (path, entry) in all {
        let resolved = view.resolve(path)?;
        if let Some(other) = seen.insert(resolved.clone(), path.to_string()) {
            return Err(at(path, format!("resolves to {resolved}, as does {other}")));
        }
        match entry {
            Entry::Link(l) if l.hard == Some(true) => hard.push((resolved, entry)),
            _ => entries.push((resolved, entry)),
        }
    }
    entries.sort_by_key(|(p, _)| depth(p));
    entries.extend(hard);
    for (path, entry) in entries {
        let overwrite = match &entry {
            Entry::Dir(d) => d.overwrite,
            Entry::File(f) => f.overwrite,
            Entry::Link(l) => l.overwrite,
        };
        if overwrite == Some(true) {
            view.remove_all(&path);
        }
        match entry {
            Entry::Dir(d) => plan_dir(view, accounts, d, &path)?,
            Entry::File(f) => plan_file(view, accounts, f, &path)?,
            Entry::Link(l) => plan_link(view, accounts, l, &path)?,
        }
    }
    Ok(())
}

fn mode_of(mode: Option<i64>, path: &str) -> Result<Option<u32>> {
    mode.map(|m| {
        u32::try_from(m)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| at(path, format!("bad mode {m}")))
    })
    .transpose()
}

fn plan_dir(
    view: &mut View,
    accounts: Option<&Accounts>,
    d: &cairn_ignition::Directory,
    path: &str,
) -> Result<()> {
    match view.stat(path) {
        None => view.mkdir_all(path, 0o755, 0, 0)?,
        Some(Stat {
            kind: Kind::Dir, ..
        }) => {}
        Some(_) => {
            return Err(at(
                &d.path,
                "a non-directory already exists and overwrite is false",
            ))
        }
    }
    let st = view
        .stat(path)
        .ok_or_else(|| at(path, "vanished while planning"))?;
    let mode = mode_of(d.mode, &d.path)?.unwrap_or(st.mode);
    let (uid, gid) = owner(accounts, &d.user, &d.group, (st.uid, st.gid), &d.path)?;
    let fresh = matches!(view.node(path), Some(Node::Dir { fresh: true, .. }));
    view.set(
        path,
        Node::Dir {
            mode,
            uid,
            gid,
            fresh,
        },
    );
    Ok(())
}

fn plan_file(
    view: &mut View,
    accounts: Option<&Accounts>,
    f: &cairn_ignition::File,
    path: &str,
) -> Result<()> {
    let st = view.stat(path);
    let has_source = f.contents.source.is_some();
    match &st {
        Some(s) if s.kind != Kind::File => {
            return Err(at(
                &f.path,
                "a non regular file exists there already and overwrite is false",
            ))
        }
        Some(_) if has_source => {
            return Err(at(
                &f.path,
                "a file exists there already and overwrite is false",
            ))
        }
        _ => {}
    }
    let (mut contents, mut mode, mut uid, mut gid, mut rewritten) = match &st {
        Some(s) => (None, s.mode, s.uid, s.gid, false),
        None => (Some(Vec::new()), 0o644, 0, 0, true),
    };
    if has_source {
        contents = Some(data(f.contents.source.as_deref(), &f.path)?);
        (mode, uid, gid, rewritten) = (0o644, 0, 0, true);
    }
    if rewritten {
        view.mkdir_all(parent_of(path), 0o755, 0, 0)?;
    }
    for (i, res) in f.append.iter().enumerate() {
        let more = data(res.source.as_deref(), &format!("{} append[{i}]", f.path))?;
        let mut all = match contents.take() {
            Some(c) => c,
            None => view.read(path)?.unwrap_or_default(),
        };
        all.extend_from_slice(&more);
        contents = Some(all);
    }
    if let Some(m) = mode_of(f.mode, &f.path)? {
        mode = m;
    }
    (uid, gid) = owner(accounts, &f.user, &f.group, (uid, gid), &f.path)?;
    // A hard link planned to this path keeps pointing at the same inode.
    view.set(
        path,
        Node::File {
            contents,
            mode,
            uid,
            gid,
        },
    );
    Ok(())
}

fn plan_link(
    view: &mut View,
    accounts: Option<&Accounts>,
    l: &cairn_ignition::Link,
    path: &str,
) -> Result<()> {
    let target = l
        .target
        .as_deref()
        .ok_or_else(|| at(&l.path, "link has no target"))?;
    let hard = l.hard == Some(true);
    if let Some(st) = view.stat(path) {
        if hard {
            let t = view.resolve(target)?;
            let tst = view
                .stat(&t)
                .ok_or_else(|| at(&l.path, format!("hard link target {target} does not exist")))?;
            if st.identity != tst.identity {
                return Err(at(
                    &l.path,
                    "a file already exists at that path but is not the target and overwrite is false",
                ));
            }
            return Ok(());
        }
        return match st.kind {
            Kind::Symlink(existing) if clean(&existing) == clean(target) => Ok(()),
            Kind::Symlink(existing) => Err(at(
                &l.path,
                format!("a symlink exists at that path but points to {existing}, not {target}, and overwrite is false"),
            )),
            _ => Err(at(
                &l.path,
                "a non-symlink already exists at that path and overwrite is false",
            )),
        };
    }
    view.mkdir_all(parent_of(path), 0o755, 0, 0)?;
    if hard {
        let t = view.resolve(target)?;
        match view.stat(&t) {
            None => {
                return Err(at(
                    &l.path,
                    format!("hard link target {target} does not exist"),
                ))
            }
            Some(Stat {
                kind: Kind::Dir, ..
            }) => {
                return Err(at(
                    &l.path,
                    format!("hard link target {target} is a directory"),
                ))
            }
            Some(_) => {}
        }
        view.set(path, Node::HardLink { target: t });
        return Ok(());
    }
    // Ignition's default owner is the link target's (it stats through the link); a
    // relative target is read in the root, an absolute one is taken as root's.
    let default = if target.starts_with('/') {
        (0, 0)
    } else {
        let t = clean(&join(parent_of(path), target));
        view.resolve(&t)
            .ok()
            .and_then(|r| view.stat(&r))
            .map_or((0, 0), |s| (s.uid, s.gid))
    };
    let (uid, gid) = owner(accounts, &l.user, &l.group, default, &l.path)?;
    view.set(
        path,
        Node::Symlink {
            target: target.to_string(),
            uid,
            gid,
        },
    );
    Ok(())
}

const UNITS: &str = "/etc/systemd/system";
const PRESET: &str = "/etc/systemd/system-preset/20-ignition.preset";

fn write_plain(view: &mut View, path: &str, contents: Vec<u8>) -> Result<()> {
    let path = view.resolve(path)?;
    view.mkdir_all(parent_of(&path), 0o755, 0, 0)?;
    if matches!(
        view.stat(&path),
        Some(Stat {
            kind: Kind::Dir,
            ..
        })
    ) {
        return Err(at(&path, "is a directory"));
    }
    view.set(
        &path,
        Node::File {
            contents: Some(contents),
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
    );
    Ok(())
}

fn plan_units(view: &mut View, config: &Config) -> Result<()> {
    let mut presets: Vec<(String, bool)> = Vec::new();
    for unit in &config.systemd.units {
        for dropin in &unit.dropins {
            if let Some(contents) = &dropin.contents {
                write_plain(
                    view,
                    &format!("{UNITS}/{}.d/{}", unit.name, dropin.name),
                    contents.clone().into_bytes(),
                )?;
            }
        }
        if let Some(contents) = unit.contents.as_ref().filter(|c| !c.is_empty()) {
            write_plain(
                view,
                &format!("{UNITS}/{}", unit.name),
                contents.clone().into_bytes(),
            )?;
        }
        if let Some(enabled) = unit.enabled {
            let name = preset_name(&unit.name);
            match presets
                .iter_mut()
                .find(|(n, e)| *n == name.0 && *e == enabled)
            {
                Some(p) => {
                    if let Some(instance) = name.1 {
                        p.0 = format!("{} {instance}", p.0);
                    }
                }
                None => presets.push((
                    match name.1 {
                        Some(instance) => format!("{} {instance}", name.0),
                        None => name.0,
                    },
                    enabled,
                )),
            }
        }
        match unit.mask {
            Some(true) => {
                let path = view.resolve(&format!("{UNITS}/{}", unit.name))?;
                view.mkdir_all(parent_of(&path), 0o755, 0, 0)?;
                view.remove_all(&path);
                view.set(
                    &path,
                    Node::Symlink {
                        target: "/dev/null".into(),
                        uid: 0,
                        gid: 0,
                    },
                );
            }
            Some(false) => {
                let path = view.resolve(&format!("{UNITS}/{}", unit.name))?;
                if matches!(view.stat(&path), Some(Stat { kind: Kind::Symlink(t), .. }) if t == "/dev/null")
                {
                    view.remove_all(&path);
                }
            }
            None => {}
        }
    }
    if presets.is_empty() {
        return Ok(());
    }
    let path = view.resolve(PRESET)?;
    let mut text = view.read(&path)?.unwrap_or_default();
    for (unit, enabled) in &presets {
        if !enabled {
            disable(view, unit.split(' ').next().unwrap_or(unit))?;
        }
        let verb = if *enabled { "enable" } else { "disable" };
        text.extend_from_slice(format!("{verb} {unit}\n").as_bytes());
    }
    view.mkdir_all(parent_of(&path), 0o755, 0, 0)?;
    let (mode, uid, gid) = match view.stat(&path) {
        Some(s) => (s.mode, s.uid, s.gid),
        None => (0o644, 0, 0),
    };
    view.set(
        &path,
        Node::File {
            contents: Some(text),
            mode,
            uid,
            gid,
        },
    );
    Ok(())
}

/// `foo@bar.service` → (`foo@.service`, `bar`); other names stay whole.
fn preset_name(name: &str) -> (String, Option<String>) {
    match (name.find('@'), name.rfind('.')) {
        (Some(at), Some(dot)) if at < dot => (
            format!("{}{}", &name[..=at], &name[dot..]),
            Some(name[at + 1..dot].to_string()).filter(|i| !i.is_empty()),
        ),
        _ => (name.to_string(), None),
    }
}

/// `systemctl --root disable UNIT` for what a root can hold: the enablement symlinks
/// named after the unit in `/etc/systemd/system/*.{wants,requires,upholds}/`.
fn disable(view: &mut View, unit: &str) -> Result<()> {
    let units = view.resolve(&format!("{UNITS}/x"))?;
    let units = parent_of(&units).to_string();
    for dir in view.list(&units) {
        if !(dir.ends_with(".wants") || dir.ends_with(".requires") || dir.ends_with(".upholds")) {
            continue;
        }
        let link = join(&join(&units, &dir), unit);
        if matches!(
            view.stat(&link),
            Some(Stat {
                kind: Kind::Symlink(_),
                ..
            })
        ) {
            view.remove_all(&link);
        }
    }
    Ok(())
}

/// `/etc/.ignition-result.json`, as Ignition writes it after the files stage.
fn plan_result_file(view: &mut View, ctx: &Context) -> Result<()> {
    let path = view.resolve("/etc/.ignition-result.json")?;
    let previous = view
        .read(&path)?
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let mut result = serde_json::Map::new();
    result.insert("provisioningBootID".into(), ctx.boot_id.clone().into());
    result.insert("provisioningDate".into(), ctx.date.clone().into());
    result.insert("userConfigProvided".into(), true.into());
    if let Some(previous) = previous {
        result.insert("previousReport".into(), previous);
    }
    let mut text = serde_json::to_vec_pretty(&serde_json::Value::Object(result))
        .map_err(|e| at(&path, e.to_string()))?;
    text.push(b'\n');
    view.remove_all(&path);
    view.mkdir_all(parent_of(&path), 0o755, 0, 0)?;
    view.set(
        &path,
        Node::File {
            contents: Some(text),
            mode: 0o600,
            uid: 0,
            gid: 0,
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths_like_go() {
        assert_eq!(clean("/a/../b/./c/"), "/b/c");
        assert_eq!(clean("../x"), "../x");
        assert_eq!(clean("/.."), "/");
    }

    #[test]
    fn instantiated_units_name_their_template() {
        assert_eq!(
            preset_name("getty@tty1.service"),
            ("getty@.service".to_string(), Some("tty1".to_string()))
        );
        assert_eq!(preset_name("a.service"), ("a.service".to_string(), None));
    }
}
