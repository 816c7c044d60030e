//! Agents against cairn's real graph and lock services on loopback, on a simulated clock: a
//! fleet of 50 following a rollout through 2 reboot slots, and single machines meeting a
//! barrier and a dead end. Each machine has an in-memory sysroot whose reboot is a record;
//! the driver then "boots" the staged release and starts a new agent, as a reboot starts a
//! new process.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_agent::http::{GraphQuery, HttpGraph, HttpLock};
use cairn_agent::machine::{
    Agent, Event, GraphClient, Level, LockClient, Ports, Settings, State, Strategy, Sysroot,
};
use cairn_agent::select::{Constraints, Release};
use cairn_lock::MemoryStore;
use cairn_lock_server::GroupsReport;
use cairn_test_support::http;

const TIMEOUT: Duration = Duration::from_secs(10);
/// 2026-01-05 00:00 UTC: the rollout of release 2 starts here.
const T0: i64 = 1_767_571_200;
/// Shorter than the 75 minutes that 50 reboots of 3 minutes take through 2 slots: late in the
/// rollout the slots, not the curve, set the pace.
const ROLLOUT_MINUTES: i64 = 60;
const START_PERCENTAGE: f64 = 0.0;
const AGENTS: usize = 50;
const SLOTS: u64 = 2;
/// `agent.timing.steady_interval_secs`, Zincati's default.
const POLL: u64 = 300;
/// From the reboot command to the new agent's first step (the slot is held meanwhile).
const REBOOT: i64 = 180;
const ADMIN_TOKEN: &str = "fleet-admin";

fn release(n: u64) -> Release {
    Release {
        version: n.to_string(),
        checksum: format!("{n:064x}"),
    }
}

/// The graph service over release `1..=releases` (x86_64 commits) and `updates` (the
/// `releases` of the updates metadata), answering for the instant `now`.
fn graph_service(
    dir: &Path,
    releases: u64,
    updates: serde_json::Value,
    now: i64,
) -> cairn_graph_server::Background {
    let index = serde_json::json!({
        "stream": "stable",
        "metadata": {"last-modified": "2026-01-01T00:00:00Z"},
        "releases": (1..=releases).map(|n| serde_json::json!({
            "version": n.to_string(),
            "metadata": format!("https://example.invalid/{n}/release.json"),
            "commits": [{"architecture": "x86_64", "checksum": release(n).checksum}],
        })).collect::<Vec<_>>(),
    });
    let updates = serde_json::json!({
        "stream": "stable",
        "metadata": {"last-modified": "2026-01-01T00:00:00Z"},
        "releases": updates,
    });
    std::fs::write(dir.join("releases.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("updates.json"), updates.to_string()).unwrap();
    let server = cairn_graph_server::spawn(
        cairn_graph_server::Settings {
            streams: vec!["stable".into()],
            release_index: dir.join("releases.json").display().to_string(),
            updates: dir.join("updates.json").display().to_string(),
            // No reload during a test: the sources do not change.
            refresh: Duration::from_secs(3600),
            now: Some(now),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let status = http(server.addr, "GET", "/status", "", "");
    assert!(
        status.body.contains(r#""serving":true"#),
        "the sources load: {}",
        status.body
    );
    server
}

/// A machine's deployments in memory: the booted release, the staged one, and a log of
/// every change at the simulated instant it happened.
struct TestSysroot {
    booted: Release,
    staged: Option<Release>,
    /// The simulated instant, set by the driver before each step.
    now: i64,
    log: Vec<(i64, String)>,
    /// The reboot command ran; the driver has not rebooted the machine yet.
    reboot_pending: bool,
}

impl Sysroot for TestSysroot {
    fn booted(&mut self) -> Result<Release, String> {
        Ok(self.booted.clone())
    }

    fn staged(&mut self) -> Result<Option<Release>, String> {
        Ok(self.staged.clone())
    }

    fn bad_releases(&mut self) -> Result<BTreeMap<String, String>, String> {
        Ok(BTreeMap::new())
    }

    fn stage(&mut self, release: &Release) -> Result<(), String> {
        if let Some(staged) = &self.staged {
            return Err(format!("{} is staged already", staged.version));
        }
        self.log
            .push((self.now, format!("stage {}", release.version)));
        self.staged = Some(release.clone());
        Ok(())
    }

    fn unstage(&mut self) -> Result<(), String> {
        self.log.push((self.now, "unstage".into()));
        self.staged = None;
        Ok(())
    }

    fn finalize_and_reboot(&mut self, release: &Release) -> Result<(), String> {
        if self.staged.as_ref() != Some(release) {
            return Err(format!("{} is not what is staged", release.version));
        }
        self.log
            .push((self.now, format!("reboot {}", release.version)));
        self.reboot_pending = true;
        Ok(())
    }
}

/// The `immediate` strategy never asks for a slot.
struct NoLock;

impl LockClient for NoLock {
    fn pre_reboot(&mut self) -> Result<Option<String>, String> {
        Err("the immediate strategy asked the lock service".into())
    }

    fn steady_state(&mut self) -> Result<(), String> {
        Err("the immediate strategy reported to the lock service".into())
    }
}

/// One machine: its agent (the process of the current boot), its clients and deployments.
struct Machine {
    /// The node UUID, also its FleetLock id.
    id: String,
    wariness: f64,
    fleet_lock: bool,
    graph_url: String,
    agent: Agent,
    graph: HttpGraph,
    lock: Box<dyn LockClient>,
    sysroot: TestSysroot,
    events: Vec<(i64, Event)>,
    boots: u64,
}

impl Machine {
    fn new(
        number: u64,
        booted: u64,
        wariness: f64,
        graph_url: &str,
        lock_url: Option<&str>,
    ) -> Machine {
        let id = format!("{:032x}", 0x9e37_79b9_7f4a_7c15_u128 * (number as u128 + 1));
        let lock: Box<dyn LockClient> = match lock_url {
            Some(url) => Box::new(HttpLock::new(url, &id, "default", None, TIMEOUT).unwrap()),
            None => Box::new(NoLock),
        };
        let sysroot = TestSysroot {
            booted: release(booted),
            staged: None,
            now: i64::MIN,
            log: Vec::new(),
            reboot_pending: false,
        };
        Machine {
            graph: HttpGraph::new(
                graph_url,
                &Self::query(&id, wariness, &sysroot.booted),
                TIMEOUT,
            )
            .unwrap(),
            agent: Self::agent(number, lock_url.is_some()),
            id,
            wariness,
            fleet_lock: lock_url.is_some(),
            graph_url: graph_url.to_string(),
            lock,
            sysroot,
            events: Vec::new(),
            boots: 0,
        }
    }

    fn query(id: &str, wariness: f64, booted: &Release) -> GraphQuery {
        GraphQuery {
            basearch: "x86_64".into(),
            stream: "stable".into(),
            rollout_wariness: Some(wariness),
            node_uuid: id.to_string(),
            group: "default".into(),
            os_version: booted.version.clone(),
            os_checksum: booted.checksum.clone(),
        }
    }

    fn agent(seed: u64, fleet_lock: bool) -> Agent {
        Agent::new(Settings {
            enabled: true,
            strategy: if fleet_lock {
                Strategy::FleetLock
            } else {
                Strategy::Immediate
            },
            steady_interval: POLL,
            constraints: Constraints::default(),
            jitter_seed: seed.wrapping_mul(0x2545_f491_4f6c_dd1d) + 1,
        })
    }

    fn step(&mut self, now: i64) -> i64 {
        self.sysroot.now = now;
        let mut ports = Ports {
            graph: &mut self.graph,
            lock: &mut *self.lock,
            sysroot: &mut self.sysroot,
        };
        let (events, wake) = self.agent.step(now, &mut ports);
        self.events
            .extend(events.into_iter().map(|event| (now, event)));
        wake
    }

    /// The reboot happens: the staged release boots and a new agent process starts, with a
    /// graph client that reports the new release.
    fn reboot(&mut self, seed: u64) {
        assert!(self.sysroot.reboot_pending, "{}: no reboot asked", self.id);
        self.sysroot.reboot_pending = false;
        self.sysroot.booted = self.sysroot.staged.take().expect("a staged release");
        self.boots += 1;
        self.agent = Self::agent(seed + 1000 * self.boots, self.fleet_lock);
        self.graph = HttpGraph::new(
            &self.graph_url,
            &Self::query(&self.id, self.wariness, &self.sysroot.booted),
            TIMEOUT,
        )
        .unwrap();
    }

    /// The log without times.
    fn actions(&self) -> Vec<&str> {
        self.sysroot
            .log
            .iter()
            .map(|(_, what)| what.as_str())
            .collect()
    }

    /// When the machine first did `action`.
    fn when(&self, action: &str) -> Option<i64> {
        self.sysroot
            .log
            .iter()
            .find(|(_, what)| what == action)
            .map(|(at, _)| *at)
    }

    fn said(&self, text: &str) -> usize {
        self.events
            .iter()
            .filter(|(_, event)| event.message.contains(text))
            .count()
    }
}

/// The share of the fleet the rollout of release 2 reaches at `t`, from its metadata (as
/// `docs/protocols/graph.md` defines it); `None` before it starts.
fn rollout_fraction(t: i64) -> Option<f64> {
    if t < T0 {
        return None;
    }
    let elapsed = (t - T0) as f64 / (ROLLOUT_MINUTES * 60) as f64;
    Some((START_PERCENTAGE + (1.0 - START_PERCENTAGE) * elapsed).clamp(0.0, 1.0))
}

fn reached(t: i64, wariness: f64) -> bool {
    rollout_fraction(t).is_some_and(|fraction| wariness <= fraction)
}

/// The holders of the group `default`, from the lock service's admin API.
fn holders(lock: SocketAddr) -> BTreeSet<String> {
    let reply = http(
        lock,
        "GET",
        "/v1/admin/groups",
        &format!("Authorization: Bearer {ADMIN_TOKEN}\r\n"),
        "",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let report: GroupsReport = serde_json::from_str(&reply.body).unwrap();
    let group = report
        .groups
        .into_iter()
        .find(|group| group.group == "default")
        .expect("the group default");
    assert_eq!(group.slots, SLOTS);
    group.holders.into_iter().map(|holder| holder.id).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// The agent asked to be called at this instant.
    Step,
    /// The machine comes back up on its staged release.
    Boot,
}

#[test]
fn a_fleet_follows_the_rollout_curve_through_two_reboot_slots() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let begin = T0 - 30 * 60;
    let graph = graph_service(
        dir.path(),
        2,
        serde_json::json!([{"version": "2", "metadata": {"rollout": {
            "start_epoch": T0,
            "start_percentage": START_PERCENTAGE,
            "duration_minutes": ROLLOUT_MINUTES,
        }}}]),
        begin,
    );
    let mut lock_settings = cairn_lock_server::Settings::with_slots([("default", SLOTS)]);
    lock_settings.admin_token = Some(ADMIN_TOKEN.into());
    let lock = cairn_lock_server::spawn(
        cairn_lock_server::Service::new(MemoryStore::new(), lock_settings),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let graph_url = format!("http://{}", graph.addr);
    let lock_url = format!("http://{}", lock.addr);

    // Configured wariness spread evenly over (0, 1]: agent i sees the release once the
    // rollout reaches (i + 0.5) / 50, so the curve a count should follow is exact.
    let mut machines: Vec<Machine> = (0..AGENTS as u64)
        .map(|i| {
            let wariness = (i as f64 + 0.5) / AGENTS as f64;
            Machine::new(i, 1, wariness, &graph_url, Some(&lock_url))
        })
        .collect();
    let ids: Vec<String> = machines.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), AGENTS);

    // The machines come up over the first five minutes, before the rollout starts.
    let mut queue = BinaryHeap::new();
    let mut sequence = 0u64;
    let mut schedule = |queue: &mut BinaryHeap<_>, at: i64, machine: usize, due: Due| {
        sequence += 1;
        queue.push(Reverse((at, sequence, machine, due)));
    };
    for i in 0..AGENTS {
        schedule(
            &mut queue,
            begin + (i as i64 * 37) % POLL as i64,
            i,
            Due::Step,
        );
    }

    let deadline = T0 + ROLLOUT_MINUTES * 60 + 4 * 3600;
    // Client-side accounting of the slots: granted (the reboot command ran) until the new
    // boot's agent reported steady state. Checked against the lock service's own holders.
    let mut holding: BTreeSet<usize> = BTreeSet::new();
    let mut most_holders = 0;
    let mut first_check: Vec<Option<i64>> = vec![None; AGENTS];
    let mut waited_for_a_slot = 0;
    let mut steps = 0u64;
    let mut now = begin;
    while let Some(Reverse((at, _, i, due))) = queue.pop() {
        assert!(at >= now, "time goes forward");
        now = at;
        let settled = holding.is_empty() && machines.iter().all(|m| m.sysroot.booted == release(2));
        if now > deadline || settled {
            break;
        }
        steps += 1;
        assert!(steps < 100_000, "the simulation does not settle");
        graph.service.set_now(Some(now));
        let machine = &mut machines[i];
        match due {
            Due::Boot => {
                machine.reboot(i as u64);
                schedule(&mut queue, now, i, Due::Step);
            }
            Due::Step => {
                let before = machine.agent.state().clone();
                let wake = machine.step(now);
                let after = machine.agent.state().clone();
                let status = machine.agent.status();
                assert_eq!(status.last_error, None, "agent {i} at {now}");
                if first_check[i].is_none() {
                    first_check[i] = status.last_check;
                }
                if status
                    .waiting
                    .as_deref()
                    .is_some_and(|w| w.contains("waiting for a reboot slot"))
                {
                    waited_for_a_slot += 1;
                }
                if before == State::Starting && after != State::Starting && machine.boots > 0 {
                    holding.remove(&i);
                }
                if machine.sysroot.reboot_pending {
                    holding.insert(i);
                    schedule(&mut queue, now + REBOOT, i, Due::Boot);
                } else {
                    assert!(wake >= now, "agent {i} wakes at {wake}, before {now}");
                    schedule(&mut queue, wake, i, Due::Step);
                }
                // Only a step that was not a plain poll can have touched the lock.
                if !(before == State::Steady && after == State::Steady) {
                    let held = holders(lock.addr);
                    let expected: BTreeSet<String> =
                        holding.iter().map(|&h| ids[h].clone()).collect();
                    assert_eq!(held, expected, "the lock service's holders at {now}");
                    assert!(held.len() <= SLOTS as usize, "{held:?} at {now}");
                    most_holders = most_holders.max(held.len());
                }
            }
        }
    }
    let ended = now;

    // Every machine ends on release 2, with one stage and one reboot, after one boot, and the
    // group ends empty.
    for (i, machine) in machines.iter().enumerate() {
        assert_eq!(machine.sysroot.booted, release(2), "agent {i}");
        assert_eq!(machine.sysroot.staged, None, "agent {i}");
        assert_eq!(machine.actions(), ["stage 2", "reboot 2"], "agent {i}");
        assert_eq!(machine.boots, 1, "agent {i}");
        assert_eq!(machine.agent.state(), &State::Steady, "agent {i}");
        assert_eq!(
            machine.said("reported steady state to the lock service"),
            2,
            "agent {i}: on each boot"
        );
        assert!(
            machine
                .events
                .iter()
                .all(|(_, e)| e.level != Level::Error && !e.message.contains("trying again")),
            "agent {i}: {:?}",
            machine.events
        );
    }
    assert!(holding.is_empty());
    assert_eq!(holders(lock.addr), BTreeSet::new(), "the group ends empty");

    // Nobody stages or reboots before the start, though everybody asked before it; and each
    // machine stages and reboots only once the rollout has reached its wariness.
    for (i, machine) in machines.iter().enumerate() {
        let checked = first_check[i].expect("asked the graph");
        assert!(checked < T0, "agent {i} first asked at {checked}");
        for (at, what) in &machine.sysroot.log {
            assert!(*at >= T0, "agent {i}: {what} at {at}, before {T0}");
            assert!(
                reached(*at, machine.wariness),
                "agent {i} of wariness {}: {what} at {at}, when the rollout reached {:?}",
                machine.wariness,
                rollout_fraction(*at)
            );
        }
    }

    // The count of updated machines follows the curve: never ahead of it, and behind it only
    // by a poll and the waits for a slot. A machine stages at its first poll after the curve
    // passes its wariness (polls are `POLL` plus at most a tenth of jitter apart), so by `s`
    // every machine the curve reached by `s - poll_max` has staged and asks for a slot. A slot
    // is held `REBOOT` (until the new boot reports steady state) and a waiting machine asks
    // again at least every fifth of `POLL`, so while someone waits each slot grants a reboot
    // at least every `turnover`. Hence the count at `t` is at least the smallest, over
    // `s <= t`, of `allowed(s - poll_max) + SLOTS * floor((t - s) / turnover)` (a service
    // curve): one poll behind while slots are free, the slots' pace while they are not.
    let poll_max = POLL as i64 + POLL as i64 / 10;
    let turnover = REBOOT + POLL as i64 / 5;
    let reboots: Vec<i64> = machines
        .iter()
        .map(|m| m.when("reboot 2").unwrap())
        .collect();
    let updated = |t: i64| reboots.iter().filter(|&&at| at <= t).count() as i64;
    let allowed = |t: i64| machines.iter().filter(|m| reached(t, m.wariness)).count() as i64;
    let staged_by: Vec<i64> = (begin..=ended).map(|s| allowed(s - poll_max)).collect();
    let at_least = |t: i64| {
        (begin..=t)
            .map(|s| staged_by[(s - begin) as usize] + SLOTS as i64 * ((t - s) / turnover))
            .min()
            .unwrap()
    };
    let (mut worst_behind, mut worst_margin) = (0, i64::MAX);
    let mut t = begin;
    while t <= ended {
        let (count, curve, bound) = (updated(t), allowed(t), at_least(t));
        let at = t - T0;
        assert!(
            count <= curve,
            "at T0{at:+} s: {count} updated, the curve allows {curve}"
        );
        assert!(
            count >= bound,
            "at T0{at:+} s: {count} updated, the curve ({curve}) and the slots allow {bound}"
        );
        worst_behind = worst_behind.max(curve - count);
        if curve > count {
            worst_margin = worst_margin.min(count - bound);
        }
        t += 30;
    }
    assert_eq!(
        most_holders, SLOTS as usize,
        "the slots were the limit at times"
    );
    assert!(waited_for_a_slot > 0, "some machine waited for a slot");

    // Each machine's own wait: from the instant the curve reached it to its reboot.
    let waits: Vec<i64> = machines
        .iter()
        .zip(&reboots)
        .map(|(m, &at)| {
            let seen = (T0..).find(|&t| reached(t, m.wariness)).unwrap();
            at - seen
        })
        .collect();
    let last = reboots.iter().max().unwrap();
    eprintln!(
        "fleet: {AGENTS} agents, {SLOTS} slots, rollout T0..T0+{ROLLOUT_MINUTES} min; first reboot \
         T0+{} s, last T0+{} s, settled T0+{} s; wait from reach to reboot: max {} s, mean {} s; \
         count behind the curve at most {worst_behind}, ahead of the bound by at least \
         {worst_margin} when behind; most holders \
         {most_holders}; {waited_for_a_slot} steps waited for a slot; {steps} steps in {:.1?}",
        reboots.iter().min().unwrap() - T0,
        last - T0,
        ended - T0,
        waits.iter().max().unwrap(),
        waits.iter().sum::<i64>() / waits.len() as i64,
        started.elapsed(),
    );
}

/// Steps one machine (and reboots it when asked) from `begin` to `end`, the graph service's
/// clock following.
fn drive_alone(machine: &mut Machine, service: &cairn_graph_server::Service, begin: i64, end: i64) {
    let mut now = begin;
    let mut steps = 0;
    loop {
        if machine.sysroot.reboot_pending {
            now += REBOOT;
            machine.reboot(7);
        }
        if now >= end {
            return;
        }
        steps += 1;
        assert!(steps < 1000, "{}: does not settle", machine.id);
        service.set_now(Some(now));
        let wake = machine.step(now);
        assert_eq!(machine.agent.status().last_error, None, "{}", machine.id);
        if !machine.sysroot.reboot_pending {
            assert!(wake >= now);
            now = wake;
        }
    }
}

/// The versions `from` has edges to in the graph a machine on it is served.
fn offered(graph_url: &str, from: u64) -> Vec<String> {
    let mut client = HttpGraph::new(
        graph_url,
        &Machine::query("0", 0.5, &release(from)),
        TIMEOUT,
    )
    .unwrap();
    let graph = client.graph().unwrap();
    let source = graph
        .nodes
        .iter()
        .position(|node| node.version == from.to_string())
        .unwrap() as u64;
    let mut to: Vec<String> = graph
        .edges
        .iter()
        .filter(|(a, _)| *a == source)
        .map(|&(_, b)| graph.nodes[b as usize].version.clone())
        .collect();
    to.sort();
    to
}

#[test]
fn a_machine_several_releases_behind_passes_through_the_barrier_first() {
    let dir = tempfile::tempdir().unwrap();
    let done = serde_json::json!({"start_epoch": T0 - 86_400, "start_percentage": 1.0});
    // Releases 1..5; 3 is a barrier (without a rollout of its own), 2, 4 and 5 rolled out.
    let graph = graph_service(
        dir.path(),
        5,
        serde_json::json!([
            {"version": "2", "metadata": {"rollout": done}},
            {"version": "3", "metadata": {"barrier": {"reason": "https://example.com/barrier-3"}}},
            {"version": "4", "metadata": {"rollout": done}},
            {"version": "5", "metadata": {"rollout": done}},
        ]),
        T0,
    );
    let url = format!("http://{}", graph.addr);
    assert_eq!(offered(&url, 1), ["2", "3"], "no edge jumps the barrier");
    assert_eq!(offered(&url, 3), ["4", "5"]);
    for (booted, path) in [
        (1, &["stage 3", "reboot 3", "stage 5", "reboot 5"][..]),
        (2, &["stage 3", "reboot 3", "stage 5", "reboot 5"][..]),
        (4, &["stage 5", "reboot 5"][..]),
    ] {
        let mut machine = Machine::new(booted, booted, 0.5, &url, None);
        drive_alone(&mut machine, &graph.service, T0, T0 + 6 * 3600);
        assert_eq!(machine.actions(), path, "from {booted}");
        assert_eq!(machine.sysroot.booted, release(5), "from {booted}");
        assert_eq!(machine.agent.state(), &State::Steady);
        if booted < 3 {
            assert_eq!(
                machine.said(&format!("rebooting from {booted} into 3 ")),
                1,
                "{:?}",
                machine.events
            );
            assert_eq!(machine.said("rebooting from 3 into 5 "), 1);
            assert_eq!(machine.boots, 2);
        }
    }
}

#[test]
fn a_machine_booted_on_a_dead_end_says_so_and_one_behind_it_steps_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let done = serde_json::json!({"start_epoch": T0 - 86_400, "start_percentage": 1.0});
    let reason = "https://github.com/coreos/fedora-coreos-tracker/issues/1";
    let graph = graph_service(
        dir.path(),
        3,
        serde_json::json!([
            {"version": "2", "metadata": {"rollout": done, "deadend": {"reason": reason}}},
            {"version": "3", "metadata": {"rollout": done}},
        ]),
        T0,
    );
    let url = format!("http://{}", graph.addr);
    assert_eq!(offered(&url, 2), Vec::<String>::new(), "no edge leaves it");

    let mut stuck = Machine::new(2, 2, 0.5, &url, None);
    drive_alone(&mut stuck, &graph.service, T0, T0 + 3 * 3600);
    let status = stuck.agent.status();
    assert_eq!(status.dead_end.as_deref(), Some(reason));
    assert!(stuck.actions().is_empty(), "{:?}", stuck.actions());
    assert!(
        stuck.events.iter().any(|(_, e)| e.level == Level::Warn
            && e.message
                == format!("the booted release 2 is a dead end: no update leaves it ({reason})")),
        "{:?}",
        stuck.events
    );
    assert_eq!(stuck.said("dead end"), 1, "said once over 3 hours of polls");

    let mut behind = Machine::new(1, 1, 0.5, &url, None);
    behind.step(T0);
    behind.step(T0);
    assert_eq!(
        behind.agent.status().skipped,
        [(release(2), "it is a dead end".to_string())]
    );
    drive_alone(&mut behind, &graph.service, T0, T0 + 3600);
    assert_eq!(behind.actions(), ["stage 3", "reboot 3"]);
    assert_eq!(behind.sysroot.booted, release(3));
    assert_eq!(behind.agent.status().dead_end, None);
}

#[test]
fn the_graph_client_sees_what_the_service_clock_says() {
    // The simulation's premise: moving the service's clock moves what an agent is offered.
    let dir = tempfile::tempdir().unwrap();
    let graph = graph_service(
        dir.path(),
        2,
        serde_json::json!([{"version": "2", "metadata": {"rollout": {
            "start_epoch": T0, "start_percentage": 0.0, "duration_minutes": 60,
        }}}]),
        T0 - 1,
    );
    let url = format!("http://{}", graph.addr);
    let mut client = HttpGraph::new(&url, &Machine::query("0", 0.5, &release(1)), TIMEOUT).unwrap();
    assert_eq!(client.graph().unwrap().edges, []);
    graph.service.set_now(Some(T0 + 29 * 60));
    assert_eq!(client.graph().unwrap().edges, []);
    graph.service.set_now(Some(T0 + 30 * 60));
    assert_eq!(client.graph().unwrap().edges, [(0, 1)]);
}
