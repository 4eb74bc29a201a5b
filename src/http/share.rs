//! Each principal's share of the open connections: a local user by uid,
//! remote peers together, unidentified callers of this host together. One
//! user's idle or silent connections fill their own share, never the
//! others'. The uids given as exempt (the host's operators) have no share:
//! only the engine's own cap limits them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use super::Peer;

/// Whose share a connection counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Holder {
    Uid(u32),
    Remote,
    Unidentified,
}

impl Holder {
    pub fn of(peer: &Peer) -> Holder {
        match (peer.uid, peer.local) {
            (Some(uid), _) => Holder::Uid(uid),
            (None, true) => Holder::Unidentified,
            (None, false) => Holder::Remote,
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Uid(uid) => write!(f, "uid {uid}"),
            Holder::Remote => f.write_str("remote callers"),
            Holder::Unidentified => f.write_str("unidentified callers"),
        }
    }
}

/// Open connections by holder, each at most `cap`. Only holders with an
/// open connection have an entry, so it is as large as the number of
/// principals connected, which the global connection cap bounds.
pub(crate) struct Shares {
    cap: usize,
    exempt: Vec<u32>,
    open: Mutex<HashMap<Holder, usize>>,
}

impl Shares {
    pub fn new(cap: usize, exempt: Vec<u32>) -> Shares {
        Shares {
            cap,
            exempt,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn is_exempt(&self, holder: Holder) -> bool {
        matches!(holder, Holder::Uid(uid) if self.exempt.contains(&uid))
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Counts one more connection of `holder`; false, counting nothing,
    /// when its share is full.
    pub fn take(&self, holder: Holder) -> bool {
        if self.is_exempt(holder) {
            return true;
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(holder).or_insert(0);
        if *count >= self.cap {
            return false;
        }
        *count += 1;
        true
    }

    /// One connection of `holder` closed.
    pub fn give_back(&self, holder: Holder) {
        if self.is_exempt(holder) {
            return;
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&holder) {
            *count -= 1;
            if *count == 0 {
                open.remove(&holder);
            }
        }
    }

    /// Open connections of `holder`.
    #[cfg(test)]
    pub fn open(&self, holder: Holder) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&holder).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_holder_has_its_own_share_and_gets_it_back_on_close() {
        let shares = Shares::new(2, vec![0]);
        let (alice, bob) = (Holder::Uid(1000), Holder::Uid(1001));
        assert!(shares.take(alice) && shares.take(alice));
        assert!(!shares.take(alice), "a third is over the cap");
        assert_eq!(shares.open(alice), 2);
        assert!(shares.take(bob), "bob's share is his own");
        assert!(shares.take(Holder::Unidentified) && shares.take(Holder::Remote));
        shares.give_back(alice);
        assert!(shares.take(alice));
        shares.give_back(bob);
        assert_eq!(shares.open(bob), 0);
        assert!(
            shares.open.lock().unwrap().get(&bob).is_none(),
            "no entry left"
        );
    }

    #[test]
    fn a_peer_of_this_host_without_a_uid_is_unidentified_not_remote() {
        let mut peer = Peer::default();
        assert_eq!(Holder::of(&peer), Holder::Remote);
        peer.local = true;
        assert_eq!(Holder::of(&peer), Holder::Unidentified);
        peer.uid = Some(0);
        assert_eq!(Holder::of(&peer), Holder::Uid(0));
    }
}
