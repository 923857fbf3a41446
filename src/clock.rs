//! Wall-clock times in the machine's local time zone, for deadlines (`gacha sweep --until
//! 07:00`) and the messages about them: the next moment a clock reads HH:MM, and a moment as
//! the clock reads it. The zone is the C library's (`TZ`, else /etc/localtime).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first moment after `now` at which the local clock reads `hour:minute` (today, or
/// tomorrow when that time of day has passed). Daylight-saving jumps are the C library's.
pub fn next_local(hour: u32, minute: u32, now: SystemTime) -> SystemTime {
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as libc::time_t;
    for day in 0..=1 {
        let at = local_midnight_plus(now_secs, day, hour, minute);
        if at > now_secs {
            return UNIX_EPOCH + Duration::from_secs(at as u64);
        }
    }
    // Past today's and tomorrow's (cannot happen): a day after now.
    now + Duration::from_secs(86_400)
}

/// `at` as the local clock reads it: `07:04`, with the date when it is not `now`'s day.
pub fn local_hh_mm(at: SystemTime, now: SystemTime) -> String {
    let (tm, today) = (local(at), local(now));
    if (tm.tm_year, tm.tm_yday) == (today.tm_year, today.tm_yday) {
        format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
    } else {
        format!(
            "{}-{:02}-{:02} {:02}:{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min
        )
    }
}

/// The local calendar time of `at`.
fn local(at: SystemTime) -> libc::tm {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: localtime_r writes only into the tm it is given; both pointers are valid.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        tm
    }
}

/// The local time `hour:minute` on the day `days` after the local day of `now`.
fn local_midnight_plus(now: libc::time_t, days: i32, hour: u32, minute: u32) -> libc::time_t {
    // SAFETY: localtime_r and mktime read and write only the tm given; mktime normalises a
    // day of the month past its end into the next month.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm.tm_mday += days;
        tm.tm_hour = hour as i32;
        tm.tm_min = minute as i32;
        tm.tm_sec = 0;
        tm.tm_isdst = -1;
        libc::mktime(&mut tm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07 23:52:34 UTC.
    const NOW: u64 = 1_797_637_954;

    #[test]
    fn the_next_time_of_day_is_today_or_tomorrow() {
        // Whatever the zone, the result reads hh:mm on the local clock, lies within a day after
        // now, and an earlier time of day than now's comes tomorrow.
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        for (hour, minute) in [(0, 0), (7, 0), (23, 59), (12, 30)] {
            let at = next_local(hour, minute, now);
            let secs = at.duration_since(now).unwrap().as_secs();
            assert!(secs > 0 && secs <= 86_400 + 3600, "{hour}:{minute}: {secs} s");
            let tm = local(at);
            assert_eq!((tm.tm_hour as u32, tm.tm_min as u32, tm.tm_sec), (hour, minute, 0));
        }
    }

    #[test]
    fn a_time_is_shown_with_its_date_only_on_another_day() {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        let tm = local(now);
        assert_eq!(local_hh_mm(now, now), format!("{:02}:{:02}", tm.tm_hour, tm.tm_min));
        let later = now + Duration::from_secs(3 * 86_400);
        assert!(local_hh_mm(later, now).len() == "2026-12-10 23:52".len(), "{}", local_hh_mm(later, now));
    }
}
