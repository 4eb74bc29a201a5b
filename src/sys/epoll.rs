//! A minimal one-shot epoll with an eventfd to wake the waiting thread.
//!
//! The engine used the `polling` crate first; on Linux its every `wait`
//! re-arms a timerfd and its notifier (four system calls besides
//! `epoll_wait`), and the waiting thread is the one every request passes
//! through. This wrapper does one `epoll_wait` per wake-up.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// The key of the wake-up eventfd; never handed out for a socket.
const WAKE: u64 = u64::MAX;

/// What a registration waits for. Interest is one-shot: after one event it is
/// disabled until [`Epoll::rearm`]; but [`Interest::Edges`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    Read,
    Write,
    /// Every change of either, for as long as it is registered
    /// (edge-triggered): a tunnel's two sockets, which would otherwise be
    /// re-armed after every event. Whoever waits so must read until a
    /// read finds nothing (or comes back short) before waiting again.
    Edges,
}

impl Interest {
    fn flags(self) -> u32 {
        let flags = match self {
            Interest::Read => libc::EPOLLIN | libc::EPOLLONESHOT,
            Interest::Write => libc::EPOLLOUT | libc::EPOLLONESHOT,
            Interest::Edges => libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET,
        };
        flags as u32
    }
}

pub(crate) struct Epoll {
    epoll: OwnedFd,
    wake: File,
}

/// Events returned by one [`Epoll::wait`].
pub(crate) struct Events {
    list: Vec<libc::epoll_event>,
}

impl Events {
    pub fn with_capacity(capacity: usize) -> Events {
        Events {
            list: Vec::with_capacity(capacity.max(1)),
        }
    }

    /// The keys of the sockets that are ready.
    pub fn keys(&self) -> impl Iterator<Item = usize> + '_ {
        self.ready().map(|(key, _)| key)
    }

    /// The keys of the sockets that are ready, each with whether its peer
    /// closed (or reset) the connection: the end is there to be read even
    /// when a read before it comes back short.
    pub fn ready(&self) -> impl Iterator<Item = (usize, bool)> + '_ {
        let ended = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
        self.list
            .iter()
            .filter(|e| e.u64 != WAKE)
            .map(move |e| (e.u64 as usize, e.events & ended != 0))
    }
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain system call; the result is checked before use.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        let epoll = owned(epoll)?;
        // SAFETY: as above.
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        let wake = File::from(owned(wake)?);
        let epoll = Epoll { epoll, wake };
        // Level-triggered: it stays ready until `wait` reads it.
        epoll.ctl(
            libc::EPOLL_CTL_ADD,
            epoll.wake.as_raw_fd(),
            libc::EPOLLIN as u32,
            WAKE,
        )?;
        Ok(epoll)
    }

    /// Registers `source` under `key`. Closing the source (never duplicated
    /// by the engine) removes it again.
    pub fn add(&self, source: &impl AsFd, key: usize, interest: Interest) -> io::Result<()> {
        let fd = source.as_fd().as_raw_fd();
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest.flags(), key as u64)
    }

    /// Arms `source` for one more event. Readiness that is already there is
    /// reported at once, so nothing that happened while disarmed is lost.
    pub fn rearm(&self, source: &impl AsFd, key: usize, interest: Interest) -> io::Result<()> {
        let fd = source.as_fd().as_raw_fd();
        self.ctl(libc::EPOLL_CTL_MOD, fd, interest.flags(), key as u64)
    }

    /// A descriptor of this epoll itself, which is readable while any of
    /// its sources is ready: another epoll can wait on it without taking
    /// its events.
    pub fn share(&self) -> io::Result<OwnedFd> {
        self.epoll.try_clone()
    }

    pub fn delete(&self, source: &impl AsFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, source.as_fd().as_raw_fd(), 0, 0)
    }

    /// Waits until a registered source is ready, [`Epoll::notify`] is called,
    /// or `timeout` passes (never, when `None`).
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.list.clear();
        // Rounded up so that a sub-millisecond timeout does not spin.
        let ms = timeout.map_or(-1, |t| {
            t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
        });
        let capacity = events.list.capacity().min(i32::MAX as usize) as i32;
        // SAFETY: the kernel writes at most `capacity` events into the
        // vector's spare capacity, and reports how many it wrote.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.list.as_mut_ptr(),
                capacity,
                ms,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the first `n` events were initialised by the kernel.
        unsafe { events.list.set_len(n as usize) };
        if events.list.iter().any(|e| e.u64 == WAKE) {
            let mut counter = [0u8; 8];
            let _ = (&self.wake).read(&mut counter);
        }
        Ok(())
    }

    /// Wakes the thread in [`Epoll::wait`], or the next one to call it.
    pub fn notify(&self) -> io::Result<()> {
        match (&self.wake).write(&1u64.to_ne_bytes()) {
            // The counter is full: a wake-up is pending anyway.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other.map(drop),
        }
    }

    fn ctl(&self, op: libc::c_int, fd: libc::c_int, flags: u32, key: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: flags,
            u64: key,
        };
        // SAFETY: `event` outlives the call; the kernel only reads it.
        let rc = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Takes ownership of a descriptor a system call returned, or its error.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn one_shot_interest_fires_once_until_rearmed() {
        let epoll = Epoll::new().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        epoll.add(&server, 7, Interest::Read).unwrap();
        client.write_all(b"x").unwrap();
        let mut events = Events::with_capacity(8);
        epoll
            .wait(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(events.keys().collect::<Vec<_>>(), [7]);
        epoll
            .wait(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        assert_eq!(events.keys().count(), 0, "disarmed interest fired again");
        // The byte is still unread: re-arming reports it at once.
        epoll.rearm(&server, 7, Interest::Read).unwrap();
        epoll
            .wait(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(events.keys().collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn notify_wakes_the_waiter_without_a_key() {
        let epoll = Epoll::new().unwrap();
        epoll.notify().unwrap();
        let mut events = Events::with_capacity(8);
        epoll
            .wait(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        // Woken by the wake-up itself, not by the end of the wait.
        let woken: Vec<u64> = events.list.iter().map(|e| e.u64).collect();
        assert_eq!(woken, [WAKE]);
        assert_eq!(events.keys().count(), 0);
        // The wake-up was consumed: the next wait times out.
        epoll
            .wait(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        assert_eq!(events.list.len(), 0);
    }
}
