//! Talking to systemd: READY once the first reload is done and the queue runs, STATUS lines,
//! and watchdog pings. Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

pub fn ready(status: &str) {
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    let _ = sd_notify::notify(&[NotifyState::Status(status)]);
}

pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

/// systemd v253+ requires the monotonic time with RELOADING=1 (Type=notify-reload).
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    let _ = sd_notify::notify(&states);
}

pub fn watchdog() {
    let _ = sd_notify::notify(&[NotifyState::Watchdog]);
}

/// Half the watchdog timeout systemd asked for, if it asked.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}
