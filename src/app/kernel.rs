//! The kernel's ports on the shared state: with `--reserve-kernel`, the
//! kernel's reserved list follows every view the app publishes.

use super::App;
use crate::app::kernel_ports::{self, KernelPorts};

impl App {
    /// Takes charge of the kernel's ports; set once, before the first save,
    /// so that the first publication reserves the ports loaded at start.
    pub fn set_kernel_ports(&self, kernel: KernelPorts) {
        // Set once; a second call is ignored.
        let _ = self.kernel.set(kernel);
    }

    pub fn kernel_ports(&self) -> Option<&KernelPorts> {
        self.kernel.get()
    }

    /// How many entries of the kernel's reserved list are dynport's;
    /// `None` without `--reserve-kernel`.
    pub fn kernel_reserved_count(&self) -> Option<usize> {
        let reserver = self.kernel.get()?.reserver.as_ref()?;
        Some(reserver.count())
    }

    /// Puts the kernel's reserved list in step with the table; `recheck`
    /// reads it again even when dynport's wants did not change, to put back
    /// what someone else removed. Called after every commit, before its
    /// answers go out.
    pub(super) fn reserve_kernel_ports(&self, recheck: bool) {
        if let Some(reserver) = self.kernel.get().and_then(|k| k.reserver.as_ref()) {
            let wanted = {
                let held = self.held_read();
                let leased = held.table.leases().flat_map(|l| l.ports.iter().copied());
                kernel_ports::wanted(leased, held.table.server_port(), reserver.ephemeral())
            };
            reserver.sync(wanted, recheck);
        }
    }

    /// Removes dynport's entries from the kernel's reserved list, at
    /// shutdown, once nothing more is published. When that fails, the
    /// record of them stays for the next server to take back.
    pub fn release_kernel_ports(&self) {
        let Some(reserver) = self.kernel.get().and_then(|k| k.reserver.as_ref()) else {
            return;
        };
        let _durable = self.disk();
        match reserver.release_all() {
            Ok(()) => log::info!("removed dynport's entries from the kernel's reserved ports"),
            Err(e) => {
                log::warn!("cannot remove dynport's entries from the kernel's reserved ports: {e}")
            }
        }
    }
}
