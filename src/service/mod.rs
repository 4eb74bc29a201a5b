//! Running as a host service: the log (with journald's priorities), the
//! service manager's notifications (sd_notify, without libsystemd) and its
//! watchdog.

pub mod logging;
pub mod notify;
pub mod watchdog;
