//! `passwd`: each case is run by the real `useradd --root` / `groupadd --root` on one
//! seeded root and by our functions on another; the four account files must match.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_apply::passwd::{
    add_group, add_user, AccountFiles, Defaults, LoginDefs, NewGroup, NewUser, PasswdError,
};

use crate::common::seed_etc;

const USERADD: &str = "/usr/sbin/useradd";
const GROUPADD: &str = "/usr/sbin/groupadd";

enum Op {
    User(NewUser),
    Group(NewGroup),
}

fn read(root: &Path) -> AccountFiles {
    let r = |f: &str| fs::read_to_string(root.join("etc").join(f)).unwrap();
    AccountFiles {
        passwd: r("passwd"),
        group: r("group"),
        shadow: r("shadow"),
        gshadow: r("gshadow"),
    }
}

fn real(root: &Path, op: &Op) {
    let mut cmd;
    match op {
        Op::Group(g) => {
            cmd = Command::new(GROUPADD);
            if let Some(gid) = g.gid {
                cmd.arg("--gid").arg(gid.to_string());
            }
            if let Some(h) = &g.password_hash {
                cmd.arg("--password").arg(h);
            }
            if g.system {
                cmd.arg("--system");
            }
            cmd.arg("--root").arg(root).arg(&g.name);
        }
        Op::User(u) => {
            cmd = Command::new(USERADD);
            if let Some(uid) = u.uid {
                cmd.arg("--uid").arg(uid.to_string());
            }
            if let Some(c) = &u.gecos {
                cmd.arg("--comment").arg(c);
            }
            if let Some(h) = &u.home_dir {
                cmd.arg("--home-dir").arg(h);
            }
            if u.no_create_home {
                cmd.arg("--no-create-home");
            }
            if let Some(g) = &u.primary_group {
                cmd.arg("--gid").arg(g);
            }
            if !u.groups.is_empty() {
                cmd.arg("--groups").arg(u.groups.join(","));
            }
            if u.no_user_group {
                cmd.arg("--no-user-group");
            }
            if let Some(s) = &u.shell {
                cmd.arg("--shell").arg(s);
            }
            if let Some(p) = &u.password_hash {
                cmd.arg("--password").arg(p);
            }
            if u.system {
                cmd.arg("--system");
            }
            cmd.arg("--root").arg(root).arg(&u.name);
        }
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn today() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86400
}

fn have_useradd() -> bool {
    cairn_test_support::have_peer(USERADD) && cairn_test_support::have_peer(GROUPADD)
}

/// Drops the shadow lastchg field (useradd takes it from the clock at run time).
fn without_lastchg(shadow: &str) -> String {
    shadow
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(':').collect();
            if f.len() > 2 {
                f[2] = "";
            }
            f.join(":") + "\n"
        })
        .collect()
}

/// Runs `ops` both ways and asserts identical files.
fn check(ops: &[Op]) {
    if !have_useradd() {
        return;
    }
    let real_root = tempfile::tempdir().unwrap();
    let ours_root = tempfile::tempdir().unwrap();
    seed_etc(real_root.path());
    seed_etc(ours_root.path());
    let defs =
        LoginDefs::parse(&fs::read_to_string(ours_root.path().join("etc/login.defs")).unwrap());
    let defaults =
        Defaults::parse(&fs::read_to_string(ours_root.path().join("etc/default/useradd")).unwrap());
    let mut ours = read(ours_root.path());
    for op in ops {
        let day = today();
        real(real_root.path(), op);
        match op {
            Op::Group(g) => {
                add_group(&mut ours, &defs, g).unwrap();
            }
            Op::User(u) => {
                add_user(&mut ours, &defs, &defaults, u, day).unwrap();
            }
        }
    }
    let theirs = read(real_root.path());
    assert_eq!(ours.passwd, theirs.passwd, "passwd");
    assert_eq!(ours.group, theirs.group, "group");
    assert_eq!(ours.gshadow, theirs.gshadow, "gshadow");
    assert_eq!(
        without_lastchg(&ours.shadow),
        without_lastchg(&theirs.shadow),
        "shadow"
    );
    if ours.shadow != theirs.shadow {
        eprintln!("note: shadow lastchg differs (day boundary crossed during the test)");
    }
}

fn user(name: &str) -> NewUser {
    NewUser {
        name: name.into(),
        ..NewUser::default()
    }
}

fn group(name: &str) -> NewGroup {
    NewGroup {
        name: name.into(),
        ..NewGroup::default()
    }
}

#[test]
fn plain_user() {
    check(&[Op::User(user("alice"))]);
}

#[test]
fn user_with_uid() {
    check(&[Op::User(NewUser {
        uid: Some(1500),
        ..user("alice")
    })]);
}

#[test]
fn user_with_existing_primary_group() {
    check(&[
        Op::Group(group("staff")),
        Op::User(NewUser {
            primary_group: Some("staff".into()),
            ..user("alice")
        }),
        Op::User(NewUser {
            primary_group: Some("10".into()),
            ..user("bob")
        }),
    ]);
}

#[test]
fn user_with_supplementary_groups() {
    check(&[
        Op::Group(group("docker")),
        Op::User(NewUser {
            groups: vec!["wheel".into(), "docker".into()],
            ..user("alice")
        }),
        Op::User(NewUser {
            groups: vec!["docker".into(), "alice".into(), "wheel".into()],
            ..user("bob")
        }),
    ]);
}

#[test]
fn no_user_group() {
    check(&[
        Op::User(NewUser {
            no_user_group: true,
            ..user("alice")
        }),
        Op::User(user("bob")),
    ]);
}

#[test]
fn system_user() {
    check(&[
        Op::User(NewUser {
            system: true,
            ..user("svc")
        }),
        Op::User(NewUser {
            system: true,
            ..user("svc2")
        }),
        Op::Group(NewGroup {
            system: true,
            ..group("sgrp")
        }),
        Op::User(NewUser {
            system: true,
            uid: Some(500),
            ..user("svc3")
        }),
        Op::User(NewUser {
            system: true,
            ..user("svc4")
        }),
    ]);
}

#[test]
fn group_with_gid() {
    check(&[
        Op::Group(NewGroup {
            gid: Some(5000),
            ..group("g5")
        }),
        Op::Group(group("next")),
        Op::Group(NewGroup {
            password_hash: Some("$6$salt$hash".into()),
            ..group("pw")
        }),
    ]);
}

#[test]
fn second_user_takes_next_uid() {
    check(&[Op::User(user("alice")), Op::User(user("bob"))]);
}

#[test]
fn password_hash() {
    check(&[
        Op::User(NewUser {
            password_hash: Some("$6$salt$abcdef".into()),
            ..user("alice")
        }),
        Op::User(NewUser {
            password_hash: Some("*".into()),
            ..user("bob")
        }),
        Op::User(NewUser {
            password_hash: Some(String::new()),
            ..user("carol")
        }),
    ]);
}

#[test]
fn user_group_gid_taken_falls_back() {
    check(&[
        Op::Group(group("g")),
        Op::User(user("u")),
        Op::User(NewUser {
            uid: Some(1005),
            ..user("v")
        }),
    ]);
}

#[test]
fn gecos_home_shell() {
    check(&[Op::User(NewUser {
        gecos: Some("Full Name".into()),
        home_dir: Some("/var/lib/x".into()),
        shell: Some("/bin/bash".into()),
        no_create_home: true,
        ..user("alice")
    })]);
}

#[test]
fn errors_name_the_account() {
    let root = tempfile::tempdir().unwrap();
    seed_etc(root.path());
    let defs = LoginDefs::parse(&fs::read_to_string("/etc/login.defs").unwrap_or_default());
    let d = Defaults::default();
    let mut f = read(root.path());
    assert_eq!(
        add_group(&mut f, &defs, &group("wheel")),
        Err(PasswdError::GroupExists("wheel".into()))
    );
    assert_eq!(
        add_group(
            &mut f,
            &defs,
            &NewGroup {
                gid: Some(10),
                ..group("x")
            }
        ),
        Err(PasswdError::GidTaken(10))
    );
    assert_eq!(
        add_user(&mut f, &defs, &d, &user("root"), 1),
        Err(PasswdError::UserExists("root".into()))
    );
    assert_eq!(
        add_user(
            &mut f,
            &defs,
            &d,
            &NewUser {
                uid: Some(0),
                ..user("x")
            },
            1
        ),
        Err(PasswdError::UidTaken(0))
    );
    let e = add_user(
        &mut f,
        &defs,
        &d,
        &NewUser {
            groups: vec!["nosuch".into()],
            ..user("x")
        },
        1,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("nosuch") && e.to_string().contains("'x'"),
        "{e}"
    );
    for bad in ["", "-a", "+a", "~a", "a:b", "a b", "a,b", &"a".repeat(33)] {
        assert_eq!(
            add_user(&mut f, &defs, &d, &user(bad), 1),
            Err(PasswdError::InvalidUserName(bad.into()))
        );
    }
    assert_eq!(f, read(root.path()), "a failed add changes nothing");
}
