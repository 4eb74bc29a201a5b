//! The framing of the journal: each record is `length` (u32, little-endian),
//! `crc` (CRC-32 of the length's four bytes and the payload, u32,
//! little-endian), then `length` bytes of payload. Reading tells a torn tail
//! (a write that never finished, so was never acknowledged) from damage (a
//! frame that was whole once and is wrong now): only a frame whose checksum
//! holds is ever handed on.

/// The bytes before each payload.
pub const HEADER: usize = 8;
/// The largest payload written or read. A record holds one lease (at most 64
/// ports and a 128-character owner: well under 4 KiB); anything longer is
/// not dynport's.
pub const MAX_PAYLOAD: usize = 64 << 10;

/// CRC-32 (IEEE 802.3, reflected, as zlib and gzip compute it), one table
/// made at compile time.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32_update(!0, bytes) ^ !0
}

fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
}

/// The checksum of a frame: over its length field and its payload, so that
/// a length changed by damage is caught too.
fn frame_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    crc32_update(crc32_update(!0, &len), payload) ^ !0
}

/// Appends the frame of `payload` to `out`. The caller keeps payloads
/// under [`MAX_PAYLOAD`].
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&frame_crc(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// How the frames of a journal ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Every byte belongs to a whole frame.
    Clean,
    /// The last frame is incomplete (or only zeros follow the last good
    /// frame, as a file extended but not written leaves it): a write that
    /// never finished. `at` is where it starts.
    Torn { at: usize },
    /// A frame that is whole but wrong, with more after it, or a length no
    /// frame has. `at` is where it starts.
    Damaged { at: usize, why: &'static str },
}

/// The frames of `bytes`, in order, up to the first one that is torn or
/// damaged. Yields `(offset, payload)`; [`Frames::end`] says how it ended.
pub struct Frames<'a> {
    bytes: &'a [u8],
    at: usize,
    end: Option<End>,
}

impl<'a> Frames<'a> {
    pub fn new(bytes: &'a [u8]) -> Frames<'a> {
        Frames {
            bytes,
            at: 0,
            end: None,
        }
    }

    /// Where the good frames end: the length a journal is cut back to.
    pub fn good_len(&self) -> usize {
        self.at
    }

    /// How reading ended; `None` until it has.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// What the frame at the current offset is.
    fn next_frame(&self) -> Result<&'a [u8], End> {
        let at = self.at;
        let rest = &self.bytes[at..];
        if rest.is_empty() {
            return Err(End::Clean);
        }
        let torn = End::Torn { at };
        if rest.iter().all(|&b| b == 0) || rest.len() < HEADER {
            return Err(torn);
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len as usize > MAX_PAYLOAD {
            let why = "a frame longer than any record";
            return Err(End::Damaged { at, why });
        }
        let Some(payload) = rest.get(HEADER..HEADER + len as usize) else {
            return Err(torn);
        };
        if frame_crc(len.to_le_bytes(), payload) == crc {
            return Ok(payload);
        }
        if rest.len() == HEADER + payload.len() {
            // The last frame, whole in length but not in content: its
            // pages reached the disk in part. Never acknowledged.
            return Err(torn);
        }
        let why = "a frame whose checksum does not match";
        Err(End::Damaged { at, why })
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<(usize, &'a [u8])> {
        if self.end.is_some() {
            return None;
        }
        match self.next_frame() {
            Ok(payload) => {
                let at = self.at;
                self.at += HEADER + payload.len();
                Some((at, payload))
            }
            Err(end) => {
                self.end = Some(end);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode(p, &mut out);
        }
        out
    }

    fn read(bytes: &[u8]) -> (Vec<Vec<u8>>, End) {
        let mut frames = Frames::new(bytes);
        let payloads = frames.by_ref().map(|(_, p)| p.to_vec()).collect();
        (payloads, frames.end().cloned().unwrap())
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn frames_round_trip() {
        let bytes = framed(&[b"one", b"", b"three"]);
        let (payloads, end) = read(&bytes);
        assert_eq!(payloads, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
        assert_eq!(end, End::Clean);
    }

    #[test]
    fn every_cut_of_the_last_frame_is_a_torn_tail() {
        let bytes = framed(&[b"first", b"second record"]);
        let second = HEADER + 5;
        for cut in second + 1..bytes.len() {
            let (payloads, end) = read(&bytes[..cut]);
            assert_eq!(payloads, vec![b"first".to_vec()], "cut at {cut}");
            assert_eq!(end, End::Torn { at: second }, "cut at {cut}");
        }
    }

    #[test]
    fn a_garbled_last_frame_is_torn_but_a_garbled_middle_is_damage() {
        let mut bytes = framed(&[b"first", b"second", b"third"]);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let (payloads, end) = read(&bytes);
        assert_eq!(payloads.len(), 2);
        assert_eq!(
            end,
            End::Torn {
                at: 2 * HEADER + 11
            }
        );
        let mut bytes = framed(&[b"first", b"second", b"third"]);
        bytes[HEADER + 5 + HEADER] ^= 1;
        let (payloads, end) = read(&bytes);
        assert_eq!(payloads, vec![b"first".to_vec()]);
        assert!(matches!(end, End::Damaged { at: 13, .. }), "{end:?}");
    }

    #[test]
    fn zeros_after_the_last_frame_are_a_torn_tail() {
        let mut bytes = framed(&[b"first"]);
        bytes.extend_from_slice(&[0; 100]);
        let (payloads, end) = read(&bytes);
        assert_eq!(payloads, vec![b"first".to_vec()]);
        assert_eq!(end, End::Torn { at: HEADER + 5 });
    }

    #[test]
    fn a_changed_length_is_caught() {
        let mut bytes = framed(&[b"first", b"second", b"third"]);
        bytes[0] = 4;
        let (payloads, end) = read(&bytes);
        assert!(payloads.is_empty());
        assert!(matches!(end, End::Damaged { at: 0, .. }), "{end:?}");
        let mut bytes = framed(&[b"first"]);
        bytes[3] = 0x80;
        let (_, end) = read(&bytes);
        assert!(matches!(end, End::Damaged { at: 0, .. }), "{end:?}");
    }
}
