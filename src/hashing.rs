//! Digests used for evidence files, model identity and signed deliveries.

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// sha256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// HMAC-SHA256 of `body` under `key`, hex (the `X-Dumpwatch-Signature` value after `sha256=`).
pub fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `key`, compared in
/// constant time.
pub fn verify_signature(key: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(given) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Some(given) = decode_hex(given) else {
        return false;
    };
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let sig = format!("sha256={}", hmac_sha256_hex(b"k", b"body"));
        assert!(verify_signature(b"k", b"body", &sig));
        assert!(!verify_signature(b"k", b"body!", &sig));
        assert!(!verify_signature(b"other", b"body", &sig));
        assert!(!verify_signature(b"k", b"body", "md5=00"));
        assert!(!verify_signature(b"k", b"body", "sha256=zz"));
    }
}
