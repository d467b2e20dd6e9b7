//! Digests used for evidence files, model identity, signed deliveries and session tokens.

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

/// sha256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// sha256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha256(bytes))
}

/// HMAC-SHA256 of `body` under `key`, hex.
pub fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

/// The `X-Dumpwatch-Signature` header of a delivery: `t=<unix seconds>,v1=<hex>`, where the hex is
/// the HMAC-SHA256 under `key` of `<t>.<idempotency key>.<body>`. The timestamp and the key are
/// signed with the body, so a captured request cannot be replayed later or under another key.
pub fn sign_delivery(key: &[u8], t: i64, idempotency_key: &str, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hex(&delivery_mac(key, t, idempotency_key, body)
            .finalize()
            .into_bytes())
    )
}

fn delivery_mac(key: &[u8], t: i64, idempotency_key: &str, body: &[u8]) -> hmac::Hmac<Sha256> {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    mac.update(format!("{t}.{idempotency_key}.").as_bytes());
    mac.update(body);
    mac
}

/// Why a delivery's signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No header, or not `t=<digits>,v1=<hex>`.
    #[error("missing or malformed X-Dumpwatch-Signature (expected t=<unix seconds>,v1=<hex>)")]
    Malformed,
    /// The timestamp is further from now than the tolerance.
    #[error(
        "X-Dumpwatch-Signature timestamp {t} is {off} s from now (tolerance {tolerance} s): a replay, or a clock off"
    )]
    Stale {
        /// The signed timestamp.
        t: i64,
        /// Its distance from now, seconds.
        off: i64,
        /// The tolerance, seconds.
        tolerance: i64,
    },
    /// The MAC does not match.
    #[error("wrong X-Dumpwatch-Signature (wrong secret, or the body or key changed)")]
    Mismatch,
}

/// Checks a delivery's `X-Dumpwatch-Signature` (see [`sign_delivery`]) at `now` (unix seconds):
/// the timestamp within `tolerance_s` of now, the MAC compared in constant time.
pub fn verify_delivery(
    key: &[u8],
    header: &str,
    idempotency_key: &str,
    body: &[u8],
    now: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = decode_hex(v),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(SignatureError::Malformed);
    };
    let off = (now - t).abs();
    if off > tolerance_s {
        return Err(SignatureError::Stale {
            t,
            off,
            tolerance: tolerance_s,
        });
    }
    delivery_mac(key, t, idempotency_key, body)
        .verify_slice(&v1)
        .map_err(|_| SignatureError::Mismatch)
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
    }

    #[test]
    fn a_delivery_signature_covers_time_key_and_body_and_expires() {
        let sig = sign_delivery(b"k", 1_764_320_000, "id-1", b"body");
        assert!(sig.starts_with("t=1764320000,v1="), "{sig}");
        // The MAC is that of `t.key.body`: what the city's developers check with openssl.
        assert_eq!(
            sig,
            format!(
                "t=1764320000,v1={}",
                hmac_sha256_hex(b"k", b"1764320000.id-1.body")
            )
        );
        let ok = |h: &str, key: &str, body: &[u8], now: i64| {
            verify_delivery(b"k", h, key, body, now, 300)
        };
        assert_eq!(ok(&sig, "id-1", b"body", 1_764_320_100), Ok(()));
        assert_eq!(
            ok(&sig, "id-1", b"body!", 1_764_320_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            ok(&sig, "id-2", b"body", 1_764_320_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_delivery(b"other", &sig, "id-1", b"body", 1_764_320_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            ok(&sig, "id-1", b"body", 1_764_320_301),
            Err(SignatureError::Stale { off: 301, .. })
        ));
        // The timestamp is signed: moving it forward breaks the MAC.
        let moved = sig.replacen("t=1764320000", "t=1764320400", 1);
        assert_eq!(
            ok(&moved, "id-1", b"body", 1_764_320_400),
            Err(SignatureError::Mismatch)
        );
        for bad in ["", "sha256=00", "t=1,v1=zz", "v1=00", "t=x,v1=00"] {
            assert_eq!(
                ok(bad, "id-1", b"body", 1),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
