//! The port table: the managed range and the state of every port in it.
//! Pure: no sockets, no clock; time is passed in.

use serde::{Deserialize, Serialize};

/// The managed range, both ends included. `start <= end`, and port 0 is never in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    /// A range from `start` to `end`, refused when it is empty or starts at port 0.
    pub fn new(start: u16, end: u16) -> Result<PortRange, String> {
        if start == 0 {
            return Err("port 0 is not a valid port".to_string());
        }
        if start > end {
            return Err(format!("start {start} is above end {end}"));
        }
        Ok(PortRange { start, end })
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }

    /// How many ports the range holds.
    pub fn len(&self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// Never true: a range holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn iter(&self) -> std::ops::RangeInclusive<u16> {
        self.start..=self.end
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}
