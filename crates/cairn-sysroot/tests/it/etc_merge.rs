//! The `/etc` three-way merge (`cairn_sysroot::etc_merge::merge`), case by case.
//!
//! Every case builds three small trees in its own temporary directory: the old
//! deployment's `/usr/etc` (the old defaults), the old `/etc` (the old defaults plus what
//! the admin did to one entry) and the new deployment's `/usr/etc` (the old defaults plus
//! what the new default did to that entry). It runs the merge and checks the entry in the
//! new `/etc` against the version the module's table promises (the admin's, the new
//! default's, absent, or a spelled-out mix for directories), down to type, mode, owner,
//! group, user xattrs, content, link target and directory listing, and checks the
//! `MergeReport`. Each tree also holds a bystander file nobody touched.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cairn_sysroot::etc_merge::{merge, MergeReport};

/// The uid and gid an "owner" edit gives an entry (the tests run as root).
const ADMIN_ID: u32 = 1000;
/// The xattr an "xattr" edit sets.
const XATTR: &str = "user.cairn.test";
/// A file present and identical in all three trees.
const BYSTANDER: &str = "bystander.conf";

/// One entry of a tree, recursively: what to build and what to expect.
#[derive(Clone, Debug, PartialEq)]
enum Entry {
    File {
        content: &'static str,
        mode: u32,
        owner: u32,
        xattr: Option<&'static str>,
    },
    Symlink {
        target: String,
        owner: u32,
    },
    Dir {
        mode: u32,
        owner: u32,
        xattr: Option<&'static str>,
        children: Vec<(&'static str, Entry)>,
    },
}

fn file(content: &'static str, mode: u32) -> Entry {
    Entry::File {
        content,
        mode,
        owner: 0,
        xattr: None,
    }
}

fn link(target: &str) -> Entry {
    Entry::Symlink {
        target: target.to_owned(),
        owner: 0,
    }
}

fn dir(mode: u32, children: Vec<(&'static str, Entry)>) -> Entry {
    Entry::Dir {
        mode,
        owner: 0,
        xattr: None,
        children,
    }
}

impl Entry {
    fn owned_by(mut self, id: u32) -> Self {
        match &mut self {
            Entry::File { owner, .. } | Entry::Symlink { owner, .. } | Entry::Dir { owner, .. } => {
                *owner = id
            }
        }
        self
    }

    fn with_mode(mut self, new: u32) -> Self {
        match &mut self {
            Entry::File { mode, .. } | Entry::Dir { mode, .. } => *mode = new,
            Entry::Symlink { .. } => panic!("a symlink has no mode of its own"),
        }
        self
    }

    fn with_xattr(mut self, value: &'static str) -> Self {
        match &mut self {
            Entry::File { xattr, .. } | Entry::Dir { xattr, .. } => *xattr = Some(value),
            Entry::Symlink { .. } => panic!("user xattrs are not allowed on symlinks"),
        }
        self
    }

    fn with_child(mut self, name: &'static str, child: Entry) -> Self {
        match &mut self {
            Entry::Dir { children, .. } => match children.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = child,
                None => children.push((name, child)),
            },
            _ => panic!("only a directory has children"),
        }
        self
    }
}

// ---------------------------------------------------------------------------------------
// Building trees
// ---------------------------------------------------------------------------------------

fn chown(path: &Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id)).unwrap();
}

fn set_xattr(path: &Path, value: &str) -> std::io::Result<()> {
    cairn_store::xattr::set_all_path(
        path,
        &vec![(XATTR.as_bytes().to_vec(), value.as_bytes().to_vec())],
    )
}

/// Writes `entry` at `path` (which must not exist), with exactly its mode and owner.
fn build(path: &Path, entry: &Entry) {
    match entry {
        Entry::File {
            content,
            mode,
            owner,
            xattr,
        } => {
            fs::write(path, content).unwrap();
            chown(path, *owner);
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).unwrap();
            if let Some(v) = xattr {
                set_xattr(path, v).unwrap();
            }
        }
        Entry::Symlink { target, owner } => {
            std::os::unix::fs::symlink(target, path).unwrap();
            chown(path, *owner);
        }
        Entry::Dir {
            mode,
            owner,
            xattr,
            children,
        } => {
            fs::create_dir(path).unwrap();
            for (name, child) in children {
                build(&path.join(name), child);
            }
            chown(path, *owner);
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).unwrap();
            if let Some(v) = xattr {
                set_xattr(path, v).unwrap();
            }
        }
    }
}

fn bystander() -> Entry {
    file("bystander\n", 0o644)
}

/// An `/etc`-like root holding the bystander and, if any, `entry` at `name`.
fn build_root(root: &Path, name: &str, entry: Option<&Entry>) {
    fs::create_dir(root).unwrap();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    build(&root.join(BYSTANDER), &bystander());
    if let Some(entry) = entry {
        build(&root.join(name), entry);
    }
}

/// Whether the filesystem under `dir` takes user xattrs (EOPNOTSUPP: it does not).
fn user_xattrs_supported(dir: &Path) -> bool {
    let probe = dir.join("xattr-probe");
    fs::write(&probe, "").unwrap();
    let result = set_xattr(&probe, "probe");
    fs::remove_file(&probe).unwrap();
    match result {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTSUP.raw_os_error()) => false,
        Err(e) => panic!("setting a user xattr on {}: {e}", probe.display()),
    }
}

// ---------------------------------------------------------------------------------------
// Checking trees
// ---------------------------------------------------------------------------------------

fn kind_name(ft: fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "a symlink"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

fn user_xattrs(path: &Path) -> Vec<(String, String)> {
    cairn_store::xattr::list_all(path)
        .unwrap()
        .into_iter()
        .filter(|(name, _)| name.starts_with(b"user."))
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(&n).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect()
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Compares what is at `path` with `want`, pushing one line per difference onto `errs`.
fn check(path: &Path, rel: &str, want: &Entry, errs: &mut Vec<String>) {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            errs.push(format!("{rel}: expected {want:?}, but: {e}"));
            return;
        }
    };
    let ft = meta.file_type();
    let (want_kind, want_owner) = match want {
        Entry::File { owner, .. } => (ft.is_file(), *owner),
        Entry::Symlink { owner, .. } => (ft.is_symlink(), *owner),
        Entry::Dir { owner, .. } => (ft.is_dir(), *owner),
    };
    if !want_kind {
        errs.push(format!("{rel}: expected {want:?}, found {}", kind_name(ft)));
        return;
    }
    if (meta.uid(), meta.gid()) != (want_owner, want_owner) {
        errs.push(format!(
            "{rel}: owner {}:{}, expected {want_owner}:{want_owner}",
            meta.uid(),
            meta.gid()
        ));
    }
    let mut check_mode_and_xattr = |mode: u32, xattr: &Option<&'static str>| {
        if meta.mode() & 0o7777 != mode {
            errs.push(format!(
                "{rel}: mode {:o}, expected {mode:o}",
                meta.mode() & 0o7777
            ));
        }
        let want_xattrs: Vec<(String, String)> = xattr
            .iter()
            .map(|v| (XATTR.to_owned(), (*v).to_owned()))
            .collect();
        let got = user_xattrs(path);
        if got != want_xattrs {
            errs.push(format!(
                "{rel}: user xattrs {got:?}, expected {want_xattrs:?}"
            ));
        }
    };
    match want {
        Entry::File {
            content,
            mode,
            xattr,
            ..
        } => {
            check_mode_and_xattr(*mode, xattr);
            let got = fs::read_to_string(path).unwrap();
            if got != *content {
                errs.push(format!("{rel}: content {got:?}, expected {content:?}"));
            }
        }
        Entry::Symlink { target, .. } => {
            let got = fs::read_link(path).unwrap();
            if got != Path::new(target) {
                errs.push(format!(
                    "{rel}: symlink to {}, expected to {target}",
                    got.display()
                ));
            }
        }
        Entry::Dir {
            mode,
            xattr,
            children,
            ..
        } => {
            check_mode_and_xattr(*mode, xattr);
            let got = names(path);
            let expected: BTreeSet<String> =
                children.iter().map(|(n, _)| (*n).to_owned()).collect();
            if got != expected {
                errs.push(format!("{rel}/: holds {got:?}, expected {expected:?}"));
            }
            for (name, child) in children {
                if got.contains(*name) {
                    check(&path.join(name), &format!("{rel}/{name}"), child, errs);
                }
            }
        }
    }
}

/// Checks a whole root: exactly the bystander plus `entry` (if any) at `name`.
fn check_root(root: &Path, name: &str, entry: Option<&Entry>, errs: &mut Vec<String>) {
    let mut expected = BTreeSet::from([BYSTANDER.to_owned()]);
    if entry.is_some() {
        expected.insert(name.to_owned());
    }
    let got = names(root);
    if got != expected {
        errs.push(format!(
            "{}/: holds {got:?}, expected {expected:?}",
            root.display()
        ));
    }
    check(&root.join(BYSTANDER), BYSTANDER, &bystander(), errs);
    if let Some(entry) = entry {
        check(&root.join(name), name, entry, errs);
    }
}

// ---------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// A regular file.
    File,
    /// A symlink (relative, dangling: nothing may follow it).
    Symlink,
    /// A directory holding a file `f`.
    Dir,
}

/// What the admin did to the entry in the old `/etc`, relative to the old defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Admin {
    Untouched,
    /// A file's content, a symlink's target, or (directory) the content of `f` inside.
    Content,
    Mode,
    /// chown to `ADMIN_ID:ADMIN_ID`.
    Owner,
    /// Set the user xattr `XATTR`.
    Xattr,
    /// Added the entry, absent from the old defaults.
    Added,
    Deleted,
    /// Replaced the entry by a symlink.
    ToSymlink,
}

/// What the new defaults did to the entry, relative to the old defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
enum NewDefault {
    /// Same as the old default (or, with `Admin::Added`, still absent).
    Unchanged,
    Changed,
    /// Added the entry, absent from the old defaults.
    Added,
    Removed,
}

#[derive(Debug)]
enum Outcome {
    /// The admin's version, whole.
    Admin,
    /// The new default's version, whole.
    NewDefault,
    Absent,
    /// A directory mixing the two: the admin's metadata or files, the rest from the new
    /// default. Spelled out in full.
    Merged(Entry),
}

struct Case {
    name: &'static str,
    kind: Kind,
    admin: Admin,
    new_default: NewDefault,
    outcome: Outcome,
}

fn case(
    name: &'static str,
    kind: Kind,
    admin: Admin,
    new_default: NewDefault,
    outcome: Outcome,
) -> Case {
    Case {
        name,
        kind,
        admin,
        new_default,
        outcome,
    }
}

/// The name of the entry under test in every tree.
fn entry_name(kind: Kind) -> &'static str {
    match kind {
        Kind::File => "entry.conf",
        Kind::Symlink => "entry.link",
        Kind::Dir => "entry.d",
    }
}

/// The entry as the old defaults have it.
fn base(kind: Kind) -> Entry {
    match kind {
        Kind::File => file("old default\n", 0o644),
        Kind::Symlink => link("old-default-target"),
        Kind::Dir => dir(0o755, vec![("f", file("old default f\n", 0o644))]),
    }
}

/// The new default's version after `NewDefault::Changed`.
fn new_default_changed(kind: Kind) -> Entry {
    match kind {
        Kind::File => file("new default\n", 0o640),
        Kind::Symlink => link("new-default-target"),
        // The directory's mode, f's content, and a new file g.
        Kind::Dir => dir(
            0o711,
            vec![
                ("f", file("new default f\n", 0o644)),
                ("g", file("new default g\n", 0o644)),
            ],
        ),
    }
}

/// The new default's version after `NewDefault::Added`.
fn new_default_added(kind: Kind) -> Entry {
    match kind {
        Kind::File => file("new default added\n", 0o644),
        Kind::Symlink => link("new-default-added-target"),
        Kind::Dir => dir(0o755, vec![("n", file("new default added n\n", 0o644))]),
    }
}

/// The admin's version after `Admin::Added`.
fn admin_added(kind: Kind) -> Entry {
    match kind {
        Kind::File => file("admin added\n", 0o600).owned_by(ADMIN_ID),
        Kind::Symlink => link("admin-added-target"),
        // A whole tree: a file, a subdirectory with a file, a symlink.
        Kind::Dir => dir(
            0o750,
            vec![
                ("a", file("admin a\n", 0o600)),
                ("sub", dir(0o700, vec![("b", file("admin b\n", 0o644))])),
                ("l", link("a")),
            ],
        ),
    }
}

/// The admin's version after an edit of the old default.
fn admin_edited(kind: Kind, admin: Admin) -> Entry {
    let base = base(kind);
    match (kind, admin) {
        (Kind::File, Admin::Content) => file("admin edit\n", 0o644),
        (Kind::Symlink, Admin::Content) => link("admin-target"),
        (Kind::Dir, Admin::Content) => base.with_child("f", file("admin edit f\n", 0o644)),
        (Kind::File | Kind::Dir, Admin::Mode) => base.with_mode(0o700),
        (_, Admin::Owner) => base.owned_by(ADMIN_ID),
        (Kind::File | Kind::Dir, Admin::Xattr) => base.with_xattr("admin"),
        (_, Admin::ToSymlink) => link("admin-link-target"),
        _ => panic!("no {admin:?} edit for a {kind:?}"),
    }
}

/// The three input versions of a case's entry (`None`: absent from that tree).
struct Inputs {
    old_default: Option<Entry>,
    admin: Option<Entry>,
    new_default: Option<Entry>,
}

impl Inputs {
    fn of(c: &Case) -> Inputs {
        let fresh = c.admin == Admin::Added || c.new_default == NewDefault::Added;
        let old_default = (!fresh).then(|| base(c.kind));
        let admin = match c.admin {
            Admin::Untouched => old_default.clone(),
            Admin::Added => Some(admin_added(c.kind)),
            Admin::Deleted => None,
            edit => Some(admin_edited(c.kind, edit)),
        };
        let new_default = match c.new_default {
            NewDefault::Unchanged => old_default.clone(),
            NewDefault::Changed => Some(new_default_changed(c.kind)),
            NewDefault::Added => Some(new_default_added(c.kind)),
            NewDefault::Removed => None,
        };
        // Guard the table itself: each column must describe a real difference.
        let what = format!("{}: {:?} x {:?}", c.name, c.admin, c.new_default);
        match c.admin {
            Admin::Untouched => {}
            Admin::Added => assert!(old_default.is_none() && admin.is_some(), "{what}"),
            _ => assert!(
                old_default.is_some() && admin != old_default,
                "{what}: the admin's edit needs an old default and must change it"
            ),
        }
        match c.new_default {
            NewDefault::Unchanged => {}
            NewDefault::Added => assert!(old_default.is_none(), "{what}"),
            _ => assert!(
                old_default.is_some() && new_default != old_default,
                "{what}: the new default's change needs an old default and must change it"
            ),
        }
        Inputs {
            old_default,
            admin,
            new_default,
        }
    }
}

/// What the report must say: the one path the admin changed, by kind of change.
fn expected_report(c: &Case) -> MergeReport {
    let name = entry_name(c.kind).to_owned();
    let mut report = MergeReport::default();
    match (c.kind, c.admin) {
        (_, Admin::Untouched) => {}
        (_, Admin::Added) => report.added.push(name),
        (_, Admin::Deleted) => report.removed.push(name),
        // The directory itself is unchanged; only the file inside is the admin's.
        (Kind::Dir, Admin::Content) => report.modified.push(format!("{name}/f")),
        _ => report.modified.push(name),
    }
    report
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use Admin as A;
    use Kind::{Dir, File, Symlink};
    use NewDefault as N;
    use Outcome::{Absent, Admin as Mine, Merged, NewDefault as Theirs};
    let f = |c: &'static str| file(c, 0o644);
    let new_f_g = || vec![("f", f("new default f\n")), ("g", f("new default g\n"))];
    vec![
        // Regular files.
        case("file untouched, new default unchanged",           File, A::Untouched, N::Unchanged, Theirs),
        case("file untouched, new default changed",             File, A::Untouched, N::Changed,   Theirs),
        case("file untouched, new default added",               File, A::Untouched, N::Added,     Theirs),
        case("file untouched, new default removed",             File, A::Untouched, N::Removed,   Absent),
        case("file content edited, new default changed",        File, A::Content,   N::Changed,   Mine),
        case("file content edited, new default unchanged",      File, A::Content,   N::Unchanged, Mine),
        case("file content edited, new default removed",        File, A::Content,   N::Removed,   Mine),
        case("file mode edited, new default changed",           File, A::Mode,      N::Changed,   Mine),
        case("file mode edited, new default unchanged",         File, A::Mode,      N::Unchanged, Mine),
        case("file mode edited, new default removed",           File, A::Mode,      N::Removed,   Mine),
        case("file chowned, new default changed",               File, A::Owner,     N::Changed,   Mine),
        case("file chowned, new default unchanged",             File, A::Owner,     N::Unchanged, Mine),
        case("file xattr set, new default changed",             File, A::Xattr,     N::Changed,   Mine),
        case("file xattr set, new default unchanged",           File, A::Xattr,     N::Unchanged, Mine),
        case("file added, new default did not add it",          File, A::Added,     N::Unchanged, Mine),
        case("file added, new default added it too",            File, A::Added,     N::Added,     Mine),
        case("file deleted, new default changed",               File, A::Deleted,   N::Changed,   Absent),
        case("file deleted, new default unchanged",             File, A::Deleted,   N::Unchanged, Absent),
        case("file deleted, new default removed",               File, A::Deleted,   N::Removed,   Absent),
        case("file replaced by symlink, new default changed",   File, A::ToSymlink, N::Changed,   Mine),
        case("file replaced by symlink, new default unchanged", File, A::ToSymlink, N::Unchanged, Mine),
        // Symlinks.
        case("symlink untouched, new default unchanged",        Symlink, A::Untouched, N::Unchanged, Theirs),
        case("symlink untouched, new default retargets it",     Symlink, A::Untouched, N::Changed,   Theirs),
        case("symlink untouched, new default added",            Symlink, A::Untouched, N::Added,     Theirs),
        case("symlink untouched, new default removed",          Symlink, A::Untouched, N::Removed,   Absent),
        case("symlink retargeted, new default retargets it",    Symlink, A::Content,   N::Changed,   Mine),
        case("symlink retargeted, new default unchanged",       Symlink, A::Content,   N::Unchanged, Mine),
        case("symlink retargeted, new default removed",         Symlink, A::Content,   N::Removed,   Mine),
        case("symlink chowned, new default retargets it",       Symlink, A::Owner,     N::Changed,   Mine),
        case("symlink added, new default did not add it",       Symlink, A::Added,     N::Unchanged, Mine),
        case("symlink added, new default added it too",         Symlink, A::Added,     N::Added,     Mine),
        case("symlink deleted, new default retargets it",       Symlink, A::Deleted,   N::Changed,   Absent),
        case("symlink deleted, new default unchanged",          Symlink, A::Deleted,   N::Unchanged, Absent),
        // Directories (holding a file f).
        case("dir untouched, new default unchanged",            Dir, A::Untouched, N::Unchanged, Theirs),
        case("dir untouched, new default changed",              Dir, A::Untouched, N::Changed,   Theirs),
        case("dir untouched, new default added",                Dir, A::Untouched, N::Added,     Theirs),
        case("dir untouched, new default removed",              Dir, A::Untouched, N::Removed,   Absent),
        case("dir added with files, new default did not add it", Dir, A::Added,    N::Unchanged, Mine),
        case("dir added with files, new default added it too",  Dir, A::Added,     N::Added,     Mine),
        case("dir deleted, new default adds a file in it",      Dir, A::Deleted,   N::Changed,   Absent),
        case("dir deleted, new default unchanged",              Dir, A::Deleted,   N::Unchanged, Absent),
        case("dir replaced by symlink, new default changed",    Dir, A::ToSymlink, N::Changed,   Mine),
        case("dir mode edited, new default unchanged",          Dir, A::Mode,      N::Unchanged, Mine),
        // The admin's directory metadata, the new default's files.
        case("dir mode edited, new default changed its files",  Dir, A::Mode,      N::Changed,
             Merged(dir(0o700, new_f_g()))),
        case("dir mode edited, new default removed it",         Dir, A::Mode,      N::Removed,
             Merged(dir(0o700, vec![]))),
        case("dir chowned, new default changed its files",      Dir, A::Owner,     N::Changed,
             Merged(dir(0o755, new_f_g()).owned_by(ADMIN_ID))),
        case("dir xattr set, new default changed its files",    Dir, A::Xattr,     N::Changed,
             Merged(dir(0o755, new_f_g()).with_xattr("admin"))),
        // The admin's file, the new default's directory around it.
        case("file in dir edited, new default changed the dir", Dir, A::Content,   N::Changed,
             Merged(dir(0o711, vec![("f", f("admin edit f\n")), ("g", f("new default g\n"))]))),
        // The new default removed the directory: it comes back with the admin's metadata.
        case("file in dir edited, new default removed the dir", Dir, A::Content,   N::Removed,
             Merged(dir(0o755, vec![("f", f("admin edit f\n"))]))),
    ]
}

enum Verdict {
    Pass,
    Skipped(String),
    Failed(Vec<String>),
}

fn run(c: &Case) -> Verdict {
    let tmp = tempfile::tempdir().unwrap();
    if c.admin == Admin::Xattr && !user_xattrs_supported(tmp.path()) {
        return Verdict::Skipped("the temporary filesystem refuses user xattrs".to_owned());
    }
    let inputs = Inputs::of(c);
    let name = entry_name(c.kind);
    let old_defaults = tmp.path().join("old-usr-etc");
    let old_etc = tmp.path().join("old-etc");
    let new_defaults = tmp.path().join("new-usr-etc");
    let new_etc = tmp.path().join("new-etc");
    build_root(&old_defaults, name, inputs.old_default.as_ref());
    build_root(&old_etc, name, inputs.admin.as_ref());
    build_root(&new_defaults, name, inputs.new_default.as_ref());

    let report = match merge(&old_defaults, &old_etc, &new_defaults, &new_etc) {
        Ok(r) => r,
        Err(e) => return Verdict::Failed(vec![format!("merge failed: {e}")]),
    };

    let expected = match &c.outcome {
        Outcome::Admin => Some(inputs.admin.clone().expect("the admin's version is absent")),
        Outcome::NewDefault => inputs.new_default.clone(),
        Outcome::Absent => None,
        Outcome::Merged(e) => Some(e.clone()),
    };
    let mut errs = Vec::new();
    check_root(&new_etc, name, expected.as_ref(), &mut errs);
    let want_report = expected_report(c);
    if report != want_report {
        errs.push(format!("report {report:?}, expected {want_report:?}"));
    }
    // The merge reads its inputs and never changes them.
    let mut input_errs = Vec::new();
    check_root(
        &old_defaults,
        name,
        inputs.old_default.as_ref(),
        &mut input_errs,
    );
    check_root(&old_etc, name, inputs.admin.as_ref(), &mut input_errs);
    check_root(
        &new_defaults,
        name,
        inputs.new_default.as_ref(),
        &mut input_errs,
    );
    errs.extend(
        input_errs
            .into_iter()
            .map(|e| format!("input changed: {e}")),
    );
    if errs.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Failed(errs)
    }
}

#[test]
fn etc_merge_table() {
    let cases = cases();
    let unique: BTreeSet<&str> = cases.iter().map(|c| c.name).collect();
    assert_eq!(unique.len(), cases.len(), "case names must be unique");
    let mut failures = Vec::new();
    let mut passed = 0;
    for c in &cases {
        match run(c) {
            Verdict::Pass => passed += 1,
            Verdict::Skipped(why) => eprintln!("skipped {:?}: {why}", c.name),
            Verdict::Failed(errs) => failures.push(format!(
                "{} ({:?} {:?}, admin {:?}, new default {:?})\n    {}",
                c.name,
                c.kind,
                entry_name(c.kind),
                c.admin,
                c.new_default,
                errs.join("\n    ")
            )),
        }
    }
    eprintln!("etc merge: {passed} of {} cases passed", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------
// Nothing is written through a symlink the new defaults put where a directory was
// ---------------------------------------------------------------------------------------

/// Three trees where the new default turns the directory `foo` into a symlink to an
/// absolute directory outside them all.
struct Escape {
    _tmp: tempfile::TempDir,
    outside: std::path::PathBuf,
    old_defaults: std::path::PathBuf,
    old_etc: std::path::PathBuf,
    new_defaults: std::path::PathBuf,
    new_etc: std::path::PathBuf,
}

impl Escape {
    fn new(outside: Entry, old_foo: Entry, admin_foo: Entry) -> Escape {
        let tmp = tempfile::tempdir().unwrap();
        let outside_path = tmp.path().join("outside");
        build(&outside_path, &outside);
        let e = Escape {
            outside: outside_path.clone(),
            old_defaults: tmp.path().join("old-usr-etc"),
            old_etc: tmp.path().join("old-etc"),
            new_defaults: tmp.path().join("new-usr-etc"),
            new_etc: tmp.path().join("new-etc"),
            _tmp: tmp,
        };
        let new_foo = link(outside_path.to_str().unwrap());
        build_root(&e.old_defaults, "foo", Some(&old_foo));
        build_root(&e.old_etc, "foo", Some(&admin_foo));
        build_root(&e.new_defaults, "foo", Some(&new_foo));
        e
    }

    fn merge(&self) -> MergeReport {
        merge(
            &self.old_defaults,
            &self.old_etc,
            &self.new_defaults,
            &self.new_etc,
        )
        .unwrap()
    }

    fn assert_outside(&self, want: &Entry) {
        let mut errs = Vec::new();
        check(&self.outside, "outside", want, &mut errs);
        assert!(errs.is_empty(), "the directory outside changed: {errs:#?}");
    }

    fn assert_new_etc(&self, want: &Entry) {
        let mut errs = Vec::new();
        check_root(&self.new_etc, "foo", Some(want), &mut errs);
        assert!(errs.is_empty(), "new /etc: {errs:#?}");
    }
}

#[test]
fn etc_merge_admin_file_under_dir_the_new_default_made_a_symlink() {
    let outside = dir(0o755, vec![]);
    let old_foo = dir(0o755, vec![("keep", file("keep\n", 0o644))]);
    let admin_foo = old_foo
        .clone()
        .with_child("bar", file("admin bar\n", 0o600));
    let e = Escape::new(outside.clone(), old_foo, admin_foo);
    let report = e.merge();
    e.assert_outside(&outside);
    // foo is a real directory again (the admin's), holding the admin's bar; keep, which
    // the admin never touched, follows the new default: gone.
    e.assert_new_etc(&dir(0o755, vec![("bar", file("admin bar\n", 0o600))]));
    assert_eq!(
        report,
        MergeReport {
            modified: vec![],
            added: vec!["foo/bar".to_owned()],
            removed: vec![],
        }
    );
}

#[test]
fn etc_merge_admin_deletion_under_dir_the_new_default_made_a_symlink() {
    let victim = file("victim\n", 0o644);
    let outside = dir(0o755, vec![("victim", victim.clone())]);
    let old_foo = dir(0o755, vec![("victim", victim)]);
    let admin_foo = dir(0o755, vec![]);
    let e = Escape::new(outside.clone(), old_foo, admin_foo);
    let report = e.merge();
    e.assert_outside(&outside);
    // The admin never changed foo itself: the new default's symlink stays.
    e.assert_new_etc(&link(e.outside.to_str().unwrap()));
    assert_eq!(
        report,
        MergeReport {
            modified: vec![],
            added: vec![],
            removed: vec!["foo/victim".to_owned()],
        }
    );
}

#[test]
fn etc_merge_admin_dir_mode_under_dir_the_new_default_made_a_symlink() {
    let sub = dir(0o755, vec![("x", file("x\n", 0o644))]);
    let outside = dir(0o755, vec![("sub", sub.clone())]);
    let old_foo = dir(0o755, vec![("sub", sub.clone())]);
    let admin_foo = dir(0o755, vec![("sub", sub.with_mode(0o700))]);
    let e = Escape::new(outside.clone(), old_foo, admin_foo);
    let report = e.merge();
    e.assert_outside(&outside);
    let new_foo = e.new_etc.join("foo");
    let meta = fs::symlink_metadata(&new_foo).unwrap();
    assert!(
        meta.is_dir(),
        "new /etc/foo is {}",
        kind_name(meta.file_type())
    );
    let sub = fs::symlink_metadata(new_foo.join("sub")).unwrap();
    assert!(
        sub.is_dir(),
        "new /etc/foo/sub is {}",
        kind_name(sub.file_type())
    );
    assert_eq!(sub.mode() & 0o7777, 0o700);
    assert_eq!(report.modified, vec!["foo/sub".to_owned()]);
}
