//! Maintenance windows: fixed cases (midnight, week wrap, daylight-saving days), a year of
//! minutes and random windows checked against an oracle written here.
//!
//! The oracle turns a window's wall-clock start into an instant by hand, from the zone's
//! offsets alone (Temporal's "possible instants" and its "compatible" choice), so it does not
//! share jiff's civil-to-instant conversion with the code under test.

use cairn_agent::window::{WindowError, WindowField, WindowSpec, Windows, MAX_LENGTH_MINUTES};
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use proptest::prelude::*;

fn spec(days: &[&str], start_time: &str, length_minutes: u64) -> WindowSpec {
    WindowSpec {
        days: days.iter().map(|day| day.to_string()).collect(),
        start_time: start_time.to_string(),
        length_minutes,
    }
}

/// An RFC 3339 instant as Unix seconds.
fn at(text: &str) -> i64 {
    text.parse::<Timestamp>().unwrap().as_second()
}

fn show(unix_seconds: i64, zone: &TimeZone) -> String {
    Timestamp::from_second(unix_seconds)
        .unwrap()
        .to_zoned_datetime(zone.clone())
        .to_string()
}

/// Asserts that `windows` is open exactly on `[opens, closes)` around those instants, and that
/// `next_opening` an hour before finds `opens`.
fn assert_open_between(windows: &Windows, opens: &str, closes: &str) {
    let (opens, closes) = (at(opens), at(closes));
    assert!(!windows.contains(opens - 1), "open before {opens}");
    assert!(windows.contains(opens), "closed at {opens}");
    assert!(windows.contains(closes - 1), "closed before {closes}");
    assert!(!windows.contains(closes), "open at {closes}");
    assert_eq!(windows.next_opening(opens - 3600), Some(opens));
    assert_eq!(windows.next_opening(opens + 60), Some(opens + 60));
}

#[test]
fn several_windows_a_week() {
    // Zincati's documentation example, in UTC.
    let windows = Windows::new(
        &[
            spec(&["Sat", "Sun"], "23:30", 60),
            spec(&["Wed"], "01:00", 30),
        ],
        "UTC",
    )
    .unwrap();
    // 2026-05-06 is a Wednesday.
    assert_open_between(&windows, "2026-05-06T01:00:00Z", "2026-05-06T01:30:00Z");
    assert_open_between(&windows, "2026-05-09T23:30:00Z", "2026-05-10T00:30:00Z");
    assert_open_between(&windows, "2026-05-10T23:30:00Z", "2026-05-11T00:30:00Z");
    assert!(!windows.contains(at("2026-05-07T01:00:00Z")));
    assert_eq!(
        windows.next_opening(at("2026-05-06T01:30:00Z")),
        Some(at("2026-05-09T23:30:00Z"))
    );
    assert_eq!(
        windows.next_opening(at("2026-05-11T00:30:00Z")),
        Some(at("2026-05-13T01:00:00Z"))
    );
    assert_eq!(windows.time_zone(), "UTC");
    assert_eq!(
        windows.describe(),
        [
            "Sat and Sun 23:30–00:30 (next day) UTC",
            "Wed 01:00–01:30 UTC"
        ]
    );
}

#[test]
fn a_window_across_midnight() {
    let windows = Windows::new(&[spec(&["Friday"], "23:00", 120)], "Europe/Berlin").unwrap();
    // 2026-06-12 is a Friday; Berlin is on CEST (+02:00).
    assert_open_between(
        &windows,
        "2026-06-12T23:00:00+02:00",
        "2026-06-13T01:00:00+02:00",
    );
    assert_eq!(
        windows.describe(),
        ["Fri 23:00–01:00 (next day) Europe/Berlin"]
    );
}

#[test]
fn sunday_into_monday_wraps_the_week() {
    let windows = Windows::new(&[spec(&["sun"], "23:00", 120)], "UTC").unwrap();
    // 2026-05-10 is a Sunday.
    assert_open_between(&windows, "2026-05-10T23:00:00Z", "2026-05-11T01:00:00Z");
    assert_eq!(
        windows.next_opening(at("2026-05-11T01:00:00Z")),
        Some(at("2026-05-17T23:00:00Z"))
    );
}

#[test]
fn windows_union_across_midnight_as_in_zincatis_panama_example() {
    let windows = Windows::new(
        &[
            spec(&["Sat", "Sun"], "23:30", 60),
            spec(&["Mon"], "00:00", 60),
        ],
        "America/Panama",
    )
    .unwrap();
    // Sunday 23:30 to Monday 01:00 EST, 90 minutes in one piece.
    assert_open_between(
        &windows,
        "2026-05-10T23:30:00-05:00",
        "2026-05-11T01:00:00-05:00",
    );
}

#[test]
fn berlin_spring_forward_start_in_the_gap_opens_after_the_gap() {
    // 2026-03-29: clocks go from 02:00 CET to 03:00 CEST; 02:30 does not exist.
    let windows = Windows::new(&[spec(&["Sun"], "02:30", 60)], "Europe/Berlin").unwrap();
    assert_open_between(
        &windows,
        "2026-03-22T02:30:00+01:00",
        "2026-03-22T03:30:00+01:00",
    );
    // Moved forward by the gap: 03:30 CEST = 01:30 UTC, for a full hour.
    assert_open_between(
        &windows,
        "2026-03-29T03:30:00+02:00",
        "2026-03-29T04:30:00+02:00",
    );
    assert_open_between(
        &windows,
        "2026-04-05T02:30:00+02:00",
        "2026-04-05T03:30:00+02:00",
    );
}

#[test]
fn berlin_fall_back_start_in_the_fold_opens_at_the_first() {
    // 2026-10-25: clocks go from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
    let windows = Windows::new(&[spec(&["Sun"], "02:30", 60)], "Europe/Berlin").unwrap();
    // The first 02:30 (CEST), for a real hour: closed again at the second 02:30 (CET).
    assert_open_between(
        &windows,
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
    );
    assert_open_between(
        &windows,
        "2026-11-01T02:30:00+01:00",
        "2026-11-01T03:30:00+01:00",
    );
}

#[test]
fn berlin_window_spanning_the_change_lasts_its_length_in_real_time() {
    let windows = Windows::new(&[spec(&["Sun"], "01:30", 60)], "Europe/Berlin").unwrap();
    // Zincati would allow 01:30–01:59 CET and 03:00 CEST, half an hour; cairn an hour.
    assert_open_between(
        &windows,
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T03:30:00+02:00",
    );
    // Zincati would allow 01:30–03:00 CEST and 02:00–02:30 CET, two hours; cairn one.
    assert_open_between(
        &windows,
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
    );
}

#[test]
fn new_york_dst_days() {
    let windows = Windows::new(
        &[spec(&["Sun"], "02:30", 30), spec(&["Sun"], "01:30", 60)],
        "America/New_York",
    )
    .unwrap();
    // 2026-03-08: 02:00 EST becomes 03:00 EDT. 01:30 EST + 1 h = 03:30 EDT, and 02:30 moves
    // to 03:30 EDT: the two windows meet.
    assert_open_between(
        &windows,
        "2026-03-08T01:30:00-05:00",
        "2026-03-08T04:00:00-04:00",
    );
    // 2026-11-01: 02:00 EDT becomes 01:00 EST. 01:30 opens at its first (EDT) occurrence and
    // closes an hour later, at the second 01:30 (EST); 02:30 EST is the other window.
    assert_open_between(
        &windows,
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:30:00-05:00",
    );
    assert_open_between(
        &windows,
        "2026-11-01T02:30:00-05:00",
        "2026-11-01T03:00:00-05:00",
    );
}

#[test]
fn a_week_long_window_on_one_day_is_a_real_week() {
    let windows = Windows::new(
        &[spec(&["Mon"], "00:00", MAX_LENGTH_MINUTES)],
        "Europe/Berlin",
    )
    .unwrap();
    assert!(windows.contains(at("2026-06-10T12:00:00Z")));
    // The week of the fall-back change is an hour longer than 7 × 24 h: the window opened on
    // Monday 2026-10-19 00:00 CEST closes at Sunday 23:00 CET, an hour before the next opens.
    let closes = at("2026-10-25T23:00:00+01:00");
    let opens = at("2026-10-26T00:00:00+01:00");
    assert!(windows.contains(closes - 1));
    assert!(!windows.contains(closes));
    assert!(!windows.contains(opens - 1));
    assert!(windows.contains(opens));
    assert_eq!(windows.next_opening(closes), Some(opens));
    // The spring-forward week is an hour shorter: the windows overlap, no gap.
    assert!(windows.contains(at("2026-03-29T23:30:00+02:00")));
    let every_day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let always = Windows::new(&[spec(&every_day, "00:00", MAX_LENGTH_MINUTES)], "UTC").unwrap();
    assert_eq!(
        always.describe(),
        ["every day 00:00–00:00 (7 days later) UTC"]
    );
}

#[test]
fn a_day_skipped_by_the_zone_opens_the_next_day() {
    // Samoa skipped Friday 2011-12-30 whole: Thursday 23:59:59 -10:00 was followed by Saturday
    // 00:00:00 +14:00. The Friday window moves forward by the gap, into Saturday.
    let windows = Windows::new(&[spec(&["Fri"], "12:00", 60)], "Pacific/Apia").unwrap();
    assert_open_between(
        &windows,
        "2011-12-31T12:00:00+14:00",
        "2011-12-31T13:00:00+14:00",
    );
    assert_eq!(
        windows.next_opening(at("2011-12-31T10:00:00+14:00")),
        Some(at("2011-12-31T12:00:00+14:00"))
    );
    // A week-long window opened 8 local dates before the instant it still covers.
    let windows = Windows::new(
        &[spec(&["Fri"], "12:00", MAX_LENGTH_MINUTES)],
        "Pacific/Apia",
    )
    .unwrap();
    assert!(windows.contains(at("2011-12-31T11:59:59+14:00")));
    // A week-long window on Mondays, still open the next Monday morning.
    let windows = Windows::new(&[spec(&["Mon"], "12:00", MAX_LENGTH_MINUTES)], "UTC").unwrap();
    assert!(windows.contains(at("2026-06-15T11:59:59Z")));
}

#[test]
fn no_windows_never_open() {
    let windows = Windows::new(&[], "UTC").unwrap();
    assert!(!windows.contains(at("2026-06-10T12:00:00Z")));
    assert_eq!(windows.next_opening(at("2026-06-10T12:00:00Z")), None);
    assert!(windows.describe().is_empty());
}

#[test]
fn instants_out_of_the_calendar_are_in_no_window() {
    let every_day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let windows = Windows::new(&[spec(&every_day, "00:00", MAX_LENGTH_MINUTES)], "UTC").unwrap();
    for t in [i64::MIN, i64::MAX, -400_000_000_000, 400_000_000_000] {
        assert!(!windows.contains(t));
        assert_eq!(windows.next_opening(t), None);
    }
    assert!(windows.contains(0));
}

#[test]
fn time_zone_names() {
    let one = [spec(&["Sun"], "02:00", 60)];
    for (configured, resolved) in [
        ("UTC", "UTC"),
        ("Europe/Berlin", "Europe/Berlin"),
        // Zincati's caveat example, a link of the database's `backward` file.
        ("US/Eastern", "US/Eastern"),
    ] {
        let windows = Windows::new(&one, configured).unwrap();
        assert_eq!(windows.time_zone(), resolved);
    }
    let eastern = Windows::new(&one, "US/Eastern").unwrap();
    let new_york = Windows::new(&one, "America/New_York").unwrap();
    let t = at("2026-11-01T06:30:00Z");
    assert_eq!(eastern.next_opening(t), new_york.next_opening(t));
}

#[test]
fn localtime_is_the_system_zone() {
    let windows = Windows::new(&[spec(&["Sun"], "02:00", 60)], "localtime").unwrap();
    let expected = match TimeZone::try_system() {
        Ok(zone) => zone.iana_name().unwrap_or("localtime").to_string(),
        Err(_) => "UTC".to_string(),
    };
    assert_eq!(windows.time_zone(), expected);
}

#[test]
fn specs_deserialize_from_zincatis_toml() {
    #[derive(serde::Deserialize)]
    struct Periodic {
        window: Vec<WindowSpec>,
    }
    let periodic: Periodic = toml::from_str(
        "[[window]]\ndays = [ \"Sat\", \"Sun\" ]\nstart_time = \"22:30\"\nlength_minutes = 60\n",
    )
    .unwrap();
    assert_eq!(periodic.window, [spec(&["Sat", "Sun"], "22:30", 60)]);
    let unknown = toml::from_str::<Periodic>(
        "[[window]]\ndays = [\"Sat\"]\nstart_time = \"22:30\"\nlength_minutes = 60\nlength = 5\n",
    );
    assert!(unknown.is_err());
}

#[test]
fn errors_name_the_window_and_the_field() {
    let good = spec(&["Sat"], "22:30", 60);
    let cases = [
        (spec(&[], "22:30", 60), "window 2: days []: no day given"),
        (
            spec(&["Sat", "Caturday"], "22:30", 60),
            "window 2: days \"Caturday\": not a day of the week (Mon to Sun, or Monday to Sunday)",
        ),
        (
            spec(&["tuesady"], "22:30", 60),
            "window 2: days \"tuesady\": not a day of the week (Mon to Sun, or Monday to Sunday)",
        ),
        (
            spec(&["Sat"], "25:00", 60),
            "window 2: start_time \"25:00\": hour 25 is past 23",
        ),
        (
            spec(&["Sat"], "22:60", 60),
            "window 2: start_time \"22:60\": minute 60 is past 59",
        ),
        (
            spec(&["Sat"], "10pm", 60),
            "window 2: start_time \"10pm\": not a time of day as hh:mm on a 24-hour clock",
        ),
        (
            spec(&["Sat"], "", 60),
            "window 2: start_time \"\": not a time of day as hh:mm on a 24-hour clock",
        ),
        (
            spec(&["Sat"], "22:30", 0),
            "window 2: length_minutes 0: a window lasts at least one minute",
        ),
        (
            spec(&["Sat"], "22:30", MAX_LENGTH_MINUTES + 1),
            "window 2: length_minutes 10081: longer than a week (10080 minutes)",
        ),
    ];
    for (bad, message) in cases {
        let error = Windows::new(&[good.clone(), bad], "UTC").unwrap_err();
        assert_eq!(error.to_string(), message);
        assert!(matches!(error, WindowError::Field { window: 2, .. }));
    }
    let error = Windows::new(&[spec(&["Sat"], "25:00", 60)], "UTC").unwrap_err();
    assert!(matches!(
        error,
        WindowError::Field {
            window: 1,
            field: WindowField::StartTime,
            ..
        }
    ));
    assert!(Windows::new(&[spec(&["Sat"], "22:30", MAX_LENGTH_MINUTES)], "UTC").is_ok());
    for zone in ["Mars/Olympus_Mons", "", "Europe/../Berlin"] {
        let error = Windows::new(std::slice::from_ref(&good), zone).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "time_zone {zone:?}: not in the time-zone database (give an IANA name like \
                 \"Europe/Berlin\", or \"localtime\")"
            )
        );
    }
}

// The oracle.

/// A window as the oracle sees it.
#[derive(Debug, Clone)]
struct Rule {
    days: Vec<Weekday>,
    hour: i8,
    minute: i8,
    length_minutes: i64,
}

const WEEK: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

impl Rule {
    fn spec(&self, long_names: bool) -> WindowSpec {
        let names = |day: &Weekday| {
            let long = format!("{day:?}");
            if long_names {
                long.to_uppercase()
            } else {
                long[..3].to_string()
            }
        };
        WindowSpec {
            days: self.days.iter().map(names).collect(),
            start_time: format!("{}:{:02}", self.hour, self.minute),
            length_minutes: self.length_minutes as u64,
        }
    }
}

fn offset_at(zone: &TimeZone, unix_seconds: i64) -> i64 {
    let instant = Timestamp::from_second(unix_seconds).unwrap();
    i64::from(zone.to_offset(instant).seconds())
}

/// The instant at which the wall clock of `zone` reads `hour:minute` on `date`: the one
/// instant if there is one, the earlier of two in a fold, and in a gap the wall time read with
/// the offset from before the gap (which moves it forward by the gap).
fn oracle_opening(zone: &TimeZone, date: Date, hour: i8, minute: i8) -> i64 {
    let wall = TimeZone::UTC
        .to_timestamp(date.at(hour, minute, 0, 0))
        .unwrap()
        .as_second();
    let before = offset_at(zone, wall - 86_400);
    let after = offset_at(zone, wall + 86_400);
    [wall - before, wall - after]
        .into_iter()
        .filter(|&candidate| candidate + offset_at(zone, candidate) == wall)
        .min()
        .unwrap_or(wall - before)
}

/// Every opening of `rules` on the local dates `first..=last`, as `[open, close)` intervals.
fn oracle_intervals(zone: &TimeZone, rules: &[Rule], first: Date, last: Date) -> Vec<(i64, i64)> {
    let mut intervals = Vec::new();
    let mut date = first;
    while date <= last {
        for rule in rules
            .iter()
            .filter(|rule| rule.days.contains(&date.weekday()))
        {
            let open = oracle_opening(zone, date, rule.hour, rule.minute);
            intervals.push((open, open + rule.length_minutes * 60));
        }
        date = date.tomorrow().unwrap();
    }
    intervals.sort();
    intervals
}

fn inside(intervals: &[(i64, i64)], t: i64) -> bool {
    intervals
        .iter()
        .any(|&(open, close)| open <= t && t < close)
}

fn windows_of(rules: &[Rule], zone: &str, long_names: bool) -> Windows {
    let specs: Vec<WindowSpec> = rules.iter().map(|rule| rule.spec(long_names)).collect();
    Windows::new(&specs, zone).unwrap()
}

fn rule(days: &[Weekday], hour: i8, minute: i8, length_minutes: i64) -> Rule {
    Rule {
        days: days.to_vec(),
        hour,
        minute,
        length_minutes,
    }
}

/// Every minute of 2026, in two zones with daylight-saving time, against the oracle; and a
/// simulated agent that reboots at the first minute `contains` allows after an update is
/// staged, every 1009 minutes (so that staging lands all over the week).
#[test]
fn a_year_minute_by_minute() {
    use Weekday::*;
    let rules = [
        rule(&[Sunday], 2, 30, 60),
        rule(&[Sunday], 1, 30, 90),
        rule(&[Saturday, Sunday], 23, 30, 60),
        rule(&[Wednesday], 1, 0, 30),
        rule(&[Sunday], 23, 0, 120),
        rule(&[Friday], 2, 45, 15),
    ];
    for zone_name in ["Europe/Berlin", "America/New_York"] {
        let zone = TimeZone::get(zone_name).unwrap();
        let windows = windows_of(&rules, zone_name, false);
        let start = at("2026-01-01T00:00:00Z");
        let end = at("2027-01-01T00:00:00Z");
        let intervals = oracle_intervals(
            &zone,
            &rules,
            jiff::civil::date(2025, 12, 20),
            jiff::civil::date(2027, 1, 2),
        );
        // Sweep: `t` is inside the union iff the latest close among the intervals opened by
        // `t` is after `t`.
        let mut next_interval = 0;
        let mut latest_close = i64::MIN;
        let mut staged: Option<i64> = None;
        let mut next_update = start;
        let mut reboots = 0;
        let mut open_minutes = 0;
        for t in (start..end).step_by(60) {
            while next_interval < intervals.len() && intervals[next_interval].0 <= t {
                latest_close = latest_close.max(intervals[next_interval].1);
                next_interval += 1;
            }
            let expected = latest_close > t;
            let allowed = windows.contains(t);
            assert!(
                allowed == expected,
                "{zone_name}: contains({}) = {allowed}, oracle {expected}",
                show(t, &zone)
            );
            open_minutes += i64::from(allowed);
            if staged.is_none() && t >= next_update {
                staged = Some(t);
            }
            if let Some(since) = staged {
                if allowed {
                    assert!(
                        inside(&intervals, t),
                        "{zone_name}: reboot outside a window"
                    );
                    assert_eq!(
                        windows.next_opening(since),
                        Some(t),
                        "{zone_name}: staged at {}",
                        show(since, &zone)
                    );
                    reboots += 1;
                    staged = None;
                    next_update = t + 1009 * 60;
                }
            }
        }
        assert!(reboots > 100, "{zone_name}: {reboots} reboots");
        // 52 or 53 of each weekly window, less overlaps; a sanity check of the sweep itself.
        assert!(
            open_minutes > 52 * 300,
            "{zone_name}: {open_minutes} open minutes"
        );
    }
}

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    // A 30-minute daylight-saving shift.
    "Australia/Lord_Howe",
    // Daylight-saving time until 2019, changing at midnight: 00:xx did not exist.
    "America/Sao_Paulo",
    // +05:45 all year.
    "Asia/Kathmandu",
];

fn rule_strategy() -> impl Strategy<Value = Rule> {
    (1u8..128, 0i8..24, 0i8..60, 1i64..=1440).prop_map(|(mask, hour, minute, length)| Rule {
        days: WEEK
            .iter()
            .enumerate()
            .filter(|(bit, _)| mask & (1 << bit) != 0)
            .map(|(_, day)| *day)
            .collect(),
        hour,
        minute,
        length_minutes: length,
    })
}

proptest! {
    /// Random windows at random instants of 2017–2030, half of them near a daylight-saving
    /// change: `contains` agrees with the oracle there
    /// and at every opening and closing nearby (and one second before each), and
    /// `next_opening` is the first instant at or after `t` that is inside a window.
    #[test]
    fn random_windows_agree_with_the_oracle(
        rules in proptest::collection::vec(rule_strategy(), 1..=3),
        zone_index in 0..ZONES.len(),
        long_names in any::<bool>(),
        t in at("2017-01-01T00:00:00Z")..at("2031-01-01T00:00:00Z"),
        near_a_change in any::<bool>(),
        shift in -3 * 86_400i64..3 * 86_400,
    ) {
        let zone_name = ZONES[zone_index];
        let zone = TimeZone::get(zone_name).unwrap();
        // Half the cases within three days of the zone's next offset change, if it has one.
        let t = match zone.following(Timestamp::from_second(t).unwrap()).next() {
            Some(change) if near_a_change => change.timestamp().as_second() + shift,
            _ => t,
        };
        let windows = windows_of(&rules, zone_name, long_names);
        let today = zone.to_datetime(Timestamp::from_second(t).unwrap()).date();
        let around = |days: i64| today.checked_add(Span::new().days(days)).unwrap();
        // Wide enough that membership is right from 8 days before t to 15 days after it.
        let intervals = oracle_intervals(&zone, &rules, around(-20), around(20));

        prop_assert_eq!(windows.contains(t), inside(&intervals, t), "at {}", show(t, &zone));
        let near = |open: i64| (open - t).abs() <= 8 * 86_400;
        for &(open, close) in intervals.iter().filter(|(open, _)| near(*open)) {
            for probe in [open - 1, open, close - 1, close] {
                prop_assert_eq!(
                    windows.contains(probe),
                    inside(&intervals, probe),
                    "at {}", show(probe, &zone)
                );
            }
        }

        let next = windows.next_opening(t).unwrap();
        prop_assert!(next >= t);
        prop_assert!(windows.contains(next));
        prop_assert!(inside(&intervals, next));
        // Nothing opens in [t, next): when t is outside every window, no interval overlaps it.
        prop_assert!(
            next == t || intervals.iter().all(|&(open, close)| !(open < next && close > t)),
            "a window is open between {} and {}", show(t, &zone), show(next, &zone)
        );
    }
}
