//! Retiring a listener without resetting anyone: a listener being replaced
//! first stops completing new handshakes, then the connections already in
//! its queue are accepted and served, then it closes. Closing a listener
//! with connections still queued would reset them, and a client that has
//! connected would see its request fail.

use std::io;
use std::net::TcpListener;

/// Drops every TCP segment that opens a connection (SYN without ACK) sent
/// to `listener`, so no new handshake starts on it, while the final ACKs of
/// handshakes already under way still arrive and queue their connections.
/// A dropped client retries its SYN after a second and by then finds the
/// port closed: it is refused, never reset.
pub fn refuse_new_handshakes(listener: &TcpListener) -> io::Result<()> {
    // Classic BPF over the TCP header: byte 13 holds the flags.
    let mut program = [
        bpf(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 13),
        bpf(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, 0, 0, 0x12),
        bpf(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, 0x02),
        bpf(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
        bpf(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
    ];
    let filter = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // `filter` points at `program`, which lives to the end of this function;
    // the kernel copies the program during the call.
    crate::sys::set_option(listener, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &filter)
}

/// Whether this process may stop new handshakes on a listener: the kernel
/// refuses the filter on a listening TCP socket to an unprivileged process
/// (EPERM). Without it, a live port change goes on accepting on the old
/// port for the last 100 ms, and a client connecting at that moment may be
/// reset when the old listener closes.
pub fn gentle_retire_supported() -> bool {
    TcpListener::bind("127.0.0.1:0").is_ok_and(|l| refuse_new_handshakes(&l).is_ok())
}

fn bpf(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    #[test]
    fn queued_connection_survives_and_new_handshakes_are_dropped() {
        if !gentle_retire_supported() {
            println!(
                "skipped: the kernel refuses SO_ATTACH_FILTER on a listener to this unprivileged process"
            );
            return;
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = TcpStream::connect(addr).unwrap();
        refuse_new_handshakes(&listener).unwrap();
        let late = TcpStream::connect_timeout(&addr, Duration::from_millis(300));
        let err = late.expect_err("a SYN after the filter must get no answer");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        let (mut served, _) = listener.accept().unwrap();
        queued.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        served.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        served.write_all(b"pong").unwrap();
        queued.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
    }
}
