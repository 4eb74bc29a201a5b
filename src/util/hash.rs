//! The one hash dynport defines itself: fixed across builds and cheap.

/// Hashes bytes eight at a time, whatever pieces they come in: a snapshot
/// as it is written (megabytes, at every snapshot and start) and the lease
/// ids of the table's index. Fixed here, unlike std's hasher: a journal
/// names its snapshot by this hash, and outlives the binary that wrote it.
/// It tells one input from the next, not an adversary's: the ids it hashes
/// are dynport's own.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher {
    hash: u64,
    /// Bytes not yet hashed, fewer than eight, and how many.
    tail: [u8; 8],
    tail_len: usize,
    len: u64,
}

impl IdHasher {
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.tail_len > 0 {
            let take = bytes.len().min(8 - self.tail_len);
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&bytes[..take]);
            self.tail_len += take;
            bytes = &bytes[take..];
            if self.tail_len < 8 {
                return;
            }
            self.mix(u64::from_le_bytes(self.tail));
            self.tail_len = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for word in words.by_ref() {
            let mut w = [0; 8];
            w.copy_from_slice(word);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    pub fn finish(mut self) -> u64 {
        self.tail[self.tail_len..].fill(0);
        self.mix(u64::from_le_bytes(self.tail));
        self.mix(self.len);
        // MurmurHash3's finaliser, so every bit of the input reaches every
        // bit of the identity.
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn mix(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// For the table's hash sets of lease ids: many times cheaper than std's
/// SipHash on a 16-character id.
impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }

    fn finish(&self) -> u64 {
        IdHasher::finish(*self)
    }
}
