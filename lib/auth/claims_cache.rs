//! The verifier's cache of successful verifications (see [`ClaimsCache`]),
//! generic over what a verification yields (the verifier's `Identity`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Successful verifications keyed by SHA-256 of the token (PostgREST-style),
/// so repeated requests with the same token skip signature checks.
/// Failures are never stored: a rejected token is re-checked every time.
/// A full cache makes room for each new entry by dropping the expired ones
/// first (swept at most once per [`SWEEP_INTERVAL`]), else a small share of
/// the others ([`EVICTED_SHARE`]): an instance that sees more distinct
/// tokens than it holds keeps most of them, where emptying the whole cache
/// at once would send them all back to verification together. And a full
/// cache with nothing expired stores a token only on its second
/// verification ([`SeenOnce`]): a token used once would displace one that
/// comes back, at the cost of an eviction, a copy and a store into memory
/// the processor seldom has at hand.
pub(super) struct ClaimsCache<V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<Entries<V>>,
}

struct Entries<V> {
    by_digest: ByDigest<V>,
    /// A full cache looks for expired entries again only from then on: a
    /// sweep reads every entry, and a busy instance is full on every miss.
    next_sweep: Instant,
    /// The tokens a full cache turned away once.
    seen_once: SeenOnce,
}

/// The tokens verified once while the cache was full, as one bit each of a
/// fixed set (8 KiB), picked by their digest: a token whose bit is set is
/// stored on its next verification. Two tokens may share a bit, so now and
/// then a token is stored on its first; that costs the cache one entry, never
/// a verification. When half the bits are set the set starts again, so it
/// remembers the last 32,768 or so tokens turned away.
struct SeenOnce {
    bits: Box<[u64; SEEN_ONCE_BITS / 64]>,
    set: usize,
}

const SEEN_ONCE_BITS: usize = 1 << 16;

impl SeenOnce {
    fn new() -> Self {
        Self {
            bits: Box::new([0; SEEN_ONCE_BITS / 64]),
            set: 0,
        }
    }

    /// Whether `digest`'s bit was set already; sets it if not.
    fn check_and_set(&mut self, digest: &[u8; 32]) -> bool {
        // Bytes the table's hash does not use (its first eight), though
        // any of a digest's bytes would do.
        let bit = usize::from(u16::from_le_bytes([digest[8], digest[9]]));
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if self.bits[word] & mask != 0 {
            return true;
        }
        if self.set >= SEEN_ONCE_BITS / 2 {
            self.bits.fill(0);
            self.set = 0;
        }
        self.bits[word] |= mask;
        self.set += 1;
        false
    }
}

/// How often at most a full cache sweeps its expired entries: often enough
/// that live entries are seldom dropped while expired ones wait (entries live
/// 30 s by default), rarely enough that reading 10,000 entries costs nothing
/// measurable.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A new entry in a full cache with nothing expired drops 1/`EVICTED_SHARE`
/// of its entries (at least one): the first in the table's order, as good
/// as any and found without an order of insertion kept beside the entries
/// (about a third more memory for the cache when full). Dropped one at a
/// time, each first entry was found further along than the last, as the
/// table's start emptied: an instance serving more distinct tokens than it
/// holds read more of the table on every request (`scripts/count-instructions`
/// with the cache full, README: Benchmark). A 32nd at once reads that far
/// once per 312 new entries of a 10,000-entry cache.
const EVICTED_SHARE: usize = 32;

/// Each token's identity and when it leaves the cache, by the token's digest.
type ByDigest<V> = HashMap<[u8; 32], (V, Instant), BuildHasherDefault<DigestPrefix>>;

/// The cache's hash of a key: its first eight bytes. The keys are SHA-256
/// digests of the tokens already, so hashing them again (the default
/// SipHash, twice per request) buys nothing; and only verified tokens are
/// stored, so nobody can fill one bucket with keys of their choosing.
#[derive(Default)]
struct DigestPrefix(u64);

impl Hasher for DigestPrefix {
    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 32]` hashes as its length, then its bytes: the length
        // is the same for every key, and the bytes are the hash.
        if let Some(prefix) = bytes.first_chunk::<8>() {
            self.0 = u64::from_le_bytes(*prefix);
        }
    }

    fn write_usize(&mut self, _length: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

impl<V: Clone> ClaimsCache<V> {
    pub(super) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(Entries {
                by_digest: HashMap::default(),
                next_sweep: Instant::now(),
                seen_once: SeenOnce::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<V>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn get(&self, digest: &[u8; 32]) -> Option<V> {
        if self.capacity == 0 {
            return None;
        }
        let entries = &mut self.lock().by_digest;
        match entries.get(digest) {
            Some((identity, expires)) if Instant::now() < *expires => Some(identity.clone()),
            Some(_) => {
                entries.remove(digest);
                None
            }
            None => None,
        }
    }

    /// Stores for min(ttl, time left until `exp`); in a full cache, in place
    /// of the expired entries or else, for a token verified once before,
    /// of a share of the others. The identity is copied only if stored.
    pub(super) fn insert(&self, digest: [u8; 32], identity: &V, until_exp: Duration) {
        let ttl = self.ttl.min(until_exp);
        if self.capacity == 0 || ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut guard = self.lock();
        let Entries {
            by_digest: entries,
            next_sweep,
            seen_once,
        } = &mut *guard;
        if entries.len() >= self.capacity && !entries.contains_key(&digest) {
            if now >= *next_sweep {
                entries.retain(|_, (_, expires)| now < *expires);
                *next_sweep = now + SWEEP_INTERVAL;
            }
            if entries.len() >= self.capacity {
                if !seen_once.check_and_set(&digest) {
                    return;
                }
                // Taken out as the table is walked, not looked up again by key.
                entries
                    .extract_if(|_, _| true)
                    .take((self.capacity / EVICTED_SHARE).max(1))
                    .for_each(drop);
            }
        }
        entries.insert(digest, (identity.clone(), now + ttl));
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().by_digest.len()
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use sha2::{Digest, Sha256};

    use super::*;

    /// What the cache holds for a token: the verifier's `Identity`, here a
    /// user's id alone.
    fn identity(user: &str) -> String {
        user.to_owned()
    }

    #[test]
    fn a_digest_hashes_as_its_first_eight_bytes() {
        let digest: [u8; 32] = Sha256::digest(b"a token").into();
        let hash = BuildHasherDefault::<DigestPrefix>::default().hash_one(digest);
        assert_eq!(hash, u64::from_le_bytes(digest[..8].try_into().unwrap()));
    }

    #[tokio::test]
    async fn keys_that_share_their_first_eight_bytes_stay_apart() {
        let cache = ClaimsCache::new(Duration::from_secs(60), 10);
        let first = [7u8; 32];
        let mut second = first;
        second[31] = 8;
        let minute = Duration::from_secs(60);
        cache.insert(first, &identity("user_first"), minute);
        cache.insert(second, &identity("user_second"), minute);
        assert_eq!(cache.get(&first), Some(identity("user_first")));
        assert_eq!(cache.get(&second), Some(identity("user_second")));
        assert_eq!(cache.get(&[9u8; 32]), None);
    }

    #[tokio::test]
    async fn a_full_cache_makes_room_for_a_token_verified_twice_and_keeps_the_others() {
        let cache = ClaimsCache::new(Duration::from_secs(60), 3);
        let minute = Duration::from_secs(60);
        for n in 0..10u8 {
            let user = format!("user_{n}");
            cache.insert([n; 32], &identity(&user), minute);
            if n >= 3 {
                assert_eq!(
                    cache.get(&[n; 32]),
                    None,
                    "a full cache turns token {n} away once"
                );
                cache.insert([n; 32], &identity(&user), minute);
            }
            assert_eq!(cache.len(), usize::from(n + 1).min(3));
            assert_eq!(cache.get(&[n; 32]), Some(identity(&user)));
        }
        let kept = (0..10u8).filter(|n| cache.get(&[*n; 32]).is_some()).count();
        assert_eq!(kept, 3);
    }

    /// A digest whose bit in [`SeenOnce`] is `bit`, unlike any other's.
    fn digest_with_bit(bit: u16) -> [u8; 32] {
        let mut digest = [0xee; 32];
        digest[..2].copy_from_slice(&bit.to_le_bytes());
        digest[8..10].copy_from_slice(&bit.to_le_bytes());
        digest
    }

    #[tokio::test]
    async fn tokens_verified_once_leave_a_full_cache_as_it_was() {
        let cache = ClaimsCache::new(Duration::from_secs(60), 4);
        let minute = Duration::from_secs(60);
        let kept: Vec<[u8; 32]> = (0..4).map(|n| [n; 32]).collect();
        for digest in &kept {
            cache.insert(*digest, &identity("user_kept"), minute);
        }
        for bit in 0..1_000 {
            cache.insert(digest_with_bit(bit), &identity("user_once"), minute);
        }
        assert_eq!(cache.len(), 4);
        for digest in &kept {
            assert_eq!(cache.get(digest), Some(identity("user_kept")));
        }
    }

    #[tokio::test]
    async fn a_full_cache_forgets_the_tokens_it_turned_away_once_half_its_bits_are_set() {
        let cache = ClaimsCache::new(Duration::from_secs(60), 1);
        let minute = Duration::from_secs(60);
        cache.insert([0; 32], &identity("user_kept"), minute);
        let early = digest_with_bit(60_000);
        cache.insert(early, &identity("user_early"), minute);
        // The early token's bit and others, half of the bits in all.
        let half = u16::try_from(SEEN_ONCE_BITS / 2).unwrap();
        for bit in 0..half - 1 {
            cache.insert(digest_with_bit(bit), &identity("user_once"), minute);
        }
        assert_eq!(cache.get(&[0; 32]), Some(identity("user_kept")));
        // The next new token starts the set again and is its first bit.
        let recent = digest_with_bit(half - 1);
        cache.insert(recent, &identity("user_recent"), minute);
        assert_eq!(cache.get(&recent), None);
        cache.insert(recent, &identity("user_recent"), minute);
        assert_eq!(cache.get(&recent), Some(identity("user_recent")));
        // The early token's bit went with the rest: it counts as new.
        cache.insert(early, &identity("user_early"), minute);
        assert_eq!(cache.get(&early), None);
        cache.insert(early, &identity("user_early"), minute);
        assert_eq!(cache.get(&early), Some(identity("user_early")));
    }

    #[tokio::test]
    async fn a_large_full_cache_drops_a_share_of_its_entries_at_once() {
        let capacity = 4 * EVICTED_SHARE;
        let cache = ClaimsCache::new(Duration::from_secs(60), capacity);
        let minute = Duration::from_secs(60);
        let digest = |n: usize| {
            let digest: [u8; 32] = Sha256::digest(n.to_le_bytes()).into();
            digest
        };
        for n in 0..capacity {
            cache.insert(digest(n), &identity(&format!("user_{n}")), minute);
        }
        assert_eq!(cache.len(), capacity);
        // Each new token verified twice: a full cache stores it the second time.
        let twice = |digest: [u8; 32], user: &str| {
            cache.insert(digest, &identity(user), minute);
            cache.insert(digest, &identity(user), minute);
        };
        twice(digest(capacity), "user_new");
        // Four dropped, the new one stored; the next three need no room.
        assert_eq!(cache.len(), capacity - 4 + 1);
        assert_eq!(cache.get(&digest(capacity)), Some(identity("user_new")));
        for n in 1..=3 {
            twice(digest(capacity + n), "user_more");
        }
        assert_eq!(cache.len(), capacity);
        let kept = (0..capacity).filter(|n| cache.get(&digest(*n)).is_some());
        assert_eq!(kept.count(), capacity - 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_drops_its_expired_entries_before_a_live_one() {
        let cache = ClaimsCache::new(Duration::from_secs(60), 3);
        let (second, minute) = (Duration::from_secs(1), Duration::from_secs(60));
        cache.insert([1; 32], &identity("user_short_1"), second);
        cache.insert([2; 32], &identity("user_long"), minute);
        cache.insert([3; 32], &identity("user_short_3"), second);
        tokio::time::advance(Duration::from_secs(2)).await;

        cache.insert([4; 32], &identity("user_new"), minute);
        assert_eq!(
            cache.len(),
            2,
            "both expired entries are gone, nothing else"
        );
        assert_eq!(cache.get(&[2; 32]), Some(identity("user_long")));
        assert_eq!(cache.get(&[4; 32]), Some(identity("user_new")));
    }

    #[tokio::test]
    async fn storing_a_cached_token_again_in_a_full_cache_drops_nothing() {
        // Two requests with the same new token, verified at once, both store it.
        let cache = ClaimsCache::new(Duration::from_secs(60), 2);
        let minute = Duration::from_secs(60);
        let (twice, other) = ([1u8; 32], [2u8; 32]);
        cache.insert(twice, &identity("user_twice"), minute);
        cache.insert(other, &identity("user_other"), minute);
        cache.insert(twice, &identity("user_twice"), minute);
        assert_eq!(cache.get(&twice), Some(identity("user_twice")));
        assert_eq!(cache.get(&other), Some(identity("user_other")));
        assert_eq!(cache.len(), 2);
    }
}
