//! Weekly maintenance windows with a time zone: `sat 01:00-05:00 Europe/Berlin`,
//! `mon-fri 22:00-02:00 UTC` (crossing midnight: open from Monday 22:00 to Tuesday 02:00, …),
//! `mon,wed,fri 12:00-13:00 America/New_York`, `daily 00:00-24:00 UTC`. A plan may have several;
//! they are open when any is. Pure: the caller passes `now`.
//!
//! Times are wall-clock times in the window's zone (chrono-tz, so daylight saving time is
//! followed): a window starting at a time the clocks skip opens when they jump; at a time that
//! happens twice, the first one.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// A window that could not be parsed; the text says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("maintenance window `{input}`: {message}")]
pub struct WindowError {
    pub input: String,
    pub message: String,
}

/// One weekly window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Monday first.
    days: [bool; 7],
    /// Minutes after local midnight.
    start: u32,
    /// Minutes after local midnight, 1..=1440; at or before `start`: the next day.
    end: u32,
    zone: Tz,
    text: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn day_index(text: &str) -> Option<usize> {
    let t = text.to_ascii_lowercase();
    DAYS.iter()
        .position(|d| *d == t)
        .or_else(|| FULL_DAYS.iter().position(|d| *d == t))
}

fn parse_time(text: &str, allow_24: bool) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if m > 59 {
        return None;
    }
    match h {
        0..=23 => Some(h * 60 + m),
        24 if allow_24 && m == 0 => Some(1440),
        _ => None,
    }
}

impl FromStr for Window {
    type Err = WindowError;

    fn from_str(input: &str) -> Result<Window, WindowError> {
        let err = |message: String| WindowError {
            input: input.to_string(),
            message,
        };
        let parts: Vec<&str> = input.split_whitespace().collect();
        let [days_text, times, zone_text] = parts.as_slice() else {
            return Err(err(format!(
                "expected three parts, DAYS START-END ZONE (e.g. `sat 01:00-05:00 Europe/Berlin`), found {}",
                parts.len()
            )));
        };
        let mut days = [false; 7];
        if matches!(days_text.to_ascii_lowercase().as_str(), "daily" | "*") {
            days = [true; 7];
        } else {
            for item in days_text.split(',') {
                let bad_day = |d: &str| {
                    err(format!(
                        "`{d}` is not a day; expected mon, tue, wed, thu, fri, sat, sun, a range (mon-fri), a list (sat,sun) or daily"
                    ))
                };
                match item.split_once('-') {
                    Some((from, to)) => {
                        let a = day_index(from).ok_or_else(|| bad_day(from))?;
                        let b = day_index(to).ok_or_else(|| bad_day(to))?;
                        // A range may wrap around the week end: fri-mon.
                        let mut i = a;
                        loop {
                            days[i] = true;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                    }
                    None => days[day_index(item).ok_or_else(|| bad_day(item))?] = true,
                }
            }
        }
        let (start_text, end_text) = times.split_once('-').ok_or_else(|| {
            err(format!(
                "`{times}` is not a time range; expected START-END in 24-hour HH:MM (e.g. 01:00-05:00)"
            ))
        })?;
        let start = parse_time(start_text, false).ok_or_else(|| {
            err(format!(
                "`{start_text}` is not a start time; expected HH:MM from 00:00 to 23:59"
            ))
        })?;
        let end = parse_time(end_text, true).ok_or_else(|| {
            err(format!(
                "`{end_text}` is not an end time; expected HH:MM from 00:00 to 24:00"
            ))
        })?;
        if start == end {
            return Err(err(
                "the window starts and ends at the same time; expected a window of at least one minute (00:00-24:00 for a whole day)".to_string(),
            ));
        }
        let zone = Tz::from_str(zone_text).map_err(|_| {
            err(format!(
                "`{zone_text}` is not a time zone; expected an IANA name such as UTC or Europe/Berlin"
            ))
        })?;
        Ok(Window {
            days,
            start,
            end,
            zone,
            text: input.split_whitespace().collect::<Vec<_>>().join(" "),
        })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Local wall-clock `minutes` after midnight of `date` in `zone`, as an instant.
fn resolve(zone: Tz, date: NaiveDate, minutes: u32) -> DateTime<Utc> {
    let mut naive: NaiveDateTime =
        date.and_time(chrono::NaiveTime::MIN) + Duration::minutes(i64::from(minutes));
    // A skipped time (spring forward) opens when the clocks jump: step to the first valid
    // minute. Zones skip at most a few hours, so the loop is short.
    for _ in 0..=(24 * 60) {
        match zone.from_local_datetime(&naive) {
            chrono::LocalResult::Single(t) => return t.with_timezone(&Utc),
            chrono::LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
            chrono::LocalResult::None => naive += Duration::minutes(1),
        }
    }
    Utc.from_utc_datetime(&naive)
}

impl Window {
    /// The window's openings that start on local dates `from..=to`.
    fn intervals(&self, from: NaiveDate, to: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut out = Vec::new();
        let mut date = from;
        while date <= to {
            let weekday = date.weekday().num_days_from_monday() as usize;
            if self.days[weekday] {
                let start = resolve(self.zone, date, self.start);
                let end = if self.end > self.start {
                    resolve(self.zone, date, self.end)
                } else {
                    resolve(self.zone, date + Duration::days(1), self.end)
                };
                if end > start {
                    out.push((start, end));
                }
            }
            date += Duration::days(1);
        }
        out
    }

    /// Whether `day` is one of the window's days.
    pub fn has_day(&self, day: Weekday) -> bool {
        self.days[day.num_days_from_monday() as usize]
    }
}

/// A plan's windows: open when any window is. No windows at all means always open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Windows(pub Vec<Window>);

/// How far ahead the queries look: a weekly schedule repeats within 8 days; twice that lets
/// back-to-back windows be joined.
const HORIZON_DAYS: i64 = 16;

impl Windows {
    /// Parses each text; the errors of all bad ones are returned.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Windows, Vec<WindowError>> {
        let mut windows = Vec::new();
        let mut errors = Vec::new();
        for text in texts {
            match text.as_ref().parse::<Window>() {
                Ok(w) => windows.push(w),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(Windows(windows))
        } else {
            Err(errors)
        }
    }

    /// The openings around `now`, in order, with overlapping or touching ones joined.
    fn merged(&self, now: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut all = Vec::new();
        for w in &self.0 {
            let today = now.with_timezone(&w.zone).date_naive();
            all.extend(w.intervals(
                today - Duration::days(2),
                today + Duration::days(HORIZON_DAYS),
            ));
        }
        all.sort();
        let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for (start, end) in all {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// Whether a window is open at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        self.merged(now).iter().any(|(s, e)| *s <= now && now < *e)
    }

    /// `now` when open, else when the next window opens.
    pub fn next_open(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(now) {
            return Some(now);
        }
        self.merged(now)
            .into_iter()
            .map(|(s, _)| s)
            .find(|s| *s > now)
    }

    /// When the open window(s) close, if open at `now` (`None` when closed, or when there are no
    /// windows). Windows that together never close give a time at least a week away.
    pub fn closes_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.merged(now)
            .into_iter()
            .find(|(s, e)| *s <= now && now < *e)
            .map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn windows(texts: &[&str]) -> Windows {
        Windows::parse(texts).unwrap()
    }

    #[test]
    fn is_open_table() {
        // (windows, now, open?)
        let cases: &[(&[&str], &str, bool)] = &[
            // 2024-03-02 is a Saturday. Berlin is UTC+1 in winter.
            (
                &["sat 01:00-05:00 Europe/Berlin"],
                "2024-03-02T00:00:00Z",
                true,
            ),
            (
                &["sat 01:00-05:00 Europe/Berlin"],
                "2024-03-01T23:59:59Z",
                false,
            ),
            (
                &["sat 01:00-05:00 Europe/Berlin"],
                "2024-03-02T03:59:59Z",
                true,
            ),
            (
                &["sat 01:00-05:00 Europe/Berlin"],
                "2024-03-02T04:00:00Z",
                false,
            ),
            (
                &["sat 01:00-05:00 Europe/Berlin"],
                "2024-03-03T00:30:00Z",
                false,
            ),
            // Summer: UTC+2.
            (
                &["sat 01:00-05:00 Europe/Berlin"],
                "2024-07-06T02:59:00Z",
                true,
            ),
            (
                &["sat 01:00-05:00 Europe/Berlin"],
                "2024-07-06T03:00:00Z",
                false,
            ),
            // Crossing midnight: Friday 22:00 to Saturday 02:00.
            (&["fri 22:00-02:00 UTC"], "2024-03-01T21:59:00Z", false),
            (&["fri 22:00-02:00 UTC"], "2024-03-01T22:00:00Z", true),
            (&["fri 22:00-02:00 UTC"], "2024-03-02T01:59:00Z", true),
            (&["fri 22:00-02:00 UTC"], "2024-03-02T02:00:00Z", false),
            // Saturday 23:00 is not in a window that starts on Fridays.
            (&["fri 22:00-02:00 UTC"], "2024-03-02T23:00:00Z", false),
            // Ranges and lists.
            (&["mon-fri 12:00-13:00 UTC"], "2024-03-04T12:30:00Z", true),
            (&["mon-fri 12:00-13:00 UTC"], "2024-03-03T12:30:00Z", false),
            (&["sat,sun 00:00-24:00 UTC"], "2024-03-03T23:59:00Z", true),
            (&["sat,sun 00:00-24:00 UTC"], "2024-03-04T00:00:00Z", false),
            (&["fri-mon 08:00-09:00 UTC"], "2024-03-04T08:15:00Z", true),
            (&["fri-mon 08:00-09:00 UTC"], "2024-03-05T08:15:00Z", false),
            (
                &["daily 03:00-04:00 America/New_York"],
                "2024-03-05T08:30:00Z",
                true,
            ),
            // Several windows: either one.
            (
                &["sat 01:00-05:00 UTC", "wed 20:00-21:00 UTC"],
                "2024-03-06T20:30:00Z",
                true,
            ),
            (
                &["sat 01:00-05:00 UTC", "wed 20:00-21:00 UTC"],
                "2024-03-06T21:30:00Z",
                false,
            ),
            // No windows: always open.
            (&[], "2024-03-06T21:30:00Z", true),
        ];
        for (texts, now, open) in cases {
            assert_eq!(
                windows(texts).is_open(utc(now)),
                *open,
                "{texts:?} at {now}"
            );
        }
    }

    #[test]
    fn next_open_and_closes_at() {
        let w = windows(&["sat 01:00-05:00 Europe/Berlin"]);
        // Wednesday: next Saturday 01:00 Berlin = 00:00 UTC.
        let now = utc("2024-02-28T10:00:00Z");
        assert_eq!(w.next_open(now), Some(utc("2024-03-02T00:00:00Z")));
        assert_eq!(w.closes_at(now), None);
        let inside = utc("2024-03-02T01:00:00Z");
        assert_eq!(w.next_open(inside), Some(inside));
        assert_eq!(w.closes_at(inside), Some(utc("2024-03-02T04:00:00Z")));
        // Just after closing: a week later.
        assert_eq!(
            w.next_open(utc("2024-03-02T04:00:00Z")),
            Some(utc("2024-03-09T00:00:00Z"))
        );

        // Crossing midnight closes the next day.
        let w = windows(&["fri 22:00-02:00 UTC"]);
        assert_eq!(
            w.closes_at(utc("2024-03-01T23:00:00Z")),
            Some(utc("2024-03-02T02:00:00Z"))
        );

        // Touching windows are one opening: Friday night into Saturday morning.
        let w = windows(&["fri 22:00-02:00 UTC", "sat 02:00-06:00 UTC"]);
        assert_eq!(
            w.closes_at(utc("2024-03-01T23:00:00Z")),
            Some(utc("2024-03-02T06:00:00Z"))
        );

        // Windows in different zones compare as instants.
        let w = windows(&["sat 01:00-02:00 Asia/Tokyo", "sat 01:00-02:00 UTC"]);
        assert_eq!(
            w.next_open(utc("2024-03-01T12:00:00Z")),
            Some(utc("2024-03-01T16:00:00Z"))
        );
    }

    #[test]
    fn daylight_saving_time() {
        // Europe/Berlin springs forward on 2024-03-31 at 02:00 → 03:00 (a Sunday).
        let w = windows(&["sun 02:30-04:00 Europe/Berlin"]);
        // 02:30 does not exist: the window opens at 03:00 CEST = 01:00 UTC.
        assert_eq!(
            w.next_open(utc("2024-03-30T12:00:00Z")),
            Some(utc("2024-03-31T01:00:00Z"))
        );
        assert!(!w.is_open(utc("2024-03-31T00:59:00Z")));
        assert_eq!(
            w.closes_at(utc("2024-03-31T01:30:00Z")),
            Some(utc("2024-03-31T02:00:00Z"))
        );
        // It falls back on 2024-10-27 at 03:00 → 02:00: 02:30 happens twice, the first one
        // (CEST, 00:30 UTC) counts; the window lasts until 04:00 CET = 03:00 UTC.
        assert_eq!(
            w.next_open(utc("2024-10-26T12:00:00Z")),
            Some(utc("2024-10-27T00:30:00Z"))
        );
        assert_eq!(
            w.closes_at(utc("2024-10-27T00:30:00Z")),
            Some(utc("2024-10-27T03:00:00Z"))
        );
    }

    #[test]
    fn parse_errors_say_what_was_expected() {
        let cases = [
            (
                "sat 01:00-05:00",
                "expected three parts, DAYS START-END ZONE",
            ),
            (
                "sun 1:00-05:00 UTC",
                "`1:00` is not a start time; expected HH:MM",
            ),
            (
                "sun 01:00-25:00 UTC",
                "`25:00` is not an end time; expected HH:MM from 00:00 to 24:00",
            ),
            ("sun 01:00 UTC", "expected START-END in 24-hour HH:MM"),
            ("sunday-funday 01:00-02:00 UTC", "`funday` is not a day"),
            (
                "sat 01:00-05:00 Mars/Olympus",
                "`Mars/Olympus` is not a time zone; expected an IANA name",
            ),
            ("sat 05:00-05:00 UTC", "starts and ends at the same time"),
        ];
        for (text, expected) in cases {
            let err = text.parse::<Window>().unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(
                err.contains(text),
                "{text}: the error names the input: {err}"
            );
        }
        let errors = Windows::parse(&["sat 01:00-05:00 UTC", "bad", "also bad"]).unwrap_err();
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn days() {
        let w: Window = "fri-mon 01:00-02:00 UTC".parse().unwrap();
        let open: Vec<Weekday> = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]
        .into_iter()
        .filter(|d| w.has_day(*d))
        .collect();
        assert_eq!(
            open,
            [Weekday::Mon, Weekday::Fri, Weekday::Sat, Weekday::Sun]
        );
        assert_eq!(w.to_string(), "fri-mon 01:00-02:00 UTC");
    }
}
