//! Every transition of the agent's state machine, with fake ports and a fake clock.

use std::collections::BTreeMap;

use cairn_agent::machine::{
    Agent, Event, GraphClient, Level, LockClient, Ports, Settings, State, Strategy, Sysroot,
};
use cairn_agent::select::{Constraints, Release};
use cairn_agent::window::{WindowSpec, Windows};
use cairn_graph::{keys, Graph, Node};

/// 2026-01-05 00:00 UTC, a Monday.
const MONDAY: i64 = 1_767_571_200;

fn release(n: u64) -> Release {
    Release {
        version: format!("{n}"),
        checksum: format!("commit-{n}"),
    }
}

/// A chain 1 → every later release, as the graph offers a machine on release 1..n.
fn graph(releases: u64, extra: &[(u64, &str, &str)]) -> Graph {
    let nodes = (1..=releases)
        .map(|n| {
            let mut metadata = BTreeMap::from([(keys::AGE_INDEX.to_string(), (n - 1).to_string())]);
            for (which, key, value) in extra {
                if *which == n {
                    metadata.insert(key.to_string(), value.to_string());
                }
            }
            Node {
                version: n.to_string(),
                metadata,
                payload: format!("commit-{n}"),
            }
        })
        .collect();
    let mut edges = Vec::new();
    for from in 0..releases {
        for to in from + 1..releases {
            edges.push((from, to));
        }
    }
    Graph { nodes, edges }
}

struct FakeGraph {
    answer: Result<Graph, String>,
    asked: u32,
}

impl GraphClient for FakeGraph {
    fn graph(&mut self) -> Result<Graph, String> {
        self.asked += 1;
        self.answer.clone()
    }
}

#[derive(Default)]
struct FakeLock {
    /// `None`: unreachable.
    free: Option<bool>,
    taken: u32,
    given_back: u32,
}

impl LockClient for FakeLock {
    fn pre_reboot(&mut self) -> Result<Option<String>, String> {
        match self.free {
            None => Err("connection refused".into()),
            Some(true) => {
                self.taken += 1;
                Ok(None)
            }
            Some(false) => Ok(Some("all 2 slots are locked".into())),
        }
    }

    fn steady_state(&mut self) -> Result<(), String> {
        match self.free {
            None => Err("connection refused".into()),
            Some(_) => {
                self.given_back += 1;
                Ok(())
            }
        }
    }
}

struct FakeSysroot {
    booted: Release,
    staged: Option<Release>,
    bad: BTreeMap<String, String>,
    reboot_fails: bool,
    reboots: Vec<Release>,
    log: Vec<String>,
}

impl FakeSysroot {
    fn on(n: u64) -> FakeSysroot {
        FakeSysroot {
            booted: release(n),
            staged: None,
            bad: BTreeMap::new(),
            reboot_fails: false,
            reboots: Vec::new(),
            log: Vec::new(),
        }
    }
}

impl Sysroot for FakeSysroot {
    fn booted(&mut self) -> Result<Release, String> {
        Ok(self.booted.clone())
    }

    fn staged(&mut self) -> Result<Option<Release>, String> {
        Ok(self.staged.clone())
    }

    fn bad_releases(&mut self) -> Result<BTreeMap<String, String>, String> {
        Ok(self.bad.clone())
    }

    fn stage(&mut self, release: &Release) -> Result<(), String> {
        assert!(self.staged.is_none(), "staging over a staged deployment");
        self.log.push(format!("stage {}", release.version));
        self.staged = Some(release.clone());
        Ok(())
    }

    fn unstage(&mut self) -> Result<(), String> {
        self.log.push("unstage".into());
        self.staged = None;
        Ok(())
    }

    fn finalize_and_reboot(&mut self, release: &Release) -> Result<(), String> {
        assert_eq!(
            self.staged.as_ref(),
            Some(release),
            "reboot into what is staged"
        );
        self.log.push(format!("reboot {}", release.version));
        if self.reboot_fails {
            return Err("systemctl reboot: exit status 1".into());
        }
        self.reboots.push(release.clone());
        Ok(())
    }
}

struct World {
    agent: Agent,
    graph: FakeGraph,
    lock: FakeLock,
    sysroot: FakeSysroot,
    events: Vec<Event>,
}

impl World {
    fn new(strategy: Strategy, booted: u64, releases: u64) -> World {
        World {
            agent: Agent::new(Settings {
                enabled: true,
                strategy,
                steady_interval: 300,
                constraints: Constraints::default(),
                jitter_seed: 7,
            }),
            graph: FakeGraph {
                answer: Ok(graph(releases, &[])),
                asked: 0,
            },
            lock: FakeLock {
                free: Some(true),
                ..FakeLock::default()
            },
            sysroot: FakeSysroot::on(booted),
            events: Vec::new(),
        }
    }

    fn step(&mut self, now: i64) -> i64 {
        let mut ports = Ports {
            graph: &mut self.graph,
            lock: &mut self.lock,
            sysroot: &mut self.sysroot,
        };
        let (events, wake) = self.agent.step(now, &mut ports);
        self.events.extend(events);
        wake
    }

    /// Steps at each wake time until `until`; returns the number of steps.
    fn run_until(&mut self, mut now: i64, until: i64) -> u32 {
        let mut steps = 0;
        while now < until && steps < 10_000 {
            let wake = self.step(now);
            now = wake.max(now + 1);
            steps += 1;
            if matches!(self.agent.state(), State::Rebooting { .. })
                && !self.sysroot.reboots.is_empty()
            {
                break;
            }
        }
        steps
    }

    fn said(&self, text: &str) -> bool {
        self.events.iter().any(|e| e.message.contains(text))
    }
}

fn windows(days: &[&str], start: &str, minutes: u64) -> Windows {
    Windows::new(
        &[WindowSpec {
            days: days.iter().map(|d| d.to_string()).collect(),
            start_time: start.to_string(),
            length_minutes: minutes,
        }],
        "UTC",
    )
    .unwrap()
}

#[test]
fn immediate_stages_the_newest_release_and_reboots_saying_why() {
    let mut world = World::new(Strategy::Immediate, 1, 3);
    world.step(MONDAY);
    assert_eq!(world.agent.state(), &State::Steady);
    world.step(MONDAY);
    assert_eq!(world.sysroot.log, ["stage 3", "reboot 3"]);
    assert!(matches!(world.agent.state(), State::Rebooting { release: r, .. } if *r == release(3)));
    let reboot = world
        .events
        .iter()
        .find(|e| e.message.starts_with("rebooting"))
        .unwrap();
    assert_eq!(reboot.level, Level::Warn);
    assert_eq!(
        reboot.message,
        "rebooting from 1 into 3 (commit-3): strategy immediate"
    );
}

#[test]
fn nothing_offered_means_steady_and_a_poll_per_interval() {
    let mut world = World::new(Strategy::Immediate, 3, 3);
    world.step(MONDAY);
    let wake = world.step(MONDAY);
    assert!((MONDAY + 300..=MONDAY + 330).contains(&wake), "{wake}");
    assert_eq!(
        world.agent.status().waiting.as_deref(),
        Some("no update offered")
    );
    world.run_until(MONDAY, MONDAY + 3000);
    assert!(
        (9..=11).contains(&world.graph.asked),
        "{} polls in 50 min",
        world.graph.asked
    );
    assert!(world.sysroot.log.is_empty());
}

#[test]
fn periodic_waits_for_the_window_and_a_newer_release_replaces_the_waiting_one() {
    // Saturday 22:00 UTC for an hour.
    let mut world = World::new(Strategy::Periodic(windows(&["Sat"], "22:00", 60)), 1, 2);
    world.step(MONDAY);
    let wake = world.step(MONDAY + 60);
    assert_eq!(world.sysroot.log, ["stage 2"]);
    assert!(world
        .agent
        .status()
        .waiting
        .unwrap()
        .contains("waiting for the maintenance window at 2026-01-10 22:00 UTC"));
    assert!(wake <= MONDAY + 60 + 330);
    // Release 3 appears on Wednesday: it replaces the staged 2 (Zincati #928).
    world.graph.answer = Ok(graph(3, &[]));
    world.run_until(wake, MONDAY + 2 * 86_400);
    assert_eq!(world.sysroot.log, ["stage 2", "unstage", "stage 3"]);
    assert!(world.said("3 replaces the staged 2 while it waited for permission"));
    // Only inside the window does it reboot.
    let saturday_22 = MONDAY + 5 * 86_400 + 22 * 3600;
    world.run_until(MONDAY + 2 * 86_400, saturday_22 + 3600);
    assert_eq!(world.sysroot.reboots, [release(3)]);
    let rebooted_at = world.agent.status().next_wake.unwrap() - 600;
    assert!(
        (saturday_22..saturday_22 + 3600).contains(&rebooted_at),
        "{rebooted_at}"
    );
    assert!(world.said("inside a maintenance window"));
}

#[test]
fn update_now_skips_the_window_but_not_the_staging() {
    let mut world = World::new(Strategy::Periodic(windows(&["Sat"], "22:00", 60)), 1, 2);
    world.step(MONDAY);
    world.step(MONDAY + 1);
    assert!(world.sysroot.reboots.is_empty());
    world.agent.update_now();
    world.step(MONDAY + 2);
    assert_eq!(world.sysroot.reboots, [release(2)]);
    assert!(world.said("an operator asked for it"));
}

#[test]
fn fleet_lock_gives_back_on_start_waits_for_a_slot_and_reboots_with_one() {
    let mut world = World::new(Strategy::FleetLock, 1, 2);
    world.lock.free = Some(false);
    world.step(MONDAY);
    assert_eq!(world.lock.given_back, 1, "steady state reported on start");
    let wake = world.step(MONDAY + 1);
    assert_eq!(world.sysroot.log, ["stage 2"]);
    assert!(world.sysroot.reboots.is_empty());
    assert!(world
        .agent
        .status()
        .waiting
        .unwrap()
        .contains("waiting for a reboot slot (all 2 slots are locked)"));
    assert!(
        wake - (MONDAY + 1) <= 60,
        "asks again within a minute: {wake}"
    );
    world.lock.free = Some(true);
    world.step(wake);
    assert_eq!(world.lock.taken, 1);
    assert_eq!(world.sysroot.reboots, [release(2)]);
    assert!(world.said("the lock service granted a reboot slot"));
}

#[test]
fn an_unreachable_lock_service_means_no_reboot_and_a_retry() {
    let mut world = World::new(Strategy::FleetLock, 1, 2);
    world.lock.free = None;
    let wake = world.step(MONDAY);
    assert_eq!(
        world.agent.state(),
        &State::Starting,
        "steady state not reported yet"
    );
    assert_eq!(wake, MONDAY + 30);
    world.lock.free = Some(true);
    world.step(wake);
    world.lock.free = None;
    let mut now = wake;
    for _ in 0..20 {
        now = world.step(now);
    }
    assert!(
        world.sysroot.reboots.is_empty(),
        "never rebooted without a slot"
    );
    let status = world.agent.status();
    assert!(status
        .last_error
        .unwrap()
        .contains("ask the lock service for a reboot slot: connection refused"));
    assert!(status.consecutive_failures > 5);
    assert!(
        world.said("trying again in 3600 s"),
        "backoff grows to an hour"
    );
}

#[test]
fn a_graph_service_unreachable_or_answering_garbage_backs_off_and_recovers() {
    let mut world = World::new(Strategy::Immediate, 1, 2);
    world.step(MONDAY);
    world.graph.answer = Err("GET http://graph/v1/graph: expected value at line 1 column 1".into());
    let mut now = MONDAY;
    let mut waits = Vec::new();
    for _ in 0..5 {
        let wake = world.step(now);
        waits.push(wake - now);
        now = wake;
    }
    assert_eq!(waits, [30, 60, 120, 240, 480]);
    assert!(world.sysroot.log.is_empty());
    world.graph.answer = Ok(graph(2, &[]));
    world.step(now);
    assert_eq!(world.sysroot.reboots, [release(2)]);
    assert_eq!(world.agent.status().consecutive_failures, 0);
}

#[test]
fn a_failing_reboot_command_is_reported_and_retried() {
    let mut world = World::new(Strategy::Immediate, 1, 2);
    world.sysroot.reboot_fails = true;
    world.step(MONDAY);
    let wake = world.step(MONDAY);
    assert!(world.said("reboot into 2: systemctl reboot: exit status 1"));
    assert_eq!(wake, MONDAY + 30);
    assert!(
        matches!(world.agent.state(), State::Staged { .. }),
        "still staged"
    );
    world.sysroot.reboot_fails = false;
    let wake = world.step(wake);
    assert_eq!(world.sysroot.reboots, [release(2)]);
    assert_eq!(wake, MONDAY + 30 + 600);
    // A reboot that silently does not happen is tried again after the grace time.
    world.step(wake);
    assert!(world.said("still running 600 s after the reboot into 2 (attempt 1); rebooting again"));
    assert!(matches!(
        world.agent.state(),
        State::Rebooting { attempts: 2, .. }
    ));
    assert_eq!(world.sysroot.reboots.len(), 2);
}

#[test]
fn a_release_that_failed_its_health_check_is_never_staged_again() {
    let mut world = World::new(Strategy::Immediate, 1, 2);
    world.sysroot.bad.insert(
        "commit-2".into(),
        "health check 50-app failed: exit status 3".into(),
    );
    world.step(MONDAY);
    world.run_until(MONDAY, MONDAY + 86_400);
    assert!(world.sysroot.log.is_empty(), "{:?}", world.sysroot.log);
    let status = world.agent.status();
    assert_eq!(
        status.skipped,
        [(
            release(2),
            "it failed on this machine before: health check 50-app failed: exit status 3"
                .to_string()
        )]
    );
    // A later good release is still taken.
    world.graph.answer = Ok(graph(3, &[]));
    world.run_until(MONDAY + 86_400, MONDAY + 2 * 86_400);
    assert_eq!(world.sysroot.reboots, [release(3)]);
}

#[test]
fn a_machine_booted_on_a_dead_end_says_so() {
    let mut world = World::new(Strategy::Immediate, 2, 2);
    world.graph.answer = Ok(graph(
        2,
        &[
            (2, keys::DEADEND, "true"),
            (
                2,
                keys::DEADEND_REASON,
                "https://github.com/coreos/fedora-coreos-tracker/issues/1",
            ),
        ],
    ));
    world.step(MONDAY);
    world.step(MONDAY);
    let status = world.agent.status();
    assert_eq!(
        status.dead_end.as_deref(),
        Some("https://github.com/coreos/fedora-coreos-tracker/issues/1")
    );
    assert!(world.said("the booted release 2 is a dead end: no update leaves it"));
    // Said once, not at every poll.
    world.run_until(MONDAY, MONDAY + 3600);
    assert_eq!(
        world
            .events
            .iter()
            .filter(|e| e.message.contains("dead end"))
            .count(),
        1
    );
}

#[test]
fn pause_resume_disabled_and_the_version_cap() {
    let mut world = World::new(Strategy::Immediate, 1, 3);
    world.agent.pause();
    world.step(MONDAY);
    world.run_until(MONDAY, MONDAY + 3600);
    assert_eq!(world.graph.asked, 0, "a paused agent does not even ask");
    assert!(world.agent.status().waiting.unwrap().contains("paused"));
    world.agent.resume();
    world.step(MONDAY + 3600);
    assert_eq!(world.sysroot.reboots, [release(3)]);

    let mut capped = World::new(Strategy::Immediate, 1, 3);
    capped.agent = Agent::new(Settings {
        enabled: true,
        strategy: Strategy::Immediate,
        steady_interval: 300,
        constraints: Constraints {
            max_version: Some("2".into()),
            ..Constraints::default()
        },
        jitter_seed: 1,
    });
    capped.step(MONDAY);
    capped.step(MONDAY);
    assert_eq!(capped.sysroot.reboots, [release(2)]);

    let mut disabled = World::new(Strategy::Immediate, 1, 3);
    disabled.agent = Agent::new(Settings {
        enabled: false,
        strategy: Strategy::Immediate,
        steady_interval: 300,
        constraints: Constraints::default(),
        jitter_seed: 1,
    });
    disabled.step(MONDAY);
    disabled.run_until(MONDAY, MONDAY + 3600);
    assert_eq!(disabled.graph.asked, 0);
    assert!(disabled.sysroot.log.is_empty());
}

#[test]
fn a_staged_update_from_before_a_restart_is_picked_up() {
    let mut world = World::new(Strategy::Periodic(windows(&["Sat"], "22:00", 60)), 1, 2);
    world.sysroot.staged = Some(release(2));
    world.step(MONDAY);
    assert_eq!(
        world.agent.state(),
        &State::Staged {
            release: release(2)
        }
    );
    world.step(MONDAY);
    assert!(
        world.sysroot.log.is_empty(),
        "not staged twice: {:?}",
        world.sysroot.log
    );
}

/// A year with a release every two days and windows in Europe/Berlin (two weekend evenings
/// and one across Wednesday midnight, through both daylight-saving changes): every reboot
/// happens inside a window, and the machine keeps up.
#[test]
fn a_year_of_releases_reboots_only_inside_the_windows() {
    let spec = |days: &[&str], start: &str, minutes: u64| WindowSpec {
        days: days.iter().map(|d| d.to_string()).collect(),
        start_time: start.to_string(),
        length_minutes: minutes,
    };
    let specs = [
        spec(&["Sat", "Sun"], "22:30", 60),
        spec(&["Wed"], "23:30", 90),
    ];
    let windows = Windows::new(&specs, "Europe/Berlin").unwrap();
    let oracle = Windows::new(&specs, "Europe/Berlin").unwrap();
    let year_start = 1_767_225_600; // 2026-01-01 00:00 UTC
    let year_end = year_start + 365 * 86_400;
    let mut world = World::new(Strategy::Periodic(windows), 1, 1);
    let mut releases = 1;
    let mut next_release = year_start + 2 * 86_400;
    let mut now = year_start;
    let mut reboot_times = Vec::new();
    while now < year_end {
        if now >= next_release {
            releases += 1;
            world.graph.answer = Ok(graph(releases, &[]));
            next_release += 2 * 86_400;
        }
        let wake = world.step(now);
        if let State::Rebooting { release: into, .. } = world.agent.state().clone() {
            reboot_times.push(now);
            // The machine comes back on the release it rebooted into; a new agent starts.
            world.sysroot.booted = into;
            world.sysroot.staged = None;
            world.agent = Agent::new(Settings {
                enabled: true,
                strategy: Strategy::Periodic(Windows::new(&specs, "Europe/Berlin").unwrap()),
                steady_interval: 300,
                constraints: Constraints::default(),
                jitter_seed: reboot_times.len() as u64,
            });
            now += 300;
            continue;
        }
        now = wake.min(next_release).max(now + 1);
    }
    assert!(
        reboot_times.len() > 100,
        "{} reboots in a year",
        reboot_times.len()
    );
    for at in &reboot_times {
        assert!(oracle.contains(*at), "rebooted outside the windows at {at}");
    }
    let latest = world.sysroot.booted.version.parse::<u64>().unwrap();
    assert!(
        releases - latest <= 2,
        "fell behind: booted {latest} of {releases}"
    );
    // Several releases waited in a window's queue and were replaced by newer ones.
    assert!(world.said("replaces the staged"));
}

/// An operator's update-now while nothing is offered does not linger: an update offered days
/// later still waits for its window.
#[test]
fn update_now_with_nothing_offered_does_not_linger() {
    let mut world = World::new(Strategy::Periodic(windows(&["Sat"], "02:00", 60)), 1, 1);
    world.step(MONDAY);
    world.agent.update_now();
    world.step(MONDAY + 1);
    assert!(world.said("update-now: no update is offered"));
    world.graph.answer = Ok(graph(2, &[]));
    world.run_until(MONDAY + 2, MONDAY + 86_400 + 12 * 3600);
    assert_eq!(
        world.sysroot.log,
        ["stage 2"],
        "staged, not rebooted outside the window"
    );
}

/// A staged update that the graph withdraws (here: marked a dead end) is unstaged, never
/// rebooted into.
#[test]
fn a_withdrawn_staged_update_is_unstaged() {
    let mut world = World::new(Strategy::Periodic(windows(&["Sat"], "22:00", 60)), 1, 2);
    world.step(MONDAY);
    world.step(MONDAY + 1);
    assert_eq!(world.sysroot.log, ["stage 2"]);
    world.graph.answer = Ok(graph(2, &[(2, keys::DEADEND, "true")]));
    world.run_until(MONDAY + 2, MONDAY + 7 * 86_400);
    assert_eq!(world.sysroot.log, ["stage 2", "unstage"]);
    assert!(world.said("withdrew the staged 2: it is a dead end"));
    assert!(world.sysroot.reboots.is_empty());
    assert_eq!(world.agent.state(), &State::Steady);
}
