//! The agent's work as a state machine without IO: every effect goes through a trait (the graph
//! client, the lock client, the sysroot) and time comes in as a parameter, so each transition
//! is a plain unit test and a fleet can be simulated with a fake clock.
//!
//! ```text
//!  Starting ──(steady-state reported, booted release read)──▶ Steady
//!  Steady ──(poll: an update is offered)──▶ Staged        (staged with locked finalization)
//!  Staged ──(poll: a newer one is offered)──▶ Staged      (the waiting update is replaced)
//!  Staged ──(poll: it is no longer offered)──▶ Steady    (unstaged, never rebooted into)
//!  Staged ──(the strategy permits: now / window open / slot granted)──▶ Rebooting
//!  Rebooting ──(the machine reboots: a new process starts)──▶ Starting
//!  Rebooting ──(still running after the reboot command)──▶ Rebooting (retried, reported)
//! ```
//!
//! [`Agent::step`] does what is due at `now` and says when to call it again. The driver (the
//! daemon, or a simulation) sleeps until then, or until an operator's command.

use std::collections::BTreeMap;

use cairn_graph::Graph;
use serde::Serialize;

use crate::select::{choose, Constraints, Release};
use crate::window::Windows;

/// Asks the update graph service for the graph this machine may follow.
pub trait GraphClient {
    fn graph(&mut self) -> Result<Graph, String>;
}

/// A FleetLock client for this machine's id and group.
pub trait LockClient {
    /// `Ok(None)` when a slot is granted; `Ok(Some(why))` when every slot is taken.
    fn pre_reboot(&mut self) -> Result<Option<String>, String>;
    fn steady_state(&mut self) -> Result<(), String>;
}

/// The machine's deployments.
pub trait Sysroot {
    fn booted(&mut self) -> Result<Release, String>;
    /// The staged deployment waiting for the next boot, if any.
    fn staged(&mut self) -> Result<Option<Release>, String>;
    /// Releases whose health check failed on this machine (checksum → reason).
    fn bad_releases(&mut self) -> Result<BTreeMap<String, String>, String>;
    /// Pulls and stages `release`, with its finalization locked until permitted.
    fn stage(&mut self, release: &Release) -> Result<(), String>;
    /// Removes the staged deployment (to stage a newer one instead).
    fn unstage(&mut self) -> Result<(), String>;
    /// Unlocks the staged deployment's finalization and runs the reboot command.
    fn finalize_and_reboot(&mut self, release: &Release) -> Result<(), String>;
}

/// When a staged update may reboot the machine (`updates.strategy`).
pub enum Strategy {
    /// As soon as it is staged.
    Immediate,
    /// Only inside a maintenance window.
    Periodic(Windows),
    /// Only with a reboot slot from the FleetLock service.
    FleetLock,
}

impl Strategy {
    fn name(&self) -> &'static str {
        match self {
            Strategy::Immediate => "immediate",
            Strategy::Periodic(_) => "periodic",
            Strategy::FleetLock => "fleet_lock",
        }
    }
}

pub struct Settings {
    /// `updates.enabled`.
    pub enabled: bool,
    pub strategy: Strategy,
    /// Seconds between polls of the graph (`agent.timing.steady_interval_secs`).
    pub steady_interval: u64,
    /// `updates.max_version` and `updates.allow_downgrade`; the bad releases come from the
    /// sysroot at each poll.
    pub constraints: Constraints,
    /// Seeds the poll jitter, so that a fleet does not poll in step.
    pub jitter_seed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    Starting,
    Steady,
    /// Staged, waiting for the strategy's permission.
    Staged {
        release: Release,
    },
    /// The reboot command ran; a new process on the new release is expected.
    Rebooting {
        release: Release,
        attempts: u32,
    },
}

/// A log line the driver writes (and a simulation checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub level: Level,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What the agent shows (`cairn agent status`), written by the driver after every step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub state: State,
    pub strategy: &'static str,
    pub enabled: bool,
    pub paused: bool,
    pub booted: Option<Release>,
    /// Why the agent is waiting, in plain words.
    pub waiting: Option<String>,
    /// The booted release is a dead end: the reason.
    pub dead_end: Option<String>,
    /// Releases offered but passed over, with why (a failed health check, a cap, …).
    pub skipped: Vec<(Release, String)>,
    pub last_check: Option<i64>,
    pub next_wake: Option<i64>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
}

/// The longest pause between attempts after failures.
const MAX_BACKOFF: u64 = 3600;
/// How long to wait for the reboot to happen before running the command again.
const REBOOT_GRACE: u64 = 600;

pub struct Agent {
    settings: Settings,
    state: State,
    paused: bool,
    update_now: bool,
    booted: Option<Release>,
    dead_end: Option<String>,
    skipped: Vec<(Release, String)>,
    waiting: Option<String>,
    last_check: Option<i64>,
    next_poll: i64,
    next_wake: Option<i64>,
    last_error: Option<String>,
    failures: u32,
    rng: u64,
}

/// The ports a step may use.
pub struct Ports<'a> {
    pub graph: &'a mut dyn GraphClient,
    pub lock: &'a mut dyn LockClient,
    pub sysroot: &'a mut dyn Sysroot,
}

impl Agent {
    pub fn new(settings: Settings) -> Agent {
        let rng = settings.jitter_seed | 1;
        Agent {
            settings,
            state: State::Starting,
            paused: false,
            update_now: false,
            booted: None,
            dead_end: None,
            skipped: Vec::new(),
            waiting: None,
            last_check: None,
            next_poll: i64::MIN,
            next_wake: None,
            last_error: None,
            failures: 0,
            rng,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Stop checking for and applying updates until [`Agent::resume`] (tracker #947).
    pub fn pause(&mut self) {
        self.paused = true;
        self.update_now = false;
    }

    pub fn resume(&mut self) {
        self.paused = false;
        self.next_poll = i64::MIN;
    }

    /// An operator's request: check now and, if an update is offered, reboot into it without
    /// waiting for a maintenance window. A reboot slot is still taken under `fleet_lock`: the
    /// fleet's limit is not one machine's to break.
    pub fn update_now(&mut self) {
        self.update_now = true;
        self.next_poll = i64::MIN;
    }

    pub fn status(&self) -> Status {
        Status {
            state: self.state.clone(),
            strategy: self.settings.strategy.name(),
            enabled: self.settings.enabled,
            paused: self.paused,
            booted: self.booted.clone(),
            waiting: self.waiting.clone(),
            dead_end: self.dead_end.clone(),
            skipped: self.skipped.clone(),
            last_check: self.last_check,
            next_wake: self.next_wake,
            last_error: self.last_error.clone(),
            consecutive_failures: self.failures,
        }
    }

    /// Does what is due at `now`; returns the log lines and when to call again.
    pub fn step(&mut self, now: i64, ports: &mut Ports<'_>) -> (Vec<Event>, i64) {
        let mut events = Vec::new();
        let wake = match self.run(now, ports, &mut events) {
            Ok(wake) => {
                self.failures = 0;
                self.last_error = None;
                wake
            }
            Err(error) => {
                self.failures += 1;
                let backoff = self.backoff();
                events.push(Event {
                    level: Level::Warn,
                    message: format!("{error}; trying again in {backoff} s"),
                });
                self.last_error = Some(error);
                now + backoff as i64
            }
        };
        self.next_wake = Some(wake);
        (events, wake)
    }

    /// 30 s doubling per consecutive failure, at most an hour (never faster than a poll).
    fn backoff(&self) -> u64 {
        let exponent = self.failures.saturating_sub(1).min(16);
        (30u64 << exponent).min(MAX_BACKOFF)
    }

    fn next_poll_after(&mut self, now: i64) -> i64 {
        // xorshift: up to a tenth of the interval of jitter.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let interval = self.settings.steady_interval.max(1);
        let jitter = self.rng % (interval / 10 + 1);
        now + (interval + jitter) as i64
    }

    fn run(
        &mut self,
        now: i64,
        ports: &mut Ports<'_>,
        events: &mut Vec<Event>,
    ) -> Result<i64, String> {
        match self.state.clone() {
            State::Starting => self.start(now, ports, events),
            State::Steady | State::Staged { .. } => self.poll(now, ports, events),
            State::Rebooting { release, attempts } => {
                // Still running: the reboot did not happen. Try again, and say so.
                events.push(Event {
                    level: Level::Error,
                    message: format!(
                        "still running {REBOOT_GRACE} s after the reboot into {} (attempt {attempts}); rebooting again",
                        release.version
                    ),
                });
                self.reboot(
                    now,
                    &release,
                    attempts + 1,
                    "the previous reboot did not happen",
                    ports,
                    events,
                )
            }
        }
    }

    fn start(
        &mut self,
        now: i64,
        ports: &mut Ports<'_>,
        events: &mut Vec<Event>,
    ) -> Result<i64, String> {
        let booted = ports
            .sysroot
            .booted()
            .map_err(|e| format!("read the booted release: {e}"))?;
        if matches!(self.settings.strategy, Strategy::FleetLock) {
            // Give back a slot held across the reboot that brought us here.
            ports
                .lock
                .steady_state()
                .map_err(|e| format!("report steady state to the lock service: {e}"))?;
            events.push(info(format!(
                "booted {}; reported steady state to the lock service",
                booted.version
            )));
        } else {
            events.push(info(format!("booted {}", booted.version)));
        }
        self.booted = Some(booted);
        self.state = match ports
            .sysroot
            .staged()
            .map_err(|e| format!("read the staged deployment: {e}"))?
        {
            Some(release) => {
                events.push(info(format!(
                    "{} is staged from before; waiting for permission to reboot",
                    release.version
                )));
                State::Staged { release }
            }
            None => State::Steady,
        };
        Ok(now)
    }

    fn poll(
        &mut self,
        now: i64,
        ports: &mut Ports<'_>,
        events: &mut Vec<Event>,
    ) -> Result<i64, String> {
        if !self.settings.enabled {
            self.waiting = Some("updates are disabled (updates.enabled = false)".into());
            return Ok(self.next_poll_after(now));
        }
        if self.paused {
            self.waiting = Some("paused by an operator (cairn agent resume)".into());
            return Ok(self.next_poll_after(now));
        }
        if now >= self.next_poll {
            self.check(now, ports, events)?;
            self.next_poll = self.next_poll_after(now);
        }
        let State::Staged { release } = self.state.clone() else {
            // An operator's update-now is for an update offered now, not for one days later
            // that would then skip its maintenance window.
            if self.update_now {
                events.push(info(
                    "update-now: no update is offered; nothing to do".into(),
                ));
                self.update_now = false;
            }
            self.waiting = Some("no update offered".into());
            return Ok(self.next_poll);
        };
        self.permit(now, &release, ports, events)
    }

    /// Asks the graph, and stages (or replaces the staged update with) the best offer.
    fn check(
        &mut self,
        now: i64,
        ports: &mut Ports<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), String> {
        let graph = ports
            .graph
            .graph()
            .map_err(|e| format!("ask the update graph: {e}"))?;
        let booted = match &self.booted {
            Some(booted) => booted.clone(),
            None => ports.sysroot.booted()?,
        };
        let mut constraints = self.settings.constraints.clone();
        constraints.bad = ports
            .sysroot
            .bad_releases()
            .map_err(|e| format!("read the bad releases: {e}"))?;
        let choice = choose(&graph, &booted, &constraints);
        self.last_check = Some(now);
        if choice.booted_dead_end.is_some() && self.dead_end.is_none() {
            events.push(Event {
                level: Level::Warn,
                message: format!(
                    "the booted release {} is a dead end: no update leaves it ({})",
                    booted.version,
                    choice.booted_dead_end.as_deref().unwrap_or("generic")
                ),
            });
        }
        self.dead_end = choice.booted_dead_end.clone();
        if choice.booted_unknown {
            events.push(Event {
                level: Level::Warn,
                message: format!(
                    "the booted release {} ({}) is not in the update graph",
                    booted.version, booted.checksum
                ),
            });
        }
        self.skipped = choice.skipped.clone();
        let Some(target) = choice.target else {
            // A staged update the graph no longer offers (now a dead end, recorded bad, past
            // the cap, its edge removed) must not be rebooted into: withdraw it.
            if let (State::Staged { release }, false) = (&self.state, choice.booted_unknown) {
                let withdrawn = release.clone();
                let why = choice
                    .skipped
                    .iter()
                    .find(|(skipped, _)| *skipped == withdrawn)
                    .map_or(
                        "the update graph no longer offers it".to_string(),
                        |(_, why)| why.clone(),
                    );
                ports
                    .sysroot
                    .unstage()
                    .map_err(|e| format!("remove the staged {}: {e}", withdrawn.version))?;
                self.state = State::Steady;
                events.push(Event {
                    level: Level::Warn,
                    message: format!("withdrew the staged {}: {why}", withdrawn.version),
                });
            }
            return Ok(());
        };
        match &self.state {
            State::Staged { release } if *release == target => {}
            State::Staged { release } => {
                let older = release.clone();
                ports
                    .sysroot
                    .unstage()
                    .map_err(|e| format!("remove the staged {}: {e}", older.version))?;
                self.state = State::Steady;
                ports
                    .sysroot
                    .stage(&target)
                    .map_err(|e| format!("stage {}: {e}", target.version))?;
                events.push(info(format!(
                    "{} replaces the staged {} while it waited for permission",
                    target.version, older.version
                )));
                self.state = State::Staged { release: target };
            }
            _ => {
                ports
                    .sysroot
                    .stage(&target)
                    .map_err(|e| format!("stage {}: {e}", target.version))?;
                events.push(info(format!(
                    "staged {} (from {}); waiting for permission to reboot ({})",
                    target.version,
                    booted.version,
                    self.settings.strategy.name()
                )));
                self.state = State::Staged { release: target };
            }
        }
        Ok(())
    }

    /// Reboots into `release` if the strategy permits now; else says when to look again.
    fn permit(
        &mut self,
        now: i64,
        release: &Release,
        ports: &mut Ports<'_>,
        events: &mut Vec<Event>,
    ) -> Result<i64, String> {
        let reason = match &self.settings.strategy {
            Strategy::Immediate => "strategy immediate".to_string(),
            Strategy::Periodic(windows) => {
                if windows.contains(now) {
                    "inside a maintenance window".to_string()
                } else if self.update_now {
                    "an operator asked for it (cairn agent update-now)".to_string()
                } else {
                    let opens = windows.next_opening(now);
                    self.waiting = Some(match opens {
                        Some(at) => format!(
                            "{} is staged; waiting for the maintenance window at {}",
                            release.version,
                            cairn_time::format_minutes(at)
                        ),
                        None => format!(
                            "{} is staged; no maintenance window is configured",
                            release.version
                        ),
                    });
                    return Ok(opens.map_or(self.next_poll, |at| at.min(self.next_poll)));
                }
            }
            Strategy::FleetLock => match ports
                .lock
                .pre_reboot()
                .map_err(|e| format!("ask the lock service for a reboot slot: {e}"))?
            {
                None => "the lock service granted a reboot slot".to_string(),
                Some(full) => {
                    self.waiting = Some(format!(
                        "{} is staged; waiting for a reboot slot ({full})",
                        release.version
                    ));
                    // Ask again sooner than the next poll: slots come back within minutes.
                    let retry = now + (self.settings.steady_interval / 5).clamp(10, 300) as i64;
                    return Ok(retry.min(self.next_poll));
                }
            },
        };
        self.reboot(now, release, 1, &reason, ports, events)
    }

    fn reboot(
        &mut self,
        now: i64,
        release: &Release,
        attempts: u32,
        reason: &str,
        ports: &mut Ports<'_>,
        events: &mut Vec<Event>,
    ) -> Result<i64, String> {
        let from = self
            .booted
            .as_ref()
            .map_or("the booted release".to_string(), |b| b.version.clone());
        events.push(Event {
            level: Level::Warn,
            message: format!(
                "rebooting from {from} into {} ({}): {reason}",
                release.version, release.checksum
            ),
        });
        // On failure the update stays staged: the next attempt asks for permission again (a
        // FleetLock slot is re-entrant, so a slot already granted is kept).
        ports
            .sysroot
            .finalize_and_reboot(release)
            .map_err(|e| format!("reboot into {}: {e}", release.version))?;
        self.update_now = false;
        self.waiting = Some(format!("rebooting into {}", release.version));
        self.state = State::Rebooting {
            release: release.clone(),
            attempts,
        };
        Ok(now + REBOOT_GRACE as i64)
    }
}

fn info(message: String) -> Event {
    Event {
        level: Level::Info,
        message,
    }
}
