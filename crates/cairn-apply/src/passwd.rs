//! Users and groups added to a target root's account files exactly as Debian's
//! shadow-utils 4.13 `useradd --root ROOT` and `groupadd --root ROOT` add them.
//!
//! Pure functions over the contents of `passwd`, `group`, `shadow` and `gshadow`:
//! nothing is read or written here, the caller applies the result transactionally.
//! Rules followed (checked against the real programs by `tests/it/passwd.rs`):
//!
//! - ids: a regular id is one above the highest used in `[*_MIN, *_MAX]` (the lowest
//!   free one from `*_MIN` up when that is taken or past the top); a system id is one
//!   below the lowest used in `[SYS_*_MIN, SYS_*_MAX]` (the highest free one from
//!   `SYS_*_MAX` down when that is taken or below the bottom).
//! - a user private group (`USERGROUPS_ENAB yes`, no primary group, not
//!   `no_user_group`) takes the uid as gid when that is free and inside the range.
//! - names: Debian's relaxed rule `^[^-~+:,\s][^:,\s]*$`, at most 32 bytes.

use std::collections::BTreeSet;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswdError {
    #[error("user '{0}' already exists")]
    UserExists(String),
    #[error("group '{0}' already exists")]
    GroupExists(String),
    #[error("group '{0}' exists: to add user '{0}' to it, give it as the primary group")]
    UserGroupExists(String),
    #[error("UID {0} is not unique")]
    UidTaken(u32),
    #[error("GID {0} already exists")]
    GidTaken(u32),
    #[error("group '{group}' does not exist (user '{user}')")]
    NoSuchGroup { user: String, group: String },
    #[error("user '{0}' does not exist")]
    NoSuchUser(String),
    #[error("cannot remove group '{group}': it is the primary group of user '{user}'")]
    PrimaryGroup { group: String, user: String },
    #[error("invalid user name '{0}'")]
    InvalidUserName(String),
    #[error("invalid group name '{0}'")]
    InvalidGroupName(String),
    #[error("no free {kind} left in {min}..={max} for '{name}'")]
    Exhausted {
        kind: &'static str,
        min: u32,
        max: u32,
        name: String,
    },
    #[error("invalid {field} for '{name}': {value:?}")]
    InvalidField {
        name: String,
        field: &'static str,
        value: String,
    },
}

/// The four account files of a root, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFiles {
    pub passwd: String,
    pub group: String,
    pub shadow: String,
    pub gshadow: String,
}

/// What `useradd` and `groupadd` read from `/etc/login.defs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginDefs {
    pub uid_min: u32,
    pub uid_max: u32,
    pub gid_min: u32,
    pub gid_max: u32,
    pub sys_uid_min: u32,
    pub sys_uid_max: u32,
    pub sys_gid_min: u32,
    pub sys_gid_max: u32,
    pub usergroups_enab: bool,
    pub create_home: bool,
    /// `PASS_MIN_DAYS`, `PASS_MAX_DAYS`, `PASS_WARN_AGE`; `None` writes an empty field.
    pub pass_min_days: Option<i64>,
    pub pass_max_days: Option<i64>,
    pub pass_warn_age: Option<i64>,
    /// Mode of a new home directory: `HOME_MODE`, else `0777 & !UMASK`.
    pub home_mode: u32,
}

impl LoginDefs {
    /// Parses login.defs text; missing or unreadable keys take shadow-utils' defaults.
    pub fn parse(text: &str) -> LoginDefs {
        let get = |key: &str| -> Option<&str> {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let mut it = l.splitn(2, |c: char| c.is_ascii_whitespace());
                    Some((it.next()?, it.next().unwrap_or("").trim()))
                })
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v.trim_matches('"'))
                .next_back()
        };
        let num = |key: &str| get(key).and_then(parse_c_long);
        let id = |key: &str, default: u32| {
            num(key)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(default)
        };
        let flag = |key: &str| get(key).is_some_and(|v| v.eq_ignore_ascii_case("yes"));
        let uid_min = id("UID_MIN", 1000);
        let gid_min = id("GID_MIN", 1000);
        LoginDefs {
            uid_min,
            uid_max: id("UID_MAX", 60000),
            gid_min,
            gid_max: id("GID_MAX", 60000),
            sys_uid_min: id("SYS_UID_MIN", 101),
            sys_uid_max: id("SYS_UID_MAX", uid_min.saturating_sub(1)),
            sys_gid_min: id("SYS_GID_MIN", 101),
            sys_gid_max: id("SYS_GID_MAX", gid_min.saturating_sub(1)),
            usergroups_enab: flag("USERGROUPS_ENAB"),
            create_home: flag("CREATE_HOME"),
            pass_min_days: num("PASS_MIN_DAYS").filter(|n| *n >= 0),
            pass_max_days: num("PASS_MAX_DAYS").filter(|n| *n >= 0),
            pass_warn_age: num("PASS_WARN_AGE").filter(|n| *n >= 0),
            home_mode: num("HOME_MODE")
                .or_else(|| num("UMASK").map(|umask| 0o777 & !umask))
                .and_then(|m| u32::try_from(m & 0o7777).ok())
                .unwrap_or(0o755),
        }
    }
}

/// Numbers as shadow-utils' `getdef_num` reads them (`strtol` base 0).
fn parse_c_long(v: &str) -> Option<i64> {
    let (neg, v) = v.strip_prefix('-').map_or((false, v), |r| (true, r));
    let n = if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()?
    } else if v.len() > 1 && v.starts_with('0') {
        i64::from_str_radix(&v[1..], 8).ok()?
    } else {
        v.parse().ok()?
    };
    Some(if neg { -n } else { n })
}

/// What `useradd` reads from `/etc/default/useradd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// `HOME=`, default `/home`.
    pub home: String,
    /// `SHELL=`, default `/bin/sh`.
    pub shell: String,
    /// `GROUP=`, a group name or gid: the primary group when no user group is made.
    /// Default `100` (Debian).
    pub group: String,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            home: "/home".into(),
            shell: "/bin/sh".into(),
            group: "100".into(),
        }
    }
}

impl Defaults {
    pub fn parse(text: &str) -> Defaults {
        let mut d = Defaults::default();
        for line in text.lines() {
            let Some((k, v)) = line.trim().split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').to_string();
            match k.trim() {
                "HOME" => d.home = v,
                "SHELL" => d.shell = v,
                "GROUP" => d.group = v,
                _ => {}
            }
        }
        d
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewGroup {
    pub name: String,
    pub gid: Option<u32>,
    pub system: bool,
    pub password_hash: Option<String>,
}

/// A user as `useradd` takes it; the fields map to its options one to one
/// (`primary_group` is `-g`, a name or a gid; `no_create_home` is `-M`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewUser {
    pub name: String,
    pub uid: Option<u32>,
    pub gecos: Option<String>,
    pub home_dir: Option<String>,
    pub no_create_home: bool,
    pub primary_group: Option<String>,
    pub groups: Vec<String>,
    pub no_user_group: bool,
    pub shell: Option<String>,
    pub password_hash: Option<String>,
    pub system: bool,
}

/// Adds a group as `groupadd [-g GID] [-p HASH] [-r] NAME` does; returns its gid.
pub fn add_group(
    files: &mut AccountFiles,
    defs: &LoginDefs,
    g: &NewGroup,
) -> Result<u32, PasswdError> {
    if !valid_name(&g.name) {
        return Err(PasswdError::InvalidGroupName(g.name.clone()));
    }
    check_field(&g.name, "password hash", g.password_hash.as_deref())?;
    let groups = entries(&files.group);
    if groups.iter().any(|e| e[0] == g.name) {
        return Err(PasswdError::GroupExists(g.name.clone()));
    }
    let used = ids(&groups, 2);
    let gid = match g.gid {
        Some(gid) if used.contains(&gid) => return Err(PasswdError::GidTaken(gid)),
        Some(gid) => gid,
        None => new_gid(defs, g.system, &used, None, &g.name)?,
    };
    push_group(
        files,
        &g.name,
        gid,
        g.password_hash.as_deref().unwrap_or("!"),
    );
    Ok(gid)
}

/// Adds a user as `useradd` does with the options `u` names.
/// Returns the uid, gid and the home directory to create (None when not created).
pub fn add_user(
    files: &mut AccountFiles,
    defs: &LoginDefs,
    d: &Defaults,
    u: &NewUser,
    days_since_epoch: u64,
) -> Result<(u32, u32, Option<String>), PasswdError> {
    if !valid_name(&u.name) {
        return Err(PasswdError::InvalidUserName(u.name.clone()));
    }
    for (field, value) in [
        ("gecos", u.gecos.as_deref()),
        ("home directory", u.home_dir.as_deref()),
        ("shell", u.shell.as_deref()),
        ("password hash", u.password_hash.as_deref()),
    ] {
        check_field(&u.name, field, value)?;
    }
    let users = entries(&files.passwd);
    let groups = entries(&files.group);
    if users.iter().any(|e| e[0] == u.name) {
        return Err(PasswdError::UserExists(u.name.clone()));
    }
    let find_group = |spec: &str| -> Result<u32, PasswdError> {
        let by_name = groups.iter().find(|e| e[0] == spec);
        let by_gid = || {
            let gid: u32 = spec.parse().ok()?;
            groups
                .iter()
                .find(|e| e.get(2).and_then(|g| g.parse().ok()) == Some(gid))
        };
        by_name
            .or_else(by_gid)
            .and_then(|e| e.get(2)?.parse().ok())
            .ok_or_else(|| PasswdError::NoSuchGroup {
                user: u.name.clone(),
                group: spec.to_string(),
            })
    };
    let primary = u.primary_group.as_deref().map(find_group).transpose()?;
    let mut supplementary: Vec<String> = Vec::new();
    for spec in &u.groups {
        let gid = find_group(spec)?;
        let by_name = groups.iter().find(|e| e[0] == spec.as_str());
        let entry = by_name.or_else(|| groups.iter().find(|e| e[2].parse() == Ok(gid)));
        let entry = entry.map_or(spec.as_str(), |e| e[0]).to_string();
        if !supplementary.contains(&entry) {
            supplementary.push(entry);
        }
    }
    let user_group = primary.is_none() && defs.usergroups_enab && !u.no_user_group;
    if user_group && groups.iter().any(|e| e[0] == u.name) {
        return Err(PasswdError::UserGroupExists(u.name.clone()));
    }

    let used_uids = ids(&users, 2);
    let uid = match u.uid {
        Some(uid) if used_uids.contains(&uid) => return Err(PasswdError::UidTaken(uid)),
        Some(uid) => uid,
        None => new_uid(defs, u.system, &used_uids, &u.name)?,
    };
    let default_group = || {
        find_group(&d.group).or_else(|_| {
            d.group.parse().map_err(|_| PasswdError::NoSuchGroup {
                user: u.name.clone(),
                group: d.group.clone(),
            })
        })
    };
    let gid = match primary {
        Some(gid) => gid,
        None if user_group => new_gid(defs, u.system, &ids(&groups, 2), Some(uid), &u.name)?,
        None => default_group()?,
    };
    drop(groups);
    let home = u
        .home_dir
        .clone()
        .unwrap_or_else(|| format!("{}/{}", d.home, u.name));
    let shell = u.shell.as_deref().unwrap_or(&d.shell);
    let gecos = u.gecos.as_deref().unwrap_or("");

    // Members go on the existing lines first, then the new lines are appended, in the
    // order useradd writes them.
    files.group = add_members(&files.group, 3, &supplementary, &u.name);
    files.gshadow = add_members(&files.gshadow, 3, &supplementary, &u.name);
    if user_group {
        push_group(files, &u.name, gid, "!");
    }
    push_line(
        &mut files.passwd,
        &format!("{}:x:{uid}:{gid}:{gecos}:{home}:{shell}", u.name),
    );
    let age = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let (min, max, warn) = if u.system {
        (String::new(), String::new(), String::new())
    } else {
        (
            age(defs.pass_min_days),
            age(defs.pass_max_days),
            age(defs.pass_warn_age),
        )
    };
    let pass = u.password_hash.as_deref().unwrap_or("!");
    let lastchg = if days_since_epoch == 0 {
        String::new()
    } else {
        days_since_epoch.to_string()
    };
    push_line(
        &mut files.shadow,
        &format!("{}:{pass}:{lastchg}:{min}:{max}:{warn}:::", u.name),
    );

    let create = !u.no_create_home && !u.system && defs.create_home;
    Ok((uid, gid, create.then_some(home)))
}

/// Debian's relaxed rule: `^[^-~+:,\s][^:,\s]*$`, at most 32 bytes.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with(['-', '~', '+'])
        && !name
            .bytes()
            .any(|b| b == b':' || b == b',' || b.is_ascii_whitespace())
}

fn check_field(name: &str, field: &'static str, value: Option<&str>) -> Result<(), PasswdError> {
    match value {
        Some(v) if v.contains([':', '\n']) => Err(PasswdError::InvalidField {
            name: name.to_string(),
            field,
            value: v.to_string(),
        }),
        _ => Ok(()),
    }
}

fn entries(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(':').collect())
        .collect()
}

fn ids(entries: &[Vec<&str>], field: usize) -> BTreeSet<u32> {
    entries
        .iter()
        .filter_map(|e| e.get(field)?.parse().ok())
        .collect()
}

fn new_uid(
    defs: &LoginDefs,
    system: bool,
    used: &BTreeSet<u32>,
    name: &str,
) -> Result<u32, PasswdError> {
    let (min, max) = if system {
        (defs.sys_uid_min, defs.sys_uid_max)
    } else {
        (defs.uid_min, defs.uid_max)
    };
    allocate(min, max, system, used, None).ok_or_else(|| PasswdError::Exhausted {
        kind: "UID",
        min,
        max,
        name: name.to_string(),
    })
}

fn new_gid(
    defs: &LoginDefs,
    system: bool,
    used: &BTreeSet<u32>,
    preferred: Option<u32>,
    name: &str,
) -> Result<u32, PasswdError> {
    let (min, max) = if system {
        (defs.sys_gid_min, defs.sys_gid_max)
    } else {
        (defs.gid_min, defs.gid_max)
    };
    allocate(min, max, system, used, preferred).ok_or_else(|| PasswdError::Exhausted {
        kind: "GID",
        min,
        max,
        name: name.to_string(),
    })
}

/// shadow-utils' `find_new_uid`/`find_new_gid`.
fn allocate(
    min: u32,
    max: u32,
    system: bool,
    used: &BTreeSet<u32>,
    preferred: Option<u32>,
) -> Option<u32> {
    if min > max {
        return None;
    }
    if let Some(p) = preferred.filter(|p| (min..=max).contains(p) && !used.contains(p)) {
        return Some(p);
    }
    let mut in_range = used.range(min..=max);
    if system {
        let next = match in_range.next() {
            None => Some(max),
            Some(&lowest) => lowest.checked_sub(1).filter(|n| *n >= min),
        };
        next.or_else(|| (min..=max).rev().find(|id| !used.contains(id)))
    } else {
        let next = match in_range.next_back() {
            None => Some(min),
            Some(&highest) => highest.checked_add(1).filter(|n| *n <= max),
        };
        next.or_else(|| (min..=max).find(|id| !used.contains(id)))
    }
}

fn push_group(files: &mut AccountFiles, name: &str, gid: u32, password: &str) {
    push_line(&mut files.group, &format!("{name}:x:{gid}:"));
    push_line(&mut files.gshadow, &format!("{name}:{password}::"));
}

fn push_line(text: &mut String, line: &str) {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
}

/// Appends `member` to the member list (field `field`) of each line named in `groups`.
fn add_members(text: &str, field: usize, groups: &[String], member: &str) -> String {
    let mut out = String::with_capacity(text.len() + groups.len() * (member.len() + 1));
    for line in text.split_inclusive('\n') {
        let (body, nl) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
        let mut parts: Vec<&str> = body.split(':').collect();
        if parts.len() > field && groups.iter().any(|g| g == parts[0]) {
            let members = parts[field];
            if members.split(',').any(|m| m == member) {
                out.push_str(line);
                continue;
            }
            let joined = if members.is_empty() {
                member.to_string()
            } else {
                format!("{members},{member}")
            };
            parts[field] = &joined;
            out.push_str(&parts.join(":"));
            out.push_str(nl);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// What Ignition hands `usermod` for a user that already exists: each `Some` is an
/// option given (`-p`, `-u`, `-c`, `-g`, `-G`, `-s`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    pub name: String,
    pub password_hash: Option<String>,
    pub uid: Option<u32>,
    pub gecos: Option<String>,
    pub primary_group: Option<String>,
    pub groups: Option<Vec<String>>,
    pub shell: Option<String>,
}

/// Which account files a command wrote (shadow-utils leaves a `NAME-` backup of each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub passwd: bool,
    pub group: bool,
    pub shadow: bool,
    pub gshadow: bool,
}

/// Changes an existing user as `usermod` does. An option whose value is already the
/// user's is dropped, as usermod drops it; with nothing left, nothing is written.
pub fn modify_user(
    files: &mut AccountFiles,
    c: &UserChange,
    days_since_epoch: u64,
) -> Result<Written, PasswdError> {
    for (field, value) in [
        ("gecos", c.gecos.as_deref()),
        ("shell", c.shell.as_deref()),
        ("password hash", c.password_hash.as_deref()),
    ] {
        check_field(&c.name, field, value)?;
    }
    let users = entries(&files.passwd);
    let groups = entries(&files.group);
    let Some(user) = users.iter().find(|e| e[0] == c.name) else {
        return Err(PasswdError::NoSuchUser(c.name.clone()));
    };
    let field = |i: usize| user.get(i).copied().unwrap_or("").to_string();
    let (old_uid, old_gid, old_gecos, old_shell) = (field(2), field(3), field(4), field(6));
    let find_group = |spec: &str| -> Result<(String, u32), PasswdError> {
        let hit = groups.iter().find(|e| e[0] == spec).or_else(|| {
            let gid: u32 = spec.parse().ok()?;
            groups
                .iter()
                .find(|e| e.get(2).and_then(|g| g.parse().ok()) == Some(gid))
        });
        hit.and_then(|e| Some((e[0].to_string(), e.get(2)?.parse().ok()?)))
            .ok_or_else(|| PasswdError::NoSuchGroup {
                user: c.name.clone(),
                group: spec.to_string(),
            })
    };
    let uid = c.uid.filter(|u| u.to_string() != old_uid);
    if let Some(uid) = uid {
        if ids(&users, 2).contains(&uid) {
            return Err(PasswdError::UidTaken(uid));
        }
    }
    let gid = match &c.primary_group {
        Some(spec) => Some(find_group(spec)?.1).filter(|g| g.to_string() != old_gid),
        None => None,
    };
    let gecos = c.gecos.clone().filter(|g| *g != old_gecos);
    let shell = c.shell.clone().filter(|s| *s != old_shell);
    let supplementary = match &c.groups {
        Some(list) => {
            let mut names: Vec<String> = Vec::new();
            for spec in list {
                let (name, _) = find_group(spec)?;
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            Some(names)
        }
        None => None,
    };
    drop(users);
    drop(groups);
    let mut written = Written::default();
    let passwd_changes = uid.is_some() || gid.is_some() || gecos.is_some() || shell.is_some();
    if !passwd_changes && c.password_hash.is_none() && supplementary.is_none() {
        return Ok(written);
    }
    written.passwd = true;
    files.passwd = rewrite_line(&files.passwd, &c.name, |f| {
        if let Some(uid) = uid {
            f[2] = uid.to_string();
        }
        if let Some(gid) = gid {
            f[3] = gid.to_string();
        }
        if let Some(g) = &gecos {
            f[4] = g.clone();
        }
        if let Some(s) = &shell {
            f[6] = s.clone();
        }
    });
    if let Some(hash) = &c.password_hash {
        written.shadow = true;
        files.shadow = rewrite_line(&files.shadow, &c.name, |f| {
            f[1] = hash.clone();
            if days_since_epoch != 0 {
                f[2] = days_since_epoch.to_string();
            }
        });
    }
    if let Some(names) = &supplementary {
        written.group = true;
        written.gshadow = true;
        files.group = set_membership(&files.group, 3, names, &c.name);
        files.gshadow = set_membership(&files.gshadow, 3, names, &c.name);
    }
    Ok(written)
}

/// Removes a user as `userdel --remove` does with the account files: its lines, its
/// membership in every group, and its private group when nobody else is in it.
/// Returns the home directory (for the caller to remove) and the files written.
pub fn delete_user(
    files: &mut AccountFiles,
    defs: &LoginDefs,
    name: &str,
) -> Result<(Option<String>, Written), PasswdError> {
    let users = entries(&files.passwd);
    let Some(user) = users.iter().find(|e| e[0] == name) else {
        return Err(PasswdError::NoSuchUser(name.to_string()));
    };
    let home = user.get(5).map(|h| h.to_string()).filter(|h| !h.is_empty());
    let gid = user.get(3).map(|g| g.to_string()).unwrap_or_default();
    drop(users);
    files.passwd = remove_line(&files.passwd, name);
    files.shadow = remove_line(&files.shadow, name);
    files.group = set_membership(&files.group, 3, &[], name);
    files.gshadow = set_membership(&files.gshadow, 3, &[], name);
    // The user's own group goes too when it is its private group: same name, the user's
    // primary gid, no members left and no other user's primary group.
    let private = defs.usergroups_enab
        && entries(&files.group).iter().any(|e| {
            e[0] == name && e.get(2) == Some(&gid.as_str()) && e.get(3).is_none_or(|m| m.is_empty())
        })
        && !entries(&files.passwd)
            .iter()
            .any(|e| e.get(3) == Some(&gid.as_str()));
    if private {
        files.group = remove_line(&files.group, name);
        files.gshadow = remove_line(&files.gshadow, name);
    }
    Ok((
        home,
        Written {
            passwd: true,
            group: true,
            shadow: true,
            gshadow: true,
        },
    ))
}

/// Removes a group as `groupdel` does; refuses a group that is some user's primary one.
pub fn delete_group(files: &mut AccountFiles, name: &str) -> Result<Written, PasswdError> {
    let groups = entries(&files.group);
    let Some(group) = groups.iter().find(|e| e[0] == name) else {
        return Err(PasswdError::NoSuchGroup {
            user: String::new(),
            group: name.to_string(),
        });
    };
    let gid = group.get(2).copied().unwrap_or("");
    if let Some(user) = entries(&files.passwd)
        .iter()
        .find(|e| e.get(3) == Some(&gid))
    {
        return Err(PasswdError::PrimaryGroup {
            group: name.to_string(),
            user: user[0].to_string(),
        });
    }
    drop(groups);
    files.group = remove_line(&files.group, name);
    files.gshadow = remove_line(&files.gshadow, name);
    Ok(Written {
        group: true,
        gshadow: true,
        ..Written::default()
    })
}

/// Rewrites the line whose first field is `name` (fields padded to 7 as needed).
fn rewrite_line(text: &str, name: &str, edit: impl Fn(&mut Vec<String>)) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let (body, nl) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
        if body.split(':').next() == Some(name) {
            let mut f: Vec<String> = body.split(':').map(str::to_string).collect();
            let width = f.len().max(7);
            f.resize(width, String::new());
            edit(&mut f);
            out.push_str(&f.join(":"));
            out.push_str(nl);
        } else {
            out.push_str(line);
        }
    }
    out
}

fn remove_line(text: &str, name: &str) -> String {
    text.split_inclusive('\n')
        .filter(|l| l.split(':').next() != Some(name))
        .collect()
}

/// Makes `member` a member of exactly the groups named in `groups` (field `field`).
fn set_membership(text: &str, field: usize, groups: &[String], member: &str) -> String {
    let mut out = String::with_capacity(text.len() + groups.len() * (member.len() + 1));
    for line in text.split_inclusive('\n') {
        let (body, nl) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
        let mut parts: Vec<&str> = body.split(':').collect();
        if parts.len() <= field {
            out.push_str(line);
            continue;
        }
        let wanted = groups.iter().any(|g| g == parts[0]);
        let mut members: Vec<&str> = parts[field].split(',').filter(|m| !m.is_empty()).collect();
        let has = members.contains(&member);
        if wanted == has {
            out.push_str(line);
            continue;
        }
        if wanted {
            members.push(member);
        } else {
            members.retain(|m| *m != member);
        }
        let joined = members.join(",");
        parts[field] = &joined;
        out.push_str(&parts.join(":"));
        out.push_str(nl);
    }
    out
}
