//! UTC calendar text for UNIX times, without a clock and without a time zone database.

/// `2025-01-12 14:00 UTC` (seconds dropped).
pub(crate) fn format_minutes(epoch: i64) -> String {
    let (year, month, day, hour, minute, _) = civil(epoch);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// `2025-01-12T14:00:00Z`, the form of `metadata.last-modified`.
pub(crate) fn format_rfc3339(epoch: i64) -> String {
    let (year, month, day, hour, minute, second) = civil(epoch);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// Proleptic Gregorian date and time of a UNIX time (Howard Hinnant's `civil_from_days`).
fn civil(epoch: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = epoch.div_euclid(86_400);
    let seconds = epoch.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        year,
        month as u32,
        day as u32,
        (seconds / 3_600) as u32,
        (seconds % 3_600 / 60) as u32,
        (seconds % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_712_700_000), "2024-04-09T22:00:00Z");
        assert_eq!(format_minutes(1_736_690_400), "2025-01-12 14:00 UTC");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
        // No panic at the ends of the range.
        format_minutes(i64::MIN);
        format_minutes(i64::MAX);
    }
}
