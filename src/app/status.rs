//! The service manager's view of the app: the `STATUS=` line follows every
//! view the app publishes, so it names the port and lease count stored.

use super::{App, View};
use crate::notify::Notifier;
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
        status_line(self.facts.host, &self.view())
    }

    /// Tells the service manager the server is ready, with the status of
    /// the newest view.
    pub fn tell_ready(&self) {
        if let Some(notifier) = self.notifier.get() {
            notifier.ready(|| self.status_line());
        }
    }

    /// Sends the status of `view` when it differs from the last one sent.
    /// The caller holds the disk lock, so statuses leave in the order views
    /// are published.
    pub(super) fn tell_status(&self, view: &View) {
        if let Some(notifier) = self.notifier.get() {
            notifier.status(&status_line(self.facts.host, view));
        }
    }
}

fn status_line(host: std::net::IpAddr, view: &View) -> String {
    let leases = match view.state.leases.len() {
        1 => "1 lease".to_string(),
        n => format!("{n} leases"),
    };
    match view.state.server_port {
        Some(port) => format!("serving on {}, {leases}", SocketAddr::new(host, port)),
        None => format!("not serving, {leases}"),
    }
}
