//! The stable key hash that hash-range rules partition.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a over the bytes of `key`.
pub(crate) fn fnv1a64(key: &[u8]) -> u64 {
    key.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// The MurmurHash3 64-bit finalizer: spreads every input bit over every output bit.
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The stable 64-bit hash of a key that [`Rule::HashRanges`](crate::Rule::HashRanges) partitions.
///
/// It is `fmix64(fnv1a64(key))`: 64-bit FNV-1a over the raw key bytes, then
/// the MurmurHash3 64-bit finalizer so that short keys spread over the whole
/// `u64` space (plain FNV-1a leaves the high bits of short keys clustered).
///
/// Every replica must compute the same owner for a key, on every version, so
/// this function must never change; test vectors in this crate pin it.
///
/// ```
/// use concord_ownership::key_hash;
/// assert_eq!(key_hash(b"user:42"), key_hash(b"user:42"));
/// assert_ne!(key_hash(b"user:42"), key_hash(b"user:43"));
/// ```
pub fn key_hash(key: &[u8]) -> u64 {
    fmix64(fnv1a64(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn fmix64_fixes_zero() {
        assert_eq!(fmix64(0), 0);
    }
}
