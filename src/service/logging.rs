//! The server's log on stderr: timestamped lines on a terminal or in a
//! file; under journald (`JOURNAL_STREAM` names stderr) one line per entry
//! with the `<N>` priority prefix of sd-daemon(3) and no timestamp, since
//! the journal stamps each entry itself.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

/// Starts logging at `level`, in the journal's form when `JOURNAL_STREAM`
/// (read through `lookup`) names the device and inode of stderr.
pub fn init(level: LevelFilter, lookup: impl Fn(&str) -> Option<String>) {
    let journal = lookup("JOURNAL_STREAM").is_some_and(|value| names_stderr(&value));
    if journal {
        if log::set_boxed_logger(Box::new(Journal { level })).is_ok() {
            log::set_max_level(level);
        }
        return;
    }
    let config = simplelog::ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .build();
    let _ = simplelog::WriteLogger::init(level, config, std::io::stderr());
}

/// Whether `value` (`DEV:INODE`, as systemd sets it) is stderr's device
/// and inode. A stderr redirected elsewhere keeps the inherited variable
/// but no longer matches, and gets timestamps again.
fn names_stderr(value: &str) -> bool {
    let stat = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|file| file.metadata());
    stat.is_ok_and(|m| matches_stream(value, m.dev(), m.ino()))
}

fn matches_stream(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// sd-daemon(3)'s priority of a log level: error 3, warning 4, info 6,
/// debug 7 (trace too, since syslog has nothing lower).
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// `message` as the journal reads it: every line its own entry, so every
/// line carries the prefix, lest a continuation line fall to the default
/// priority.
fn journal_lines(level: Level, message: &str) -> String {
    let prefix = format!("<{}>", priority(level));
    let mut out = String::with_capacity(message.len() + 8);
    // A trailing newline ends the last line; it starts no empty entry.
    let body = message.strip_suffix('\n').unwrap_or(message);
    for line in body.split('\n') {
        out.push_str(&prefix);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The logger under journald.
struct Journal {
    level: LevelFilter,
}

impl Log for Journal {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = journal_lines(record.level(), &record.args().to_string());
        // One write, so lines of two threads never interleave; a closed
        // stderr has nowhere to report to.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_gets_its_sd_daemon_prefix() {
        assert_eq!(journal_lines(Level::Error, "boom"), "<3>boom\n");
        assert_eq!(journal_lines(Level::Warn, "careful"), "<4>careful\n");
        assert_eq!(journal_lines(Level::Info, "listening"), "<6>listening\n");
        assert_eq!(journal_lines(Level::Debug, "scan"), "<7>scan\n");
        assert_eq!(journal_lines(Level::Trace, "detail"), "<7>detail\n");
    }

    #[test]
    fn every_line_of_a_message_carries_the_prefix() {
        assert_eq!(
            journal_lines(Level::Warn, "first\nsecond\n"),
            "<4>first\n<4>second\n"
        );
    }

    #[test]
    fn an_empty_message_is_one_empty_entry() {
        assert_eq!(journal_lines(Level::Info, ""), "<6>\n");
    }

    #[test]
    fn journal_stream_must_name_the_device_and_inode() {
        assert!(matches_stream("65:12345", 65, 12345));
        assert!(matches_stream("65:12345\n", 65, 12345));
        assert!(!matches_stream("65:12346", 65, 12345));
        assert!(!matches_stream("66:12345", 65, 12345));
        assert!(!matches_stream("65", 65, 12345));
        assert!(!matches_stream("", 65, 12345));
        assert!(!matches_stream("x:y", 65, 12345));
    }
}
