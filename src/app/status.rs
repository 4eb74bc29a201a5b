//! The service manager's view of the app: the `STATUS=` line follows every
//! durable change, so it names the port and the number of leases stored.

use super::App;
use crate::service::notify::Notifier;
use std::net::SocketAddr;
use std::sync::Arc;

impl App {
    /// Reports to `notifier` from now on; set once, before the first save.
    pub fn set_notifier(&self, notifier: Arc<Notifier>) {
        // Set once; a second call is ignored.
        let _ = self.notifier.set(notifier);
    }

    /// What the server does, as `STATUS=` tells the service manager, e.g.
    /// `serving on 127.0.0.1:3000, 2 leases`.
    pub fn status_line(&self) -> String {
        let held = self.held_read();
        let leases = match held.table.lease_count() {
            1 => "1 lease".to_string(),
            n => format!("{n} leases"),
        };
        match held.table.server_port() {
            Some(port) => format!(
                "serving on {}, {leases}",
                SocketAddr::new(self.facts.host, port)
            ),
            None => format!("not serving, {leases}"),
        }
    }

    /// Tells the service manager the server is ready, with the status of
    /// the newest state.
    pub fn tell_ready(&self) {
        if let Some(notifier) = self.notifier.get() {
            notifier.ready(|| self.status_line());
        }
    }

    /// Sends the status of the state now when it differs from the last one
    /// sent. Callers hold the disk lock after a durable change, so statuses
    /// leave in the order changes are stored.
    pub(super) fn tell_status(&self) {
        if let Some(notifier) = self.notifier.get() {
            notifier.status(|| self.status_line());
        }
    }
}
