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
    assert_eq!(out.matches(": all good").count(), 3, "{out}");
    assert!(out.contains("VERSION_ID=2"), "{out}");
    assert!(out.contains("fcos 1.6.0 → Ignition 3.5.0"), "{out}");
    assert!(out.contains("typo.bu:10:13"), "{out}");
    let ignition: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("machine.ign")).unwrap()).unwrap();
    assert_eq!(
        ignition["systemd"]["units"].as_array().unwrap().len(),
        2,
        "hello.service and var.mount"
    );
    // First boot: the storage section is refused, the rest applies once.
    let first_boot = &out[out.find("== 14.").unwrap()..out.find("== 15.").unwrap()];
    if rustix::process::geteuid().is_root() {
        assert!(
            first_boot.contains("storage.filesystems[0]") && first_boot.contains("--skip-storage"),
            "{first_boot}"
        );
        assert!(
            first_boot.contains("/etc/passwd: core:x:1000:1000::/home/core:/bin/sh"),
            "{first_boot}"
        );
        assert!(first_boot.contains("already provisioned"), "{first_boot}");
        let root = dir.join("firstboot");
        assert_eq!(
            std::fs::read_to_string(root.join("etc/motd")).unwrap(),
            "Provisioned by cairn."
        );
        assert!(
            std::fs::read_to_string(root.join("etc/systemd/system-preset/20-ignition.preset"))
                .unwrap()
                .contains("enable hello.service")
        );
        assert!(!root.join(".cairn-apply").exists());
    }
    // The update graph: release 2 reaches the eager machine first.
    let graph = &out[out.find("== 15.").unwrap()..out.find("== 16.").unwrap()];
    // Reboot slots: two granted, the third waits, then gets the slot the first gave back.
    let slots = &out[out.find("== 16.").unwrap()..out.find("== 17.").unwrap()];
    assert!(
        slots.contains("machine-1 asks to reboot: granted"),
        "{slots}"
    );
    assert!(
        slots.contains("machine-2 asks to reboot: granted"),
        "{slots}"
    );
    assert!(
        slots.contains("machine-3 asks to reboot: wait (409 failed_lock_semaphore_full"),
        "{slots}"
    );
    assert!(
        slots.contains("group workers: 2 of 2 slots taken"),
        "{slots}"
    );
    assert!(slots.contains("machine-2 holds a slot since "), "{slots}");
    assert!(slots.contains("machine-3 asks again: granted"), "{slots}");
    // The fleet: a gradual rollout through reboot slots, one machine rolling back.
    let fleet = &out[out.find("== 17.").unwrap()..out.find("== 18.").unwrap()];
    assert!(fleet.contains("machine-1: booted 3\n"), "{fleet}");
    assert!(fleet.contains("machine-2: booted 3\n"), "{fleet}");
    assert!(
        fleet.contains("machine-3: booted 2; not taking 3: it failed on this machine before"),
        "{fleet}"
    );
    assert!(
        fleet.contains("rolled back to 2, 3 recorded as bad"),
        "{fleet}"
    );
    // In rollout order: the eager machine first, the wary one last.
    let first = fleet.find("machine-1 (wariness 0.2): rebooting").unwrap();
    let second = fleet.find("machine-2 (wariness 0.5): rebooting").unwrap();
    let third = fleet.find("machine-3 (wariness 0.8): rebooting").unwrap();
    assert!(first < second && second < third, "{fleet}");
    assert!(graph.contains("rollout of 2 at 25%"), "{graph}");
    assert!(
        graph.contains("rollout_wariness=0.1) is offered: 1 → 2"),
        "{graph}"
    );
    assert!(
        graph.contains("rollout_wariness=0.9) is offered: nothing yet"),
        "{graph}"
    );
    // The sysroot steps: booted release 2 after the upgrade, release 1 after the rollback.
    let upgrade = &out[out.find("== 8.").unwrap()..out.find("== 9.").unwrap()];
    assert!(upgrade.contains("    Version: 2\n"), "{upgrade}");
    assert!(upgrade.contains("(rollback)"), "{upgrade}");
    let rollback = &out[out.find("== 9.").unwrap()..out.find("== 10.").unwrap()];
    let booted = rollback.lines().find(|l| l.starts_with('*')).unwrap();
    let first_version = rollback
        .lines()
        .skip_while(|l| !l.starts_with('*'))
        .nth(1)
        .unwrap();
    assert_eq!(first_version, "    Version: 1", "{rollback}");
    if have_peer("ostree") {
        ostree_fsck_ok(&format!("--repo={}", dir.join("repo").display()));
        ostree_fsck_ok(&format!("--repo={}", dir.join("machine").display()));
        let sysroot = dir.join("sysroot");
        let status = ostree_ok(&["admin", "status", "--sysroot", sysroot.to_str().unwrap()]);
        let first = status.lines().next().unwrap();
        assert!(
            booted.ends_with(first.trim_start()),
            "ostree sees {first:?} first, cairn booted {booted:?}"
        );
        let deployments = status.lines().filter(|l| !l.starts_with("    ")).count();
        assert_eq!(deployments, 2, "{status}");
    }
}
