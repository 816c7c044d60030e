//! Maintenance windows of the `periodic` update strategy: weekly windows in one time zone,
//! asked "may the machine reboot now?" and "when does the next window open?".
//!
//! The configuration is Zincati's (`docs/usage/updates-strategy.md`, "Periodic strategy"):
//!
//! ```toml
//! [updates.periodic]
//! time_zone = "Europe/Berlin"
//! [[updates.periodic.window]]
//! days = [ "Sat", "Sun" ]
//! start_time = "22:30"
//! length_minutes = 60
//! ```
//!
//! Everything here is pure: time is a parameter (Unix seconds) and the only IO is the time-zone
//! database (and `/etc/localtime` for `time_zone = "localtime"`), read once in [`Windows::new`].
//!
//! # When a window is open
//!
//! A window entry opens once on every listed day of the week. The opening on local date `D` is
//! the instant at which the wall clock of the time zone reads `start_time` on `D`; from there the
//! window stays open for `length_minutes` of real elapsed time, the half-open interval
//! `[opening, opening + length_minutes × 60 s)`. A window may cross midnight and the end of the
//! week (Sunday 23:00 + 120 minutes is open until Monday 01:00); entries and days union, and
//! overlaps are fine.
//!
//! Daylight-saving changes follow the "compatible" rule (RFC 5545, Temporal, jiff's default):
//!
//! - a start time that does not exist that day (spring forward: 02:30 in Europe/Berlin on the
//!   last Sunday of March) is moved forward by the length of the gap: the window opens at 03:30
//!   CEST (01:30 UTC);
//! - a start time that happens twice (fall back: 01:30 in America/New_York on the first Sunday
//!   of November) opens at the first of the two, 01:30 EDT.
//!
//! Either way the window then lasts its full length; it is never skipped, shortened or opened
//! twice.
//!
//! ## Where Zincati differs, and why
//!
//! Zincati turns every instant into the wall-clock "minute of the week" in the time zone and
//! checks it against weekly ranges `[start, start + length]` of such minutes. So its *end* is
//! wall-clock time too: on a spring-forward day a window in the skipped hour is shortened or
//! skipped, on a fall-back day a window in the repeated hour is lengthened, up to an hour (its
//! documentation lists both under "Time zone caveats"). cairn agrees with Zincati on when a
//! window opens everywhere except inside a gap (Zincati: when the clock first shows a minute of
//! the window, usually the end of the gap; cairn: `start_time` + the gap), and it keeps the
//! length in real time, because the length is what operators size for a drain and a reboot,
//! and losing the only window of the week to a clock change would hold an update for a week.
//! Zincati's range also includes its end minute (a 60-minute window from 22:30 still admits
//! 23:30:59); cairn closes at 23:30:00 sharp. With UTC, Zincati's default, the two agree apart
//! from that last minute.
//!
//! # What the fields accept
//!
//! - `days`: English names of weekdays, in full or as their first three letters, in any case,
//!   as Zincati accepts them (it lowercases). Repeats are harmless. An empty list is an error
//!   (Zincati silently ignores such an entry). Zincati's parser misspells the full name of
//!   Tuesday as "tuesady", so Zincati rejects "Tuesday"; cairn accepts the documented
//!   "Tuesday" and not the misspelling.
//! - `start_time`: `hh:mm` on a 24-hour clock, `00:00` to `23:59`; like Zincati's parser, one
//!   digit is enough on either side (`7:05`, `07:5`). Signs and spaces are refused.
//! - `length_minutes`: 1 to 10080 (a week), Zincati's bounds.
//! - `time_zone`: a name of the IANA time-zone database (`UTC` by default in the config) or
//!   `localtime`, the system's zone as jiff finds it: `TZ` if set, else `/etc/localtime` (a
//!   symlink into a zoneinfo directory gives the zone's name; a plain file is read as TZif). If
//!   no system zone can be found, UTC, as Zincati does when `/etc/localtime` is missing.
//!   Zincati reads only `/etc/localtime`, needs it to be a symlink into `/usr/share/zoneinfo`,
//!   and treats a plain file as UTC.
//!
//! The time-zone database is the system's (`/usr/share/zoneinfo`, kept current by the `tzdata`
//! package) when there is one, and otherwise a copy bundled into the binary (jiff's
//! `tzdb-bundle-always` feature), so that a minimal image without `tzdata` still honours its
//! windows rather than refusing the configuration. Zincati reads only the system's.
//!
//! Instants outside jiff's range (years -9999 to 9999) are in no window and have no next
//! opening.

use std::fmt;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::Deserialize;

/// The longest window, a week, in minutes (Zincati's bound too).
pub const MAX_LENGTH_MINUTES: u64 = 7 * 24 * 60;

/// The `time_zone` value that means "the system's time zone".
pub const LOCALTIME: &str = "localtime";

/// One `[[updates.periodic.window]]` entry of Zincati's configuration, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Days of the week on which the window opens: "Mon" or "Monday", any case.
    pub days: Vec<String>,
    /// Local time of day at which it opens, `hh:mm`.
    pub start_time: String,
    /// How long it stays open, in minutes of elapsed time.
    pub length_minutes: u64,
}

/// The field of a window entry that an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowField {
    Days,
    StartTime,
    LengthMinutes,
}

impl fmt::Display for WindowField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WindowField::Days => "days",
            WindowField::StartTime => "start_time",
            WindowField::LengthMinutes => "length_minutes",
        })
    }
}

/// A window configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// A field of one window entry. `window` counts from 1, in the order of the entries after
    /// the configuration fragments are merged; `value` is the offending value as written.
    #[error("window {window}: {field} {value}: {problem}")]
    Field {
        window: usize,
        field: WindowField,
        value: String,
        problem: String,
    },
    /// The `time_zone` shared by all windows.
    #[error("time_zone {name:?}: {problem}")]
    TimeZone { name: String, problem: String },
}

/// The maintenance windows of a machine, in their time zone.
#[derive(Debug, Clone)]
pub struct Windows {
    windows: Vec<Window>,
    zone: TimeZone,
    zone_name: String,
}

/// One entry, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    days: DaySet,
    start: Time,
    length_minutes: u64,
}

/// A set of weekdays, one bit each from Monday (bit 0) to Sunday (bit 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct DaySet(u8);

impl DaySet {
    fn insert(&mut self, day: Weekday) {
        self.0 |= 1 << day.to_monday_zero_offset();
    }

    fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.to_monday_zero_offset()) != 0
    }
}

/// English weekday names, abbreviated and in full, compared ignoring case as Zincati does.
const DAY_NAMES: [(&str, &str, Weekday); 7] = [
    ("Mon", "Monday", Weekday::Monday),
    ("Tue", "Tuesday", Weekday::Tuesday),
    ("Wed", "Wednesday", Weekday::Wednesday),
    ("Thu", "Thursday", Weekday::Thursday),
    ("Fri", "Friday", Weekday::Friday),
    ("Sat", "Saturday", Weekday::Saturday),
    ("Sun", "Sunday", Weekday::Sunday),
];

/// How many local dates around an instant's own hold the openings that matter to it.
///
/// A window open at an instant opened at most a week (the longest length) before it, so on one
/// of the 7 local dates before or on its own date; the next opening after an instant outside
/// every window is within a week after it. The margin covers what moves an opening away from
/// its date: a gap shifts it forward, and the offset may differ between the two dates, each by
/// up to a day (Pacific/Apia skipped 2011-12-30 whole, so its Friday windows opened Saturday).
const DATES_BACK: i64 = 7 + MARGIN_DATES;
const DATES_AHEAD: i64 = 7 + MARGIN_DATES;
const MARGIN_DATES: i64 = 2;

impl Windows {
    /// Parses the window entries and the time zone; `time_zone` is an IANA name or
    /// `"localtime"`. An empty list of entries is allowed: such windows never open.
    pub fn new(specs: &[WindowSpec], time_zone: &str) -> Result<Windows, WindowError> {
        let (zone, zone_name) = resolve_time_zone(time_zone)?;
        let windows = specs
            .iter()
            .enumerate()
            .map(|(index, spec)| parse_window(index + 1, spec))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Windows {
            windows,
            zone,
            zone_name,
        })
    }

    /// Whether a reboot is allowed at this instant: some window is open.
    pub fn contains(&self, unix_seconds: i64) -> bool {
        let Some(today) = self.local_date(unix_seconds) else {
            return false;
        };
        self.openings(today, -DATES_BACK, MARGIN_DATES)
            .any(|(opening, window)| {
                opening <= unix_seconds && unix_seconds < opening + window.length_seconds()
            })
    }

    /// When the next window opens, at or after `unix_seconds`: `unix_seconds` itself inside a
    /// window, `None` without windows.
    pub fn next_opening(&self, unix_seconds: i64) -> Option<i64> {
        if self.windows.is_empty() {
            return None;
        }
        if self.contains(unix_seconds) {
            return Some(unix_seconds);
        }
        let today = self.local_date(unix_seconds)?;
        self.openings(today, -MARGIN_DATES, DATES_AHEAD)
            .map(|(opening, _)| opening)
            .filter(|&opening| opening >= unix_seconds)
            .min()
    }

    /// Each window entry in plain words, in the order given, e.g.
    /// `"Sat and Sun 22:30–23:30 Europe/Berlin"`. The end is the nominal wall-clock time, on a
    /// day without a clock change.
    pub fn describe(&self) -> Vec<String> {
        self.windows
            .iter()
            .map(|window| {
                let start = i64::from(window.start.hour()) * 60 + i64::from(window.start.minute());
                let end = start + window.length_minutes as i64;
                let days_later = match end / (24 * 60) {
                    0 => String::new(),
                    1 => " (next day)".to_string(),
                    n => format!(" ({n} days later)"),
                };
                format!(
                    "{} {}–{}{} {}",
                    describe_days(window.days),
                    clock(start),
                    clock(end),
                    days_later,
                    self.zone_name
                )
            })
            .collect()
    }

    /// The time zone of the windows: the configured name, or for `"localtime"` the name of the
    /// system's zone (`"localtime"` when the system's zone has no name).
    pub fn time_zone(&self) -> &str {
        &self.zone_name
    }

    fn local_date(&self, unix_seconds: i64) -> Option<Date> {
        let instant = Timestamp::from_second(unix_seconds).ok()?;
        Some(self.zone.to_datetime(instant).date())
    }

    /// Every opening, in Unix seconds, on the local dates `today + from ..= today + to`.
    fn openings(
        &self,
        today: Date,
        from: i64,
        to: i64,
    ) -> impl Iterator<Item = (i64, &Window)> + '_ {
        (from..=to)
            .filter_map(move |offset| today.checked_add(Span::new().days(offset)).ok())
            .flat_map(move |date| {
                self.windows
                    .iter()
                    .filter(move |window| window.days.contains(date.weekday()))
                    .filter_map(move |window| {
                        let opening = self
                            .zone
                            .to_ambiguous_timestamp(date.to_datetime(window.start))
                            .compatible()
                            .ok()?;
                        Some((opening.as_second(), window))
                    })
            })
    }
}

impl Window {
    fn length_seconds(&self) -> i64 {
        // At most a week, checked when parsed.
        self.length_minutes as i64 * 60
    }
}

fn resolve_time_zone(name: &str) -> Result<(TimeZone, String), WindowError> {
    if name == LOCALTIME {
        // As Zincati: no system zone means UTC.
        let zone = TimeZone::try_system().unwrap_or(TimeZone::UTC);
        let zone_name = zone.iana_name().unwrap_or(LOCALTIME).to_string();
        return Ok((zone, zone_name));
    }
    match TimeZone::get(name) {
        Ok(zone) => {
            let zone_name = zone.iana_name().unwrap_or(name).to_string();
            Ok((zone, zone_name))
        }
        Err(_) => Err(WindowError::TimeZone {
            name: name.to_string(),
            problem: "not in the time-zone database (give an IANA name like \"Europe/Berlin\", \
                      or \"localtime\")"
                .to_string(),
        }),
    }
}

fn parse_window(number: usize, spec: &WindowSpec) -> Result<Window, WindowError> {
    let error = |field, value: String, problem: String| WindowError::Field {
        window: number,
        field,
        value,
        problem,
    };
    if spec.days.is_empty() {
        return Err(error(
            WindowField::Days,
            "[]".to_string(),
            "no day given".to_string(),
        ));
    }
    let mut days = DaySet::default();
    for name in &spec.days {
        let day = parse_day(name).ok_or_else(|| {
            error(
                WindowField::Days,
                format!("{name:?}"),
                "not a day of the week (Mon to Sun, or Monday to Sunday)".to_string(),
            )
        })?;
        days.insert(day);
    }
    let start = parse_start_time(&spec.start_time).map_err(|problem| {
        error(
            WindowField::StartTime,
            format!("{:?}", spec.start_time),
            problem,
        )
    })?;
    let length_minutes = spec.length_minutes;
    if length_minutes == 0 {
        return Err(error(
            WindowField::LengthMinutes,
            "0".to_string(),
            "a window lasts at least one minute".to_string(),
        ));
    }
    if length_minutes > MAX_LENGTH_MINUTES {
        return Err(error(
            WindowField::LengthMinutes,
            length_minutes.to_string(),
            format!("longer than a week ({MAX_LENGTH_MINUTES} minutes)"),
        ));
    }
    Ok(Window {
        days,
        start,
        length_minutes,
    })
}

fn parse_day(name: &str) -> Option<Weekday> {
    DAY_NAMES
        .iter()
        .find(|(short, long, _)| {
            name.eq_ignore_ascii_case(short) || name.eq_ignore_ascii_case(long)
        })
        .map(|&(_, _, day)| day)
}

fn parse_start_time(text: &str) -> Result<Time, String> {
    let malformed = || "not a time of day as hh:mm on a 24-hour clock".to_string();
    let (hour, minute) = text.split_once(':').ok_or_else(malformed)?;
    let number = |part: &str| -> Option<i8> {
        let digits = (1..=2).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| part.parse().ok()).flatten()
    };
    let (Some(hour), Some(minute)) = (number(hour), number(minute)) else {
        return Err(malformed());
    };
    if hour > 23 {
        return Err(format!("hour {hour} is past 23"));
    }
    if minute > 59 {
        return Err(format!("minute {minute} is past 59"));
    }
    Time::new(hour, minute, 0, 0).map_err(|_| malformed())
}

/// "Sat and Sun", "Mon, Wed and Fri", "every day".
fn describe_days(days: DaySet) -> String {
    let names: Vec<&str> = DAY_NAMES
        .iter()
        .filter(|(_, _, day)| days.contains(*day))
        .map(|&(short, _, _)| short)
        .collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        _ if names.len() == 7 => "every day".to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// `hh:mm` of a minute count, wrapped to one day.
fn clock(minutes: i64) -> String {
    let minutes = minutes.rem_euclid(24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(days: &[&str], start_time: &str, length_minutes: u64) -> WindowSpec {
        WindowSpec {
            days: days.iter().map(|d| d.to_string()).collect(),
            start_time: start_time.to_string(),
            length_minutes,
        }
    }

    #[test]
    fn days_parse_like_zincati() {
        for (name, day) in [
            ("Mon", Weekday::Monday),
            ("monday", Weekday::Monday),
            ("TUE", Weekday::Tuesday),
            ("Tuesday", Weekday::Tuesday),
            ("sAtUrDaY", Weekday::Saturday),
            ("sun", Weekday::Sunday),
        ] {
            assert_eq!(parse_day(name), Some(day), "{name}");
        }
        for name in ["", "Mo", "Sonntag", "tuesady", " Sun", "Sun ", "Sundays"] {
            assert_eq!(parse_day(name), None, "{name:?}");
        }
    }

    #[test]
    fn start_time_parses_like_zincati() {
        assert_eq!(
            parse_start_time("12:45"),
            Ok(jiff::civil::time(12, 45, 0, 0))
        );
        assert_eq!(parse_start_time("07:5"), Ok(jiff::civil::time(7, 5, 0, 0)));
        assert_eq!(parse_start_time("0:00"), Ok(jiff::civil::time(0, 0, 0, 0)));
        assert_eq!(
            parse_start_time("23:59"),
            Ok(jiff::civil::time(23, 59, 0, 0))
        );
        for bad in [
            "",
            "12",
            "12:",
            ":30",
            "24:00",
            "23:60",
            "-0:00",
            "+7:05",
            "007:05",
            " 7:05",
            "7:05:00",
            "0x0A:0o70",
            "７:05",
        ] {
            assert!(parse_start_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn describe_names_days_in_week_order() {
        let windows = Windows::new(
            &[
                spec(&["Sun", "sat"], "22:30", 60),
                spec(&["Fri", "Mon", "wednesday"], "01:00", 30),
                spec(&["Sun"], "23:00", 120),
                spec(
                    &["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                    "00:00",
                    MAX_LENGTH_MINUTES,
                ),
            ],
            "Europe/Berlin",
        )
        .unwrap();
        assert_eq!(
            windows.describe(),
            [
                "Sat and Sun 22:30–23:30 Europe/Berlin",
                "Mon, Wed and Fri 01:00–01:30 Europe/Berlin",
                "Sun 23:00–01:00 (next day) Europe/Berlin",
                "every day 00:00–00:00 (7 days later) Europe/Berlin",
            ]
        );
    }
}
