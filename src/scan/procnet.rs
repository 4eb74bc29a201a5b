//! Listening ports from `/proc/net/tcp` and `/proc/net/tcp6`.

use super::Proto;
use crate::ports::PortRange;
use std::fs::File;
use std::io::{self, Read};

/// The `st` column of a listening socket: `TCP_LISTEN`, in hex.
const LISTEN: &[u8] = b"0A";
/// Every read(2) of these files costs the kernel a walk of its socket hash
/// (2 ms for 262,144 buckets on a 24 GB host), so reads must not be small:
/// from an empty buffer `read_to_end` would start with a 32-byte read.
const MIN_CAPACITY: usize = 64 * 1024;

/// Appends to `out` the ports of `range` held in `proto` (TCP listeners,
/// UDP sockets in any state) found in the IPv4 and IPv6 files, reading each
/// into `buf`. A missing IPv6 file means a host without IPv6.
pub(super) fn scan(
    range: PortRange,
    proto: Proto,
    buf: &mut Vec<u8>,
    out: &mut Vec<u16>,
) -> io::Result<()> {
    let (v4, v6, state) = match proto {
        Proto::Tcp => ("/proc/net/tcp", "/proc/net/tcp6", Some(LISTEN)),
        Proto::Udp => ("/proc/net/udp", "/proc/net/udp6", None),
    };
    read_into(v4, buf)?;
    parse_held(buf, range, state, out)?;
    match read_into(v6, buf) {
        Ok(()) => parse_held(buf, range, state, out),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn read_into(path: &str, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    buf.reserve(MIN_CAPACITY);
    File::open(path)?.read_to_end(buf)?;
    Ok(())
}

/// Appends to `out` the local port of every socket in `text` (the contents
/// of `/proc/net/tcp`, `udp` or their IPv6 twins, header line included) that
/// lies in `range` and is in `state` (any state when `None`). A line that
/// does not parse is an error, so that a changed format is noticed rather
/// than read as "nothing listens".
pub(super) fn parse_held(
    text: &[u8],
    range: PortRange,
    state: Option<&[u8]>,
    out: &mut Vec<u16>,
) -> io::Result<()> {
    for line in text.split(|&b| b == b'\n').skip(1) {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (port, line_state) = parse_line(line).ok_or_else(|| {
            let line = String::from_utf8_lossy(line);
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected line in /proc/net: {line:?}"),
            )
        })?;
        if state.is_none_or(|s| s == line_state) && range.contains(port) {
            out.push(port);
        }
    }
    Ok(())
}

/// The local port and the `st` column of one socket line:
/// `sl local_address rem_address st …`, where `local_address` is `ADDR:PORT`
/// in hex.
fn parse_line(line: &[u8]) -> Option<(u16, &[u8])> {
    let mut fields = line
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty());
    let _slot = fields.next()?;
    let local = fields.next()?;
    let _remote = fields.next()?;
    let state = fields.next()?;
    let colon = local.iter().rposition(|&b| b == b':')?;
    let port = std::str::from_utf8(&local[colon + 1..]).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some((port, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1060 1 00000000497707b9 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2211 1 0000000000000000 100 0 0 10 0
   2: 0200007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2212 1 0000000000000000 100 0 0 10 0
   3: 0100007F:1F90 0100007F:D8C2 01 00000000:00000000 00:00000000 00000000  1000        0 2213 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:D8C2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 2214 1 0000000000000000 20 4 30 10 -1
   5: 0100007F:0BB9 0100007F:1F91 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0BBA 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3001 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3002 1 0000000000000000 100 0 0 10 0
   2: 00000000000000000000000001000000:0BBB 00000000000000000000000001000000:E001 01 00000000:00000000 00:00000000 00000000     0        0 3003 1 0000000000000000 20 4 30 10 -1
";

    fn listening(text: &str, start: u16, end: u16) -> Vec<u16> {
        let mut out = Vec::new();
        parse_held(
            text.as_bytes(),
            PortRange { start, end },
            Some(LISTEN),
            &mut out,
        )
        .unwrap();
        out
    }

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  150: 00000000:0BB8 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4001 2 0000000000000000 0
  151: 0100007F:1F90 0100007F:0035 01 00000000:00000000 00:00000000 00000000  1000        0 4002 2 0000000000000000 0
";

    #[test]
    fn proc_net_udp_sample_yields_every_bound_socket() {
        // 0x0BB8 = 3000 bound (07), 0x1F90 = 8080 connected (01): both hold
        // their port.
        let mut out = Vec::new();
        let range = PortRange {
            start: 1,
            end: 65535,
        };
        parse_held(UDP.as_bytes(), range, None, &mut out).unwrap();
        assert_eq!(out, vec![3000, 8080]);
    }

    #[test]
    fn proc_net_tcp_sample_yields_listening_ports_in_file_order() {
        // 0x07E8 = 2024, 0x1F90 = 8080, 0x0BB8 = 3000; the established
        // (01) and TIME_WAIT (06) sockets on 8080, 55490 and 3001 do not count.
        assert_eq!(listening(TCP, 1, 65535), vec![2024, 8080, 3000]);
    }

    #[test]
    fn proc_net_tcp_sample_is_filtered_to_the_range() {
        assert_eq!(listening(TCP, 3000, 9000), vec![8080, 3000]);
        assert_eq!(listening(TCP, 3001, 8079), Vec::<u16>::new());
    }

    #[test]
    fn proc_net_tcp6_sample_yields_listening_ports() {
        // 0x0BBA = 3002 on [::], 0x1F90 = 8080 on [::1]; 0x0BBB is connected.
        assert_eq!(listening(TCP6, 1, 65535), vec![3002, 8080]);
    }

    #[test]
    fn proc_net_header_only_yields_nothing() {
        let header = TCP.lines().next().unwrap();
        assert_eq!(listening(header, 1, 65535), Vec::<u16>::new());
        assert_eq!(listening("", 1, 65535), Vec::<u16>::new());
    }

    #[test]
    fn proc_net_malformed_line_is_an_error() {
        for bad in [
            "   0: 00000000:XYZ 00000000:0000 0A",
            "   0: 0000000007E8 00000000:0000 0A",
            "   0:",
        ] {
            let text = format!("header\n{bad}\n");
            let mut out = Vec::new();
            let err = parse_held(
                text.as_bytes(),
                PortRange {
                    start: 1,
                    end: 65535,
                },
                None,
                &mut out,
            )
            .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{bad}");
        }
    }
}
