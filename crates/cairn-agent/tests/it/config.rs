//! The agent's configuration: Zincati's own files load unchanged, fragments mask and merge
//! as Zincati's (liboverdrop) do, defaults are Zincati's, and every error names the file and
//! the key.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cairn_agent::config::{self, AgentConfig, ConfigError, InvalidSetting, Strategy, DEFAULT_DIRS};

const ZINCATI_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/zincati");

/// Which of the three directories, in priority order.
#[derive(Clone, Copy)]
enum Dir {
    UsrLib = 0,
    Run = 1,
    Etc = 2,
}

/// `/usr/lib`, `/run` and `/etc` fragment directories under a temporary root.
struct Tree {
    _root: tempfile::TempDir,
    dirs: Vec<PathBuf>,
}

impl Tree {
    fn new() -> Tree {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = DEFAULT_DIRS
            .iter()
            .map(|dir| root.path().join(dir.trim_start_matches('/')))
            .collect();
        for dir in &dirs {
            fs::create_dir_all(dir).unwrap();
        }
        Tree { _root: root, dirs }
    }

    /// A tree whose `/usr/lib` holds what every test needs: a graph server.
    fn with_base() -> Tree {
        let tree = Tree::new();
        tree.write(
            Dir::UsrLib,
            "05-base.toml",
            "[cincinnati]\nbase_url = \"https://updates.example.com\"\n",
        );
        tree
    }

    fn path(&self, dir: Dir, name: &str) -> PathBuf {
        self.dirs[dir as usize].join(name)
    }

    fn write(&self, dir: Dir, name: &str, text: &str) -> PathBuf {
        let path = self.path(dir, name);
        fs::write(&path, text).unwrap();
        path
    }

    fn copy(&self, dir: Dir, from: &Path) -> PathBuf {
        let path = self.path(dir, from.file_name().unwrap().to_str().unwrap());
        fs::copy(from, &path).unwrap();
        path
    }

    fn load(&self) -> Result<AgentConfig, ConfigError> {
        config::load(&self.dirs)
    }

    /// The error, which must be an invalid setting.
    fn invalid(&self) -> InvalidSetting {
        match self.load() {
            Err(ConfigError::Invalid(invalid)) => invalid,
            other => panic!("expected an invalid setting, got {other:?}"),
        }
    }
}

fn zincati(name: &str) -> PathBuf {
    Path::new(ZINCATI_DATA).join(name)
}

fn total_minutes(strategy: &Strategy) -> u64 {
    match strategy {
        Strategy::Periodic { windows, .. } => windows
            .iter()
            .map(|window| window.length_minutes * window.days.len() as u64)
            .sum(),
        other => panic!("expected periodic, got {other:?}"),
    }
}

#[test]
fn zincati_config_sample_loads_unchanged() {
    let tree = Tree::new();
    let sample = tree.copy(Dir::Etc, &zincati("00-config-sample.toml"));
    let config = tree.load().unwrap();

    assert_eq!(config.agent.steady_interval_secs.get(), 35);
    assert_eq!(
        config.cincinnati.base_url,
        "http://cincinnati.example.com:80/"
    );
    assert_eq!(config.identity.group, "workers");
    assert_eq!(
        config.identity.node_uuid.as_deref(),
        Some("27e3ac02af3946af995c9940e18b0cce")
    );
    assert_eq!(config.identity.rollout_wariness, Some(0.5));
    assert!(config.updates.allow_downgrade);
    assert!(!config.updates.enabled);
    assert_eq!(
        config.updates.strategy,
        Strategy::FleetLock {
            base_url: "http://fleet-lock.example.com:8080/".into()
        }
    );
    assert_eq!(config.fragments, [sample]);
}

#[test]
fn zincati_periodic_sample_loads_unchanged() {
    let tree = Tree::with_base();
    tree.write(
        Dir::UsrLib,
        "10-strategy.toml",
        "[updates]\nstrategy = \"periodic\"\n",
    );
    tree.copy(Dir::Etc, &zincati("20-periodic-sample.toml"));
    let config = tree.load().unwrap();

    let Strategy::Periodic { time_zone, windows } = &config.updates.strategy else {
        panic!("expected periodic, got {:?}", config.updates.strategy);
    };
    assert_eq!(time_zone, "UTC");
    let summary: Vec<(Vec<&str>, &str, u64)> = windows
        .iter()
        .map(|window| {
            let days = window.days.iter().map(String::as_str).collect();
            (days, window.start_time.as_str(), window.length_minutes)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (vec!["Tue", "Wed"], "23:00", 120),
            (vec!["Thu"], "23:30", 25),
            (vec!["Sun"], "00:00", 2880),
        ]
    );
    // Zincati's test_periodic_config: the schedule of this sample is 3145 minutes long.
    assert_eq!(total_minutes(&config.updates.strategy), 3145);
}

#[test]
fn zincati_dist_fragments_load_and_give_the_defaults() {
    let tree = Tree::new();
    for entry in fs::read_dir(zincati("dist")).unwrap() {
        tree.copy(Dir::UsrLib, &entry.unwrap().path());
    }
    let config = tree.load().unwrap();
    assert_eq!(config.fragments.len(), 5);
    assert_eq!(
        config.cincinnati.base_url,
        "https://updates.coreos.fedoraproject.org"
    );

    // The same values as with no fragment but the graph server: the code's defaults are
    // the ones Zincati's distribution files spell out.
    let mut bare = Tree::with_base().load().unwrap();
    bare.cincinnati = config.cincinnati.clone();
    bare.fragments = config.fragments.clone();
    assert_eq!(bare, config);
}

#[test]
fn defaults_equal_zincatis() {
    let config = Tree::with_base().load().unwrap();
    assert_eq!(config.agent.steady_interval_secs.get(), 300);
    assert_eq!(config.identity.group, "default");
    assert_eq!(config.identity.node_uuid, None);
    assert_eq!(config.identity.rollout_wariness, None);
    assert!(config.updates.enabled);
    assert!(!config.updates.allow_downgrade);
    assert_eq!(config.updates.strategy, Strategy::Immediate);

    // cairn's own keys.
    assert_eq!(config.agent.reboot_command, ["systemctl", "reboot"]);
    assert_eq!(config.agent.metrics_listen, None);
    assert_eq!(config.agent.state_dir, Path::new("/var/lib/cairn/agent"));
    assert_eq!(config.agent.stream, None);
    assert_eq!(config.updates.max_version, None);
}

#[test]
fn periodic_time_zone_defaults_to_utc_and_can_be_set() {
    let tree = Tree::with_base();
    tree.write(
        Dir::Etc,
        "50-periodic.toml",
        r#"
[updates]
strategy = "periodic"

[[updates.periodic.window]]
days = ["Sat"]
start_time = "01:00"
length_minutes = 60
"#,
    );
    let Strategy::Periodic { time_zone, .. } = tree.load().unwrap().updates.strategy else {
        panic!("expected periodic");
    };
    assert_eq!(time_zone, "UTC");

    tree.write(
        Dir::Etc,
        "60-zone.toml",
        "[updates.periodic]\ntime_zone = \"America/Panama\"\n",
    );
    let Strategy::Periodic { time_zone, .. } = tree.load().unwrap().updates.strategy else {
        panic!("expected periodic");
    };
    assert_eq!(time_zone, "America/Panama");
}

#[test]
fn cairn_keys_are_read() {
    let tree = Tree::with_base();
    tree.write(
        Dir::Etc,
        "50-cairn.toml",
        r#"
[agent]
reboot_command = ["/usr/bin/cairn", "admin", "reboot"]
state_dir = "/var/lib/cairn/agent-2"
stream = "testing-devel"

[agent.metrics]
listen = "[::1]:9100"

[updates]
max_version = "41.20250101.3.0"
"#,
    );
    let config = tree.load().unwrap();
    assert_eq!(
        config.agent.reboot_command,
        ["/usr/bin/cairn", "admin", "reboot"]
    );
    assert_eq!(config.agent.state_dir, Path::new("/var/lib/cairn/agent-2"));
    assert_eq!(config.agent.stream.as_deref(), Some("testing-devel"));
    assert_eq!(
        config.agent.metrics_listen,
        Some("[::1]:9100".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(
        config.updates.max_version.as_deref(),
        Some("41.20250101.3.0")
    );
}

#[test]
fn a_name_in_a_later_dir_masks_the_earlier_file() {
    let tree = Tree::with_base();
    tree.write(
        Dir::UsrLib,
        "50-x.toml",
        "[identity]\ngroup = \"from-usr\"\n[agent.timing]\nsteady_interval_secs = 7\n",
    );
    tree.write(Dir::Run, "50-x.toml", "[identity]\ngroup = \"from-run\"\n");
    let etc = tree.write(
        Dir::Etc,
        "50-x.toml",
        "[agent.timing]\nsteady_interval_secs = 9\n",
    );
    let config = tree.load().unwrap();
    // Only /etc's 50-x.toml is read: neither group survives.
    assert_eq!(config.identity.group, "default");
    assert_eq!(config.agent.steady_interval_secs.get(), 9);
    assert_eq!(
        config.fragments,
        [tree.path(Dir::UsrLib, "05-base.toml"), etc]
    );
}

#[test]
fn a_symlink_to_dev_null_masks_without_replacing() {
    let tree = Tree::with_base();
    tree.write(Dir::UsrLib, "50-x.toml", "[identity]\ngroup = \"usr\"\n");
    std::os::unix::fs::symlink("/dev/null", tree.path(Dir::Etc, "50-x.toml")).unwrap();
    let config = tree.load().unwrap();
    assert_eq!(config.identity.group, "default");
    assert_eq!(config.fragments, [tree.path(Dir::UsrLib, "05-base.toml")]);

    // A later directory can bring the name back.
    let tree = Tree::with_base();
    std::os::unix::fs::symlink("/dev/null", tree.path(Dir::UsrLib, "50-x.toml")).unwrap();
    tree.write(Dir::Run, "50-x.toml", "[identity]\ngroup = \"run\"\n");
    assert_eq!(tree.load().unwrap().identity.group, "run");
}

#[test]
fn files_merge_in_name_order_whatever_their_dir() {
    let tree = Tree::with_base();
    let etc = tree.write(Dir::Etc, "10-etc.toml", "[identity]\ngroup = \"etc\"\n");
    let run = tree.write(Dir::Run, "20-run.toml", "[identity]\ngroup = \"run\"\n");
    let usr = tree.write(Dir::UsrLib, "90-usr.toml", "[identity]\ngroup = \"usr\"\n");
    let config = tree.load().unwrap();
    assert_eq!(config.identity.group, "usr");
    assert_eq!(
        config.fragments,
        [tree.path(Dir::UsrLib, "05-base.toml"), etc, run, usr]
    );
}

#[test]
fn later_values_win_key_by_key() {
    let tree = Tree::with_base();
    tree.write(
        Dir::UsrLib,
        "10-a.toml",
        r#"
[identity]
group = "a"
rollout_wariness = 0.25
[updates]
enabled = false
strategy = "fleet_lock"
[updates.fleet_lock]
base_url = "https://lock.example.com/"
"#,
    );
    tree.write(
        Dir::Etc,
        "20-b.toml",
        r#"
[identity]
rollout_wariness = 0.75
[updates]
allow_downgrade = true
[updates.fleet_lock]
base_url = "https://other-lock.example.com/${group}/"
"#,
    );
    let config = tree.load().unwrap();
    assert_eq!(config.identity.group, "a");
    assert_eq!(config.identity.rollout_wariness, Some(0.75));
    assert!(!config.updates.enabled);
    assert!(config.updates.allow_downgrade);
    assert_eq!(
        config.updates.strategy,
        Strategy::FleetLock {
            base_url: "https://other-lock.example.com/${group}/".into()
        }
    );
}

#[test]
fn windows_are_appended_across_fragments() {
    let tree = Tree::with_base();
    tree.write(
        Dir::UsrLib,
        "10-a.toml",
        r#"
[updates]
strategy = "periodic"
[[updates.periodic.window]]
days = ["Mon"]
start_time = "01:00"
length_minutes = 10
"#,
    );
    tree.write(
        Dir::Etc,
        "20-b.toml",
        r#"
[updates.periodic]
time_zone = "Europe/Rome"
[[updates.periodic.window]]
days = ["Tue"]
start_time = "02:00"
length_minutes = 20
[[updates.periodic.window]]
days = ["Wed", "thursday"]
start_time = "3:05"
length_minutes = 30
"#,
    );
    // A fragment without windows, or with an empty list, removes none.
    tree.write(
        Dir::Etc,
        "30-c.toml",
        "[updates.periodic]\ntime_zone = \"localtime\"\n",
    );
    let config = tree.load().unwrap();
    let Strategy::Periodic { time_zone, windows } = &config.updates.strategy else {
        panic!("expected periodic");
    };
    assert_eq!(time_zone, "localtime");
    let starts: Vec<&str> = windows.iter().map(|w| w.start_time.as_str()).collect();
    assert_eq!(starts, ["01:00", "02:00", "3:05"]);
    assert_eq!(windows[2].days, ["Wed", "thursday"]);
}

#[test]
fn an_empty_string_resets_group_node_uuid_and_strategy() {
    let tree = Tree::with_base();
    tree.write(
        Dir::UsrLib,
        "10-a.toml",
        r#"
[identity]
group = "workers"
node_uuid = "27e3ac02af3946af995c9940e18b0cce"
[updates]
strategy = "not-even-valid"
"#,
    );
    tree.write(
        Dir::Etc,
        "20-b.toml",
        "[identity]\ngroup = \"\"\nnode_uuid = \"\"\n[updates]\nstrategy = \"\"\n",
    );
    let config = tree.load().unwrap();
    assert_eq!(config.identity.group, "default");
    assert_eq!(config.identity.node_uuid, None);
    assert_eq!(config.updates.strategy, Strategy::Immediate);
}

#[test]
fn only_the_selected_strategy_and_final_values_are_checked() {
    // As Zincati: a bad value overridden later, or settings of a strategy not in use, pass.
    let tree = Tree::with_base();
    tree.write(
        Dir::UsrLib,
        "10-a.toml",
        r#"
[updates]
strategy = "weekly"
[updates.fleet_lock]
base_url = "not a url"
[[updates.periodic.window]]
days = ["Funday"]
start_time = "99:99"
length_minutes = 0
"#,
    );
    tree.write(
        Dir::Etc,
        "20-b.toml",
        "[updates]\nstrategy = \"immediate\"\n",
    );
    assert_eq!(tree.load().unwrap().updates.strategy, Strategy::Immediate);
}

#[test]
fn node_uuid_is_normalised_from_any_uuid_form() {
    for form in [
        "27E3AC02AF3946AF995C9940E18B0CCE",
        "27e3ac02-af39-46af-995c-9940e18b0cce",
        "{27e3ac02-af39-46af-995c-9940e18b0cce}",
        "urn:uuid:27e3ac02-af39-46af-995c-9940e18b0cce",
    ] {
        let tree = Tree::with_base();
        tree.write(
            Dir::Etc,
            "50-id.toml",
            &format!("[identity]\nnode_uuid = \"{form}\"\n"),
        );
        assert_eq!(
            tree.load().unwrap().identity.node_uuid.as_deref(),
            Some("27e3ac02af3946af995c9940e18b0cce"),
            "{form}"
        );
    }
}

#[test]
fn integers_are_accepted_as_wariness() {
    let tree = Tree::with_base();
    tree.write(Dir::Etc, "50-w.toml", "[identity]\nrollout_wariness = 1\n");
    assert_eq!(tree.load().unwrap().identity.rollout_wariness, Some(1.0));
}

#[test]
fn only_regular_toml_files_that_are_not_hidden_are_read() {
    let tree = Tree::with_base();
    let bad = "this is not toml";
    tree.write(Dir::Etc, ".hidden.toml", bad);
    tree.write(Dir::Etc, "50-x.conf", bad);
    tree.write(Dir::Etc, "noextension", bad);
    tree.write(Dir::Etc, "50-x.TOML", bad);
    fs::create_dir(tree.path(Dir::Etc, "60-dir.toml")).unwrap();
    // liboverdrop skips symlinks other than to /dev/null, even to a good file.
    let target = tree.write(Dir::Run, "target.txt", "[identity]\ngroup = \"linked\"\n");
    std::os::unix::fs::symlink(&target, tree.path(Dir::Etc, "70-link.toml")).unwrap();
    std::os::unix::fs::symlink("/nonexistent", tree.path(Dir::Etc, "80-dangling.toml")).unwrap();
    let config = tree.load().unwrap();
    assert_eq!(config.identity.group, "default");
    assert_eq!(config.fragments, [tree.path(Dir::UsrLib, "05-base.toml")]);
}

#[test]
fn missing_dirs_are_skipped() {
    let tree = Tree::with_base();
    let mut dirs = vec![PathBuf::from("/nonexistent/cairn/agent.d")];
    dirs.extend(tree.dirs.iter().cloned());
    assert!(config::load(&dirs).is_ok());
}

#[test]
fn a_fragment_that_is_not_utf8_is_a_read_error() {
    let tree = Tree::with_base();
    let path = tree.path(Dir::Etc, "50-x.toml");
    fs::write(&path, b"[identity]\ngroup = \"\xff\"\n").unwrap();
    match tree.load() {
        Err(ConfigError::Read { path: at, .. }) => assert_eq!(at, path),
        other => panic!("expected a read error, got {other:?}"),
    }
}

/// A fragment, the key, the 1-based line and column, and part of the message.
type ErrorCase = (
    &'static str,
    &'static str,
    Option<(usize, usize)>,
    &'static str,
);

/// Each case: a fragment in /etc (beside the base in /usr/lib), the key, the position, and
/// what the message says.
#[test]
fn every_error_names_the_file_and_the_key() {
    let cases: &[ErrorCase] = &[
        // Unknown keys, at every level.
        ("[updatess]\n", "updatess", Some((1, 2)), "unknown key `updatess`"),
        (
            "[updates]\nstrateggy = \"periodic\"\n",
            "updates.strateggy",
            Some((2, 1)),
            "unknown key `strateggy`, expected one of",
        ),
        (
            "[agent.timing]\nsteady_interval = 5\n",
            "agent.timing.steady_interval",
            Some((2, 1)),
            "unknown key `steady_interval`",
        ),
        (
            "[[updates.periodic.window]]\ndays = [\"Mon\"]\nstart_time = \"01:00\"\nlength_minutes = 5\nlength = 5\n",
            "updates.periodic.window[0].length",
            Some((5, 1)),
            "unknown key `length`",
        ),
        // Wrong types.
        (
            "[updates]\nenabled = \"yes\"\n",
            "updates.enabled",
            Some((2, 11)),
            "invalid type: string \"yes\", expected a boolean",
        ),
        (
            "[agent.timing]\nsteady_interval_secs = -1\n",
            "agent.timing.steady_interval_secs",
            Some((2, 24)),
            "-1",
        ),
        (
            "[[updates.periodic.window]]\ndays = \"Mon\"\nstart_time = \"01:00\"\nlength_minutes = 5\n",
            "updates.periodic.window[0].days",
            Some((2, 8)),
            "expected a sequence",
        ),
        (
            "[[updates.periodic.window]]\ndays = [\"Mon\"]\nlength_minutes = 5\n",
            "updates.periodic.window[0]",
            None,
            "missing key `start_time`",
        ),
        // Bad values.
        (
            "[updates]\nstrategy = \"weekly\"\n",
            "updates.strategy",
            Some((2, 12)),
            "unknown strategy \"weekly\", expected immediate, periodic or fleet_lock",
        ),
        (
            "[agent.timing]\nsteady_interval_secs = 0\n",
            "agent.timing.steady_interval_secs",
            Some((2, 24)),
            "must be at least 1 second",
        ),
        (
            "[identity]\nrollout_wariness = 1.5\n",
            "identity.rollout_wariness",
            Some((2, 20)),
            "1.5 is out of range: expected 0.0 (eager) to 1.0 (cautious)",
        ),
        (
            "[identity]\nrollout_wariness = nan\n",
            "identity.rollout_wariness",
            Some((2, 20)),
            "NaN is out of range",
        ),
        (
            "[identity]\ngroup = \"intránët\"\n",
            "identity.group",
            Some((2, 9)),
            "invalid group \"intránët\"",
        ),
        (
            "[identity]\nnode_uuid = \"27e3ac02\"\n",
            "identity.node_uuid",
            Some((2, 13)),
            "invalid node UUID \"27e3ac02\"",
        ),
        (
            "[cincinnati]\nbase_url = \"ftp://example.com/\"\n",
            "cincinnati.base_url",
            Some((2, 12)),
            "invalid URL \"ftp://example.com/\": expected an http or https URL",
        ),
        (
            "[cincinnati]\nbase_url = \"https://example.com/${arch}/\"\n",
            "cincinnati.base_url",
            Some((2, 12)),
            "unknown variable ${arch}",
        ),
        (
            "[cincinnati]\nbase_url = \"\"\n",
            "cincinnati.base_url",
            Some((2, 12)),
            "empty URL",
        ),
        (
            "[updates]\nstrategy = \"fleet_lock\"\n",
            "updates.fleet_lock.base_url",
            Some((2, 12)),
            "not set, and the fleet_lock strategy needs it",
        ),
        (
            "[updates]\nstrategy = \"fleet_lock\"\nfleet_lock.base_url = \"\"\n",
            "updates.fleet_lock.base_url",
            Some((3, 23)),
            "empty URL",
        ),
        (
            "[updates]\nstrategy = \"fleet_lock\"\nfleet_lock.base_url = \"lock.example.com\"\n",
            "updates.fleet_lock.base_url",
            Some((3, 23)),
            "expected http:// or https://",
        ),
        (
            "[updates]\nstrategy = \"periodic\"\n",
            "updates.periodic.window",
            Some((2, 12)),
            "no maintenance window, and the periodic strategy needs one",
        ),
        (
            "[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = []\nstart_time = \"01:00\"\nlength_minutes = 5\n",
            "updates.periodic.window[0].days",
            Some((4, 8)),
            "[]: no day given",
        ),
        (
            "[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Mon\"]\nstart_time = \"01:00\"\nlength_minutes = 5\n[[updates.periodic.window]]\ndays = [\"Sat\", \"Funday\"]\nstart_time = \"01:00\"\nlength_minutes = 5\n",
            "updates.periodic.window[1].days",
            Some((8, 8)),
            "\"Funday\": not a day of the week",
        ),
        (
            "[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Mon\"]\nstart_time = \"24:00\"\nlength_minutes = 5\n",
            "updates.periodic.window[0].start_time",
            Some((5, 14)),
            "\"24:00\": hour 24 is past 23",
        ),
        (
            "[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Mon\"]\nstart_time = \"01:00\"\nlength_minutes = 0\n",
            "updates.periodic.window[0].length_minutes",
            Some((6, 18)),
            "0: a window lasts at least one minute",
        ),
        (
            "[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Mon\"]\nstart_time = \"01:00\"\nlength_minutes = 10081\n",
            "updates.periodic.window[0].length_minutes",
            Some((6, 18)),
            "10081: longer than a week (10080 minutes)",
        ),
        (
            "[updates]\nstrategy = \"periodic\"\nperiodic.time_zone = \"../../etc/passwd\"\n[[updates.periodic.window]]\ndays = [\"Mon\"]\nstart_time = \"01:00\"\nlength_minutes = 5\n",
            "updates.periodic.time_zone",
            Some((3, 22)),
            "\"../../etc/passwd\": not in the time-zone database",
        ),
        (
            "[updates]\nstrategy = \"periodic\"\n[updates.periodic]\ntime_zone = \"Mars/Olympus_Mons\"\n[[updates.periodic.window]]\ndays = [\"Mon\"]\nstart_time = \"01:00\"\nlength_minutes = 5\n",
            "updates.periodic.time_zone",
            Some((4, 13)),
            "\"Mars/Olympus_Mons\": not in the time-zone database",
        ),
        // cairn's keys.
        (
            "[agent]\nreboot_command = []\n",
            "agent.reboot_command",
            Some((2, 18)),
            "empty command",
        ),
        (
            "[agent.metrics]\nlisten = \"localhost:9100\"\n",
            "agent.metrics.listen",
            Some((2, 10)),
            "invalid address \"localhost:9100\": expected IP:port",
        ),
        (
            "[agent]\nstate_dir = \"var/lib/cairn\"\n",
            "agent.state_dir",
            Some((2, 13)),
            "\"var/lib/cairn\" is not an absolute path",
        ),
        (
            "[agent]\nstream = \"a b\"\n",
            "agent.stream",
            Some((2, 10)),
            "invalid stream name \"a b\"",
        ),
        (
            "[updates]\nmax_version = \"\"\n",
            "updates.max_version",
            Some((2, 15)),
            "invalid version \"\"",
        ),
    ];
    for (text, key, position, message) in cases {
        let tree = Tree::with_base();
        let path = tree.write(Dir::Etc, "50-x.toml", text);
        let invalid = tree.invalid();
        let shown = invalid.to_string();
        assert_eq!(invalid.file.as_deref(), Some(path.as_path()), "{shown}");
        assert_eq!(invalid.key.as_deref(), Some(*key), "{shown}");
        if position.is_some() {
            assert_eq!(invalid.position, *position, "{shown}");
        }
        assert!(invalid.message.contains(message), "{shown}");
        let prefix = match invalid.position {
            Some((line, column)) => format!("{}:{line}:{column}: {key}: ", path.display()),
            None => format!("{}: {key}: ", path.display()),
        };
        assert!(shown.starts_with(&prefix), "{shown}");
    }
}

#[test]
fn the_error_of_the_brief_reads_as_promised() {
    let tree = Tree::with_base();
    let path = tree.write(Dir::Etc, "50-x.toml", "[updates]\nstrategy = \"weekly\"\n");
    assert_eq!(
        tree.load().unwrap_err().to_string(),
        format!(
            "{}:2:12: updates.strategy: unknown strategy \"weekly\", expected immediate, periodic or fleet_lock",
            path.display()
        )
    );
}

#[test]
fn a_value_from_a_later_file_is_blamed_on_that_file() {
    let tree = Tree::with_base();
    tree.write(
        Dir::UsrLib,
        "10-a.toml",
        "[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Mon\"]\nstart_time = \"01:00\"\nlength_minutes = 5\n",
    );
    let later = tree.write(
        Dir::Etc,
        "20-b.toml",
        "# a comment\n[[updates.periodic.window]]\ndays = [\"Sun\"]\nstart_time = \"1:60\"\nlength_minutes = 5\n",
    );
    let invalid = tree.invalid();
    assert_eq!(invalid.file, Some(later));
    assert_eq!(
        invalid.key.as_deref(),
        Some("updates.periodic.window[0].start_time")
    );
    assert_eq!(invalid.position, Some((4, 14)));
}

#[test]
fn a_missing_strategy_setting_is_blamed_on_the_file_that_chose_the_strategy() {
    let tree = Tree::with_base();
    tree.write(
        Dir::UsrLib,
        "10-a.toml",
        "[updates]\nstrategy = \"periodic\"\n",
    );
    let chooser = tree.write(
        Dir::Etc,
        "20-b.toml",
        "[updates]\nstrategy = \"fleet_lock\"\n",
    );
    let invalid = tree.invalid();
    assert_eq!(invalid.file, Some(chooser));
    assert_eq!(invalid.key.as_deref(), Some("updates.fleet_lock.base_url"));
}

#[test]
fn a_syntax_error_has_a_position_and_no_key() {
    let tree = Tree::with_base();
    let path = tree.write(Dir::Etc, "50-x.toml", "[updates]\nenabled = tru\n");
    let invalid = tree.invalid();
    assert_eq!(invalid.file, Some(path));
    assert_eq!(invalid.key, None);
    assert_eq!(invalid.position.map(|(line, _)| line), Some(2));

    let tree = Tree::with_base();
    tree.write(
        Dir::Etc,
        "50-x.toml",
        "[updates]\nenabled = true\nenabled = false\n",
    );
    assert_eq!(tree.invalid().position.map(|(line, _)| line), Some(3));
}

#[test]
fn no_graph_server_is_an_error_naming_the_key() {
    let tree = Tree::new();
    let invalid = tree.invalid();
    assert_eq!(invalid.file, None);
    assert_eq!(invalid.key.as_deref(), Some("cincinnati.base_url"));
    assert!(
        invalid
            .to_string()
            .starts_with("cincinnati.base_url: not set"),
        "{invalid}"
    );
}
