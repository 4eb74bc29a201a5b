//! WebSocket for the tunnel rows, with the standard library only: an echo
//! backend (a thread of 64 KiB stack per connection: it holds a thousand
//! and more), and the client side that opens tunnels through dynport,
//! checks each handshake, and sends one echo on each.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crate::client::addr;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest frame either side handles: the bench sends short texts.
const MAX_PAYLOAD: usize = 4096;

/// The echo backend on 127.0.0.1; stops accepting when dropped (its
/// connections end when their clients close them).
pub struct EchoServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl EchoServer {
    pub fn start() -> io::Result<EchoServer> {
        let listener = TcpListener::bind(addr(0))?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok(stream) = stream {
                    let spawned = thread::Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(move || serve(stream));
                    if spawned.is_err() {
                        eprintln!("bench: the echo backend could not start a thread");
                    }
                }
            }
        });
        Ok(EchoServer { port, stop })
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(addr(self.port)); // wakes the accept loop
    }
}

/// One connection: the handshake, then every frame echoed until a close
/// frame or the end of the stream.
fn serve(mut stream: TcpStream) {
    let Ok(head) = read_head(&mut stream) else {
        return;
    };
    let Some(key) = header(&head, "sec-websocket-key") else {
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    if stream.write_all(answer.as_bytes()).is_err() {
        return;
    }
    while let Ok((opcode, payload)) = read_frame(&mut stream) {
        if stream.write_all(&frame(opcode, &payload, None)).is_err() || opcode == 8 {
            return;
        }
    }
}

/// Opens `count` tunnels to `Host: host` on 127.0.0.1:`port`, each checked:
/// a 101 whose `Sec-WebSocket-Accept` matches the key sent, so that
/// nothing but the echo backend can have answered.
pub fn open_tunnels(port: u16, host: &str, count: usize) -> io::Result<Vec<TcpStream>> {
    (0..count)
        .map(|n| {
            open_one(port, host, n).map_err(|e| {
                io::Error::other(format!("WebSocket tunnel {} of {count}: {e}", n + 1))
            })
        })
        .collect()
}

fn open_one(port: u16, host: &str, n: usize) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr(port))?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let key = base64(&(n as u128 ^ 0x5eed_0000_0000_0000_0000_0000_0000_0000).to_be_bytes());
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let head = read_head(&mut stream)?;
    let status = head.split(' ').nth(1).unwrap_or("");
    if status != "101" {
        let line = head.lines().next().unwrap_or("");
        let hint = if status == "503" {
            " (dynport counts the tunnels of a user other than root and its own in \
             --max-connections-per-uid: run the bench as root)"
        } else {
            ""
        };
        return Err(io::Error::other(format!(
            "answered {line:?}, not 101{hint}"
        )));
    }
    if header(&head, "sec-websocket-accept") != Some(&accept_key(&key)) {
        return Err(io::Error::other(
            "a 101 with the wrong Sec-WebSocket-Accept",
        ));
    }
    Ok(stream)
}

/// Sends one masked text frame on `stream` and checks that the same text
/// comes back.
pub fn echo(stream: &mut TcpStream, text: &str) -> io::Result<()> {
    stream.write_all(&frame(1, text.as_bytes(), Some([0x6d, 0x61, 0x73, 0x6b])))?;
    let (opcode, payload) = read_frame(stream)?;
    if opcode != 1 || payload != text.as_bytes() {
        return Err(io::Error::other(format!(
            "sent {text:?}, got opcode {opcode} with {:?}",
            String::from_utf8_lossy(&payload)
        )));
    }
    Ok(())
}

/// The request or answer head, read a byte at a time so that nothing after
/// it is taken from the stream.
fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(io::Error::other("a head over 8 KiB"));
        }
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    String::from_utf8(head).map_err(|_| io::Error::other("a head that is not UTF-8"))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, value) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Opcode and unmasked payload of one frame.
fn read_frame(stream: &mut TcpStream) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head)?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext)?;
            usize::from(u16::from_be_bytes(ext))
        }
        127 => return Err(io::Error::other("a frame over 64 KiB")),
        n => usize::from(n),
    };
    if len > MAX_PAYLOAD {
        return Err(io::Error::other(format!("a frame of {len} bytes")));
    }
    let mut mask = [0u8; 4];
    if head[1] & 0x80 != 0 {
        stream.read_exact(&mut mask)?;
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload)?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok((head[0] & 0x0f, payload))
}

/// A final frame: masked (as a client sends) with `mask`.
fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match u16::try_from(payload.len()) {
        Ok(n) if n < 126 => out.push(masked | n as u8),
        Ok(n) => {
            out.push(masked | 126);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Err(_) => unreachable!("frames here are at most MAX_PAYLOAD bytes"),
    }
    let mask = mask.unwrap_or_default();
    if masked != 0 {
        out.extend_from_slice(&mask);
    }
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// `Sec-WebSocket-Accept` for `key` (RFC 6455, 4.2.2).
fn accept_key(key: &str) -> String {
    base64(&sha1(format!("{key}{GUID}").as_bytes()))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// SHA-1 (FIPS 180-4), which the WebSocket handshake needs.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, &wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(wi);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, word) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_is_the_one_of_rfc_6455() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn base64_pads_short_chunks() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    #[test]
    fn echo_backend_answers_the_handshake_and_echoes() {
        let server = EchoServer::start().unwrap();
        let mut tunnels = open_tunnels(server.port, "ws.localhost", 3).unwrap();
        for (n, tunnel) in tunnels.iter_mut().enumerate() {
            echo(tunnel, &format!("echo {n}")).unwrap();
        }
    }
}
