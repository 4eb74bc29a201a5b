//! A connection's socket: TCP or the server's Unix socket. Both are served
//! alike; only how the peer is identified differs.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use super::{Peer, PeerAddr};

pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// Non-blocking, and for TCP without Nagle's delay.
    pub fn set_up(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(true).and(s.set_nodelay(true)),
            Stream::Unix(s) => s.set_nonblocking(true),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

/// Who is at the other end of a connection just accepted from `addr` (the
/// Unix socket's peer has none): the `SO_PEERCRED` of the Unix socket, or
/// for TCP what `identify_tcp` says of the client's address and the
/// server's (see [`super::Identify`]). Without it (a bare engine) every TCP
/// peer is a remote one.
pub(crate) fn identify(
    stream: &Stream,
    addr: Option<SocketAddr>,
    identify_tcp: Option<super::Identify>,
) -> Peer {
    match (stream, addr) {
        (Stream::Unix(s), _) => {
            let mut peer = Peer::unix();
            match crate::sys::peer_cred(s) {
                Ok((pid, uid)) => (peer.pid, peer.uid) = (Some(pid), Some(uid)),
                Err(e) => log::debug!("no credentials for a Unix socket peer: {e}"),
            }
            peer
        }
        (Stream::Tcp(s), Some(addr)) => {
            let mut peer = Peer {
                addr: PeerAddr::Ip(addr.ip().to_canonical()),
                ..Peer::default()
            };
            if let Some(identify_tcp) = identify_tcp {
                (peer.local, peer.uid) = identify_tcp(s, addr);
            }
            peer
        }
        (Stream::Tcp(_), None) => Peer::default(),
    }
}
