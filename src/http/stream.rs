//! A connection's socket: TCP or the server's Unix socket. Both are served
//! alike; only how the peer is identified differs.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

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

/// The uid owning the client's end of `stream`, when that end is a socket
/// of this host: from loopback, or from one of the host's own addresses.
pub(crate) fn tcp_owner(stream: &TcpStream) -> Option<u32> {
    let (peer, local) = (stream.peer_addr().ok()?, stream.local_addr().ok()?);
    let ip = peer.ip().to_canonical();
    if !ip.is_loopback() && ip != local.ip().to_canonical() {
        return None;
    }
    crate::scan::tcp_socket_uid(peer, local).unwrap_or_else(|e| {
        log::debug!("cannot look up the owner of {peer}: {e}");
        None
    })
}
