//! Schedules: cron expressions in a time zone, and the logical dates of runs.
//!
//! A scheduled run covers the interval between two consecutive ticks and starts when the
//! interval ends; its logical time is the interval's start and its logical date that start's
//! date in the DAG's time zone (so the 02:00 run of Jan 16 builds Jan 15's partition).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

pub fn parse_cron(s: &str) -> Result<Cron, String> {
    let fields = s.split_whitespace().count();
    if !s.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
        return Err(format!(
            "expected a cron expression of 5 fields (minute hour day month weekday), 6 (seconds first) or a nickname like @daily, got `{s}`"
        ));
    }
    s.parse::<Cron>()
        .map_err(|e| format!("cannot parse cron expression `{s}`: {e}"))
}

pub fn parse_tz(s: &str) -> Result<Tz, String> {
    s.parse::<Tz>().map_err(|_| {
        format!("`{s}` is not an IANA time zone name (e.g. \"UTC\", \"Europe/Berlin\")")
    })
}

pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("expected a date like \"2026-01-15\", got `{s}`"))
}

/// A DAG's schedule, resolved.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    pub fn try_new(cron: &str, tz: &str) -> Result<Self, String> {
        Ok(Self {
            cron: parse_cron(cron)?,
            tz: parse_tz(tz)?,
        })
    }

    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The first tick strictly after `t` (or at `t` when `inclusive`).
    pub fn next_tick(&self, t: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, inclusive)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// Start of `date` (midnight) in the schedule's zone.
    pub fn day_start(&self, date: NaiveDate) -> DateTime<Utc> {
        let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
        self.tz
            .from_local_datetime(&midnight)
            .earliest()
            .map_or_else(
                || Utc.from_utc_datetime(&midnight),
                |d| d.with_timezone(&Utc),
            )
    }

    /// Logical date of a run whose interval starts at `t`.
    pub fn date_of(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    /// Interval starts of every run whose interval has ended by `now`, from the first tick at or
    /// after `from` on; at most `limit` of them (the newest are kept).
    pub fn due(&self, from: DateTime<Utc>, now: DateTime<Utc>, limit: usize) -> Vec<DateTime<Utc>> {
        let mut out = std::collections::VecDeque::new();
        let Some(mut start) = self.next_tick(from, true) else {
            return Vec::new();
        };
        while let Some(end) = self.next_tick(start, false) {
            if end > now {
                break;
            }
            out.push_back(start);
            if out.len() > limit {
                out.pop_front();
            }
            start = end;
        }
        out.into()
    }

    /// Interval starts whose logical date lies in `from..=to`.
    pub fn between_dates(&self, from: NaiveDate, to: NaiveDate) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = self.next_tick(self.day_start(from), true);
        while let Some(s) = t {
            if self.date_of(s) > to {
                break;
            }
            out.push(s);
            t = self.next_tick(s, false);
        }
        out
    }

    /// The latest interval that has ended by `now`: its start.
    pub fn latest_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.tz);
        let end = self.cron.find_previous_occurrence(&local, true).ok()?;
        let start = self
            .cron
            .find_previous_occurrence(&end, false)
            .ok()?
            .with_timezone(&Utc);
        Some(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn daily_runs_cover_the_day_before_their_start() {
        let s = Schedule::try_new("0 2 * * *", "UTC").unwrap();
        let due = s.due(
            utc("2026-01-15T00:00:00Z"),
            utc("2026-01-18T03:00:00Z"),
            100,
        );
        let dates: Vec<String> = due.iter().map(|t| s.date_of(*t).to_string()).collect();
        // The Jan 17 interval ends Jan 18 02:00, before `now`; Jan 18's has not ended.
        assert_eq!(dates, ["2026-01-15", "2026-01-16", "2026-01-17"]);
        assert_eq!(s.latest_due(utc("2026-01-18T03:00:00Z")), Some(due[2]));
    }

    #[test]
    fn time_zones_move_the_ticks() {
        let s = Schedule::try_new("0 2 * * *", "Europe/Berlin").unwrap();
        let t = s.next_tick(utc("2026-01-15T00:00:00Z"), true).unwrap();
        assert_eq!(t, utc("2026-01-15T01:00:00Z"));
        let t = s.next_tick(utc("2026-07-15T00:00:00Z"), true).unwrap();
        assert_eq!(t, utc("2026-07-15T00:00:00Z"));
    }

    #[test]
    fn dates_between_are_inclusive() {
        let s = Schedule::try_new("0 2 * * *", "UTC").unwrap();
        let d = |x| parse_date(x).unwrap();
        let runs = s.between_dates(d("2026-01-01"), d("2026-01-07"));
        assert_eq!(runs.len(), 7);
        assert_eq!(runs[0], utc("2026-01-01T02:00:00Z"));
    }

    #[test]
    fn bad_expressions_say_what_was_expected() {
        assert!(parse_cron("0 2 * *").unwrap_err().contains("5 fields"));
        assert!(
            parse_cron("0 25 * * *")
                .unwrap_err()
                .contains("cannot parse")
        );
        assert!(parse_tz("Mars/Olympus").unwrap_err().contains("IANA"));
        assert!(parse_date("15/01/2026").unwrap_err().contains("2026-01-15"));
    }
}
