//! A client's rollout wariness, as fcos-policy-engine computes it: the `rollout_wariness`
//! query parameter when it is a number, otherwise a value derived from `node_uuid`.

/// The smallest derived wariness: a derived value is never 0.0, so only a client that asks
/// for 0.0 is first in line.
const DERIVED_MIN: f64 = 0.000_001;

/// The wariness fcos-policy-engine derives from a node UUID: SipHash-1-3 with zero keys of
/// the string as Rust's `Hash for str` feeds it (its bytes, then `0xff`), that is
/// `std::collections::hash_map::DefaultHasher::new()`, scaled to 0.0..=1.0 by `u64::MAX`
/// and clamped to 0.000001..=1.0.
///
/// Any string is accepted, as by the reference, including the empty one (what a client
/// that sends no `node_uuid` gets). The hash is written out here rather than taken from
/// `DefaultHasher`, whose algorithm std does not promise to keep.
pub fn wariness_from_node_uuid(uuid: &str) -> f64 {
    let digest = siphash13_str(uuid);
    let scaled = digest as f64 / u64::MAX as f64;
    scaled.clamp(DERIVED_MIN, 1.0)
}

/// The wariness for a graph request: `rollout_wariness` when it parses as a number (Rust's
/// `f64` syntax, as the reference), clamped to 0.0..=1.0; otherwise derived from
/// `node_uuid` (absent counts as empty).
///
/// One departure from the reference: `rollout_wariness=NaN` is treated as not a number and
/// falls back to `node_uuid` (the reference lets NaN through, and a NaN wariness sees every
/// rollout, even unstarted ones).
pub fn wariness_for_request(rollout_wariness: Option<&str>, node_uuid: Option<&str>) -> f64 {
    if let Some(Ok(value)) = rollout_wariness.map(str::parse::<f64>) {
        if !value.is_nan() {
            return value.clamp(0.0, 1.0);
        }
    }
    wariness_from_node_uuid(node_uuid.unwrap_or_default())
}

/// SipHash-1-3, keys (0, 0), of `text`'s bytes followed by `0xff`.
fn siphash13_str(text: &str) -> u64 {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(0xff);
    siphash13(0, 0, &bytes)
}

fn siphash13(k0: u64, k1: u64, message: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = message.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let m = u64::from_le_bytes(word);
        v[3] ^= m;
        sip_round(&mut v);
        v[0] ^= m;
    }
    let mut last = [0u8; 8];
    let tail = chunks.remainder();
    last[..tail.len()].copy_from_slice(tail);
    // The length goes in the top byte, modulo 256.
    last[7] = message.len() as u8;
    let b = u64::from_le_bytes(last);
    v[3] ^= b;
    sip_round(&mut v);
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..3 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{DefaultHasher, Hash, Hasher};

    fn std_default_hasher(text: &str) -> u64 {
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn matches_std_default_hasher() {
        // What the reference runs. If std ever changes DefaultHasher this fails, and the
        // written-out hash stays what deployed fcos-policy-engine instances compute.
        let mut inputs: Vec<String> = vec![
            String::new(),
            "a".into(),
            "e0f3745b108f471cbd4883c6fbed8cdd".into(),
            "27e3ac02af3946af995c9940e18b0cce".into(),
            "E0F3745B-108F-471C-BD48-83C6FBED8CDD".into(),
            "ünïcödé".into(),
        ];
        inputs.extend((0..70).map(|n| "x".repeat(n)));
        for input in &inputs {
            assert_eq!(siphash13_str(input), std_default_hasher(input), "{input:?}");
        }
    }

    #[test]
    fn matches_an_independent_siphash13() {
        // CPython 3.11 hashes str with SipHash-1-3; with PYTHONHASHSEED=0 its keys are zero.
        // `PYTHONHASHSEED=0 python3 -c "print(hash(s + '\\xff') & (2**64 - 1))"` gives these.
        assert_eq!(siphash13_str(""), 0x3040_6ea5_23c5_3def);
        assert_eq!(
            siphash13_str("e0f3745b108f471cbd4883c6fbed8cdd"),
            0xa740_33cc_fdce_c67c
        );
        assert_eq!(
            siphash13_str("00000000000000000000000000000000"),
            0x50b4_1179_3041_1200
        );
    }
}
