//! The README promise: `cairn quickstart` runs the main job end to end.

use crate::support::*;

#[test]
fn quickstart_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qs");
    let out = cairn_ok(&["quickstart", "--dir", dir.to_str().unwrap()]);
    assert!(
        out.contains("using delta "),
        "the update did not travel as a delta:\n{out}"
    );
    assert_eq!(out.matches(": all good").count(), 2, "{out}");
    assert!(out.contains("VERSION_ID=2"), "{out}");
    if have_peer("ostree") {
        ostree_fsck_ok(&format!("--repo={}", dir.join("repo").display()));
        ostree_fsck_ok(&format!("--repo={}", dir.join("machine").display()));
    }
}
