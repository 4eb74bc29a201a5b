//! Who is asking, and what each may do. Every request comes from a
//! principal: a local uid, as the kernel tells it, `remote` (a peer on
//! another host), or *unidentified* (a caller of this host the kernel
//! would not vouch for). The rules here are pure: the server's uid and what
//! `/proc` says are passed in.

use std::fmt;

/// The caller of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A local user, by uid.
    User(u32),
    /// A peer on another host. All remote callers count as one.
    Remote,
    /// A caller on this host whose socket could not vouch for a user: it
    /// closed, reset or changed before it was identified. It may read and
    /// change nothing; all such callers count as one.
    Unidentified,
}

impl Principal {
    /// The caller with `uid` as the kernel vouched for it; `local`: the
    /// caller is on this host (so without a uid it is unidentified, not
    /// remote).
    pub fn of(uid: Option<u32>, local: bool) -> Principal {
        match (uid, local) {
            (Some(uid), _) => Principal::User(uid),
            (None, true) => Principal::Unidentified,
            (None, false) => Principal::Remote,
        }
    }

    /// The uid a lease of this principal records; `None` for `remote`
    /// (and for an unidentified caller, which is granted nothing).
    pub fn uid(self) -> Option<u32> {
        match self {
            Principal::User(uid) => Some(uid),
            Principal::Remote | Principal::Unidentified => None,
        }
    }

    /// The principal a lease recorded as its owner.
    pub fn from_uid(uid: Option<u32>) -> Principal {
        uid.map_or(Principal::Remote, Principal::User)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(uid) => write!(f, "uid {uid}"),
            Principal::Remote => f.write_str("remote callers"),
            Principal::Unidentified => f.write_str("an unidentified caller"),
        }
    }
}

/// Why a principal may not do what it asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not this principal's to do. 403.
    Forbidden(String),
    /// A value that can never be right, naming its field. 400.
    Invalid(String),
    /// Over the quota of leased ports. 409.
    Quota(String),
}

/// The rules, for one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// The uid dynport runs as: with root, the host's operators.
    pub server_uid: u32,
    /// Live leased ports one principal may hold; `None` for no limit.
    pub max_ports_per_uid: Option<usize>,
    /// Names (live, retained and aliases) one principal may hold.
    pub max_names_per_uid: usize,
    /// Whether a token gates mutations (so a remote caller that got past
    /// the gate holds it).
    pub token_set: bool,
}

impl Rules {
    /// uid 0 and dynport's own uid: the host's operators.
    pub fn is_operator(&self, who: Principal) -> bool {
        matches!(who, Principal::User(uid) if uid == 0 || uid == self.server_uid)
    }

    /// Renew and release: the lease's own principal, or an operator.
    pub fn may_manage(&self, who: Principal, id: &str, owner: Option<u32>) -> Result<(), Refusal> {
        let owner = Principal::from_uid(owner);
        if who == owner || self.is_operator(who) {
            return Ok(());
        }
        Err(Refusal::Forbidden(format!(
            "lease {id} belongs to {}",
            owner_words(owner)
        )))
    }

    /// A `pid` in a lease request: a live process of the caller's own uid;
    /// operators may name any, a remote caller none. `pid_uid` is the real
    /// uid of that process, `None` when no such process runs.
    pub fn may_name_pid(
        &self,
        who: Principal,
        pid: u32,
        pid_uid: Option<u32>,
    ) -> Result<(), Refusal> {
        if pid <= 1 {
            return Err(Refusal::Invalid(format!(
                "pid: {pid} cannot own a lease; give the pid of the process that uses the ports"
            )));
        }
        let Some(pid_uid) = pid_uid else {
            return Err(Refusal::Invalid(format!(
                "pid: no process {pid} is running"
            )));
        };
        match who {
            _ if self.is_operator(who) => Ok(()),
            Principal::User(uid) if uid == pid_uid => Ok(()),
            Principal::User(uid) => Err(Refusal::Forbidden(format!(
                "pid: process {pid} belongs to uid {pid_uid}, not to the caller (uid {uid})"
            ))),
            Principal::Remote => Err(Refusal::Forbidden(format!(
                "pid: a remote caller may not tie a lease to process {pid}"
            ))),
            Principal::Unidentified => Err(Refusal::Forbidden(format!(
                "pid: an unidentified caller may not tie a lease to process {pid}"
            ))),
        }
    }

    /// Moving the server: an operator, or a remote caller with the token.
    pub fn may_change_port(&self, who: Principal) -> Result<(), Refusal> {
        if self.is_operator(who) || (who == Principal::Remote && self.token_set) {
            return Ok(());
        }
        Err(Refusal::Forbidden(format!(
            "only uid 0, dynport's own uid {} or a remote caller with the token may \
             change the server's port; the caller is {who}",
            self.server_uid
        )))
    }

    /// The most live leased ports `who` may hold, for the port table's
    /// grant to enforce: `None` for an operator, or when no quota is set.
    pub fn quota_for(&self, who: Principal) -> Option<usize> {
        self.max_ports_per_uid.filter(|_| !self.is_operator(who))
    }

    /// What `who` may hold, for the port table to enforce: ports and names,
    /// neither counted for an operator, who may also take a retained name
    /// of another principal.
    pub fn allowance_for(&self, who: Principal) -> crate::ports::names::Allowance {
        let operator = self.is_operator(who);
        crate::ports::names::Allowance {
            ports: self.quota_for(who),
            names: (!operator).then_some(self.max_names_per_uid),
            operator,
        }
    }
}

fn owner_words(owner: Principal) -> String {
    match owner {
        Principal::User(uid) => format!("uid {uid}"),
        Principal::Remote => "a remote caller".to_string(),
        Principal::Unidentified => "an unidentified caller".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Principal::{Remote, User};

    const RULES: Rules = Rules {
        server_uid: 990,
        max_ports_per_uid: Some(10),
        max_names_per_uid: 64,
        token_set: false,
    };

    #[test]
    fn a_uid_is_that_user_without_one_remote_or_unidentified_when_local() {
        assert_eq!(Principal::of(None, false), Remote);
        assert_eq!(Principal::of(Some(1000), false), User(1000));
        assert_eq!(Principal::of(Some(1000), true), User(1000));
        assert_eq!(Principal::of(None, true), Principal::Unidentified);
    }

    #[test]
    fn an_unidentified_caller_may_change_nothing() {
        let who = Principal::Unidentified;
        assert!(RULES.may_manage(who, "ab", None).is_err());
        assert!(RULES.may_manage(who, "ab", Some(0)).is_err());
        assert!(RULES.may_name_pid(who, 4242, Some(0)).is_err());
        let gated = Rules {
            token_set: true,
            ..RULES
        };
        assert!(gated.may_change_port(who).is_err());
        assert!(!RULES.is_operator(who));
    }

    #[test]
    fn a_lease_is_managed_by_its_owner_root_and_the_server_uid_only() {
        assert_eq!(RULES.may_manage(User(1000), "ab", Some(1000)), Ok(()));
        assert_eq!(RULES.may_manage(User(0), "ab", Some(1000)), Ok(()));
        assert_eq!(RULES.may_manage(User(990), "ab", Some(1000)), Ok(()));
        assert_eq!(
            RULES.may_manage(User(1001), "ab", Some(1000)),
            Err(Refusal::Forbidden("lease ab belongs to uid 1000".into()))
        );
        assert_eq!(
            RULES.may_manage(Remote, "ab", Some(1000)),
            Err(Refusal::Forbidden("lease ab belongs to uid 1000".into()))
        );
        assert_eq!(RULES.may_manage(Remote, "ab", None), Ok(()));
        assert_eq!(
            RULES.may_manage(User(1000), "ab", None),
            Err(Refusal::Forbidden(
                "lease ab belongs to a remote caller".into()
            ))
        );
    }

    #[test]
    fn a_pid_must_be_the_callers_own_unless_an_operator_names_it() {
        assert_eq!(RULES.may_name_pid(User(1000), 4242, Some(1000)), Ok(()));
        assert_eq!(RULES.may_name_pid(User(0), 4242, Some(1000)), Ok(()));
        assert_eq!(RULES.may_name_pid(User(990), 4242, Some(1000)), Ok(()));
        assert!(matches!(
            RULES.may_name_pid(User(1001), 4242, Some(1000)),
            Err(Refusal::Forbidden(m)) if m.contains("process 4242 belongs to uid 1000")
        ));
        assert!(matches!(
            RULES.may_name_pid(Remote, 4242, Some(1000)),
            Err(Refusal::Forbidden(m)) if m.starts_with("pid: a remote caller")
        ));
        assert!(matches!(
            RULES.may_name_pid(User(0), 4242, None),
            Err(Refusal::Invalid(m)) if m == "pid: no process 4242 is running"
        ));
        for pid in [0, 1] {
            assert!(matches!(
                RULES.may_name_pid(User(0), pid, Some(0)),
                Err(Refusal::Invalid(m)) if m.starts_with(&format!("pid: {pid} cannot"))
            ));
        }
    }

    #[test]
    fn port_change_is_for_operators_and_remote_callers_with_the_token() {
        assert_eq!(RULES.may_change_port(User(0)), Ok(()));
        assert_eq!(RULES.may_change_port(User(990)), Ok(()));
        assert!(RULES.may_change_port(User(1000)).is_err());
        assert!(RULES.may_change_port(Remote).is_err());
        let gated = Rules {
            token_set: true,
            ..RULES
        };
        assert_eq!(gated.may_change_port(Remote), Ok(()));
        assert!(gated.may_change_port(User(1000)).is_err());
    }

    #[test]
    fn the_quota_binds_everyone_but_operators() {
        assert_eq!(RULES.quota_for(User(1000)), Some(10));
        assert_eq!(RULES.quota_for(Remote), Some(10));
        assert_eq!(RULES.quota_for(Principal::Unidentified), Some(10));
        assert_eq!(RULES.quota_for(User(0)), None);
        assert_eq!(RULES.quota_for(User(990)), None);
        let unlimited = Rules {
            max_ports_per_uid: None,
            ..RULES
        };
        assert_eq!(unlimited.quota_for(User(1000)), None);
    }
}
