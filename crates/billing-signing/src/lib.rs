#![doc = include_str!("../README.md")]

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header carrying the event or request id.
pub const ID_HEADER: &str = "x-webhook-id";
/// The header carrying the unix timestamp (seconds).
pub const TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
/// The header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-webhook-signature";
/// How far the timestamp may be from the verifier's clock, either way.
pub const TOLERANCE_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// Why a signed request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("a signature header is missing")]
    MissingHeader,
    #[error("the timestamp is not a unix time in seconds")]
    BadTimestamp,
    #[error("the timestamp is outside the allowed window")]
    StaleTimestamp,
    #[error("the signature does not match")]
    InvalidSignature,
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Webhook-Signature` value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, &timestamp.to_string(), body).finalize().into_bytes();
    format!("sha256={}", hex::encode(digest))
}

/// The three headers of a signed request: id, timestamp and the signature of `signed` (the raw body, or the
/// request line for a GET) at `timestamp`.
pub fn headers(secret: &[u8], timestamp: i64, id: &str, signed: &[u8]) -> [(&'static str, String); 3] {
    [
        (ID_HEADER, id.to_owned()),
        (TIMESTAMP_HEADER, timestamp.to_string()),
        (SIGNATURE_HEADER, sign(secret, timestamp, signed)),
    ]
}

/// Verifies a request: the timestamp header within ±300 s of `now`, and the signature header matching `body`
/// under one of `secrets` (compared in constant time).
pub fn verify(
    secrets: &[&[u8]],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else { return Err(VerifyError::MissingHeader) };
    let sent: i64 = timestamp.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    // `abs_diff` cannot overflow, whatever the caller put in the header (i64::MIN included).
    if now.abs_diff(sent) > TOLERANCE_SECS.unsigned_abs() {
        return Err(VerifyError::StaleTimestamp);
    }
    // Exactly `sha256=` and 64 lower-case hex digits: an upper-case or prefix-less value is refused.
    let Some(hex_part) = signature.strip_prefix("sha256=") else { return Err(VerifyError::InvalidSignature) };
    if hex_part.len() != 64 || !hex_part.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(VerifyError::InvalidSignature);
    }
    let Ok(expected) = hex::decode(hex_part) else { return Err(VerifyError::InvalidSignature) };
    for secret in secrets {
        // `verify_slice` compares in constant time.
        if mac(secret, timestamp.trim(), body).verify_slice(&expected).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::InvalidSignature)
}

/// The header of gateway events, in Stripe's scheme.
pub const STRIPE_SIGNATURE_HEADER: &str = "stripe-signature";

/// `Stripe-Signature: t=<timestamp>,v1=<hex>`: the same HMAC-SHA256 over `"<timestamp>.<raw body>"` as ours, in the
/// header layout Stripe uses for its events.
pub fn stripe_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, &timestamp.to_string(), body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(digest))
}

/// Verifies a `Stripe-Signature` header: its `t` within ±300 s of `now` and one of its `v1` values (a sender may
/// list several while rotating) matching `body` under one of `secrets`. Other schemes (`v0`) are ignored.
pub fn verify_stripe(secrets: &[&[u8]], header: Option<&str>, body: &[u8], now: i64) -> Result<(), VerifyError> {
    let header = header.ok_or(VerifyError::MissingHeader)?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) if timestamp.is_none() => timestamp = Some(t),
            Some(("v1", v1)) => candidates.push(v1),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else { return Err(VerifyError::BadTimestamp) };
    if candidates.is_empty() {
        return Err(VerifyError::InvalidSignature);
    }
    let mut last = Err(VerifyError::InvalidSignature);
    for v1 in candidates.into_iter().take(8) {
        last = verify(secrets, Some(timestamp), Some(&format!("sha256={v1}")), body, now);
        if last.is_ok() || matches!(last, Err(VerifyError::BadTimestamp | VerifyError::StaleTimestamp)) {
            return last;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret_0123456789abcdef";
    const BODY: &[u8] = br#"{"event_id":"evt_1","event_type":"payment.succeeded"}"#;
    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    #[test]
    fn headers_carry_the_id_the_timestamp_and_a_verifiable_signature() {
        let [id, timestamp, signature] = headers(b"secret", 1_700_000_000, "evt_1", b"{}");
        assert_eq!((id.0, id.1.as_str()), (ID_HEADER, "evt_1"));
        assert_eq!((timestamp.0, timestamp.1.as_str()), (TIMESTAMP_HEADER, "1700000000"));
        assert_eq!(signature.0, SIGNATURE_HEADER);
        assert_eq!(verify(&[b"secret"], Some(&timestamp.1), Some(&signature.1), b"{}", 1_700_000_000), Ok(()));
    }

    #[test]
    fn a_fixed_test_vector() {
        // HMAC-SHA256(key = SECRET, "1767225600." + BODY), computed independently (Python's hmac module).
        assert_eq!(sign(SECRET, NOW, BODY), "sha256=154916ea96e46eb42d00d9d0f41e58cfee7fae8baef60e523459528854180639");
    }

    #[test]
    fn a_signed_body_verifies() {
        let sig = sign(SECRET, NOW, BODY);
        assert_eq!(verify(&[SECRET], Some(&NOW.to_string()), Some(&sig), BODY, NOW), Ok(()));
        assert_eq!(verify(&[SECRET], Some(&NOW.to_string()), Some(&sig), BODY, NOW + 299), Ok(()), "inside the window");
    }

    #[test]
    fn missing_empty_and_truncated_signatures_are_refused() {
        let ts = NOW.to_string();
        let sig = sign(SECRET, NOW, BODY);
        assert_eq!(verify(&[SECRET], None, Some(&sig), BODY, NOW), Err(VerifyError::MissingHeader));
        assert_eq!(verify(&[SECRET], Some(&ts), None, BODY, NOW), Err(VerifyError::MissingHeader));
        assert_eq!(verify(&[SECRET], Some(&ts), Some(""), BODY, NOW), Err(VerifyError::InvalidSignature));
        assert_eq!(verify(&[SECRET], Some(&ts), Some("sha256="), BODY, NOW), Err(VerifyError::InvalidSignature));
        assert_eq!(
            verify(&[SECRET], Some(&ts), Some(&sig[..sig.len() - 2]), BODY, NOW),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn upper_case_or_prefix_less_signatures_are_refused() {
        let ts = NOW.to_string();
        let sig = sign(SECRET, NOW, BODY);
        let upper = format!("sha256={}", sig["sha256=".len()..].to_uppercase());
        assert_eq!(verify(&[SECRET], Some(&ts), Some(&upper), BODY, NOW), Err(VerifyError::InvalidSignature));
        assert_eq!(
            verify(&[SECRET], Some(&ts), Some(&sig["sha256=".len()..]), BODY, NOW),
            Err(VerifyError::InvalidSignature)
        );
        assert_eq!(
            verify(&[SECRET], Some(&ts), Some(&sig.replace("sha256", "sha512")), BODY, NOW),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let old = NOW - 301;
        assert_eq!(
            verify(&[SECRET], Some(&old.to_string()), Some(&sign(SECRET, old, BODY)), BODY, NOW),
            Err(VerifyError::StaleTimestamp)
        );
        let future = NOW + 301;
        assert_eq!(
            verify(&[SECRET], Some(&future.to_string()), Some(&sign(SECRET, future, BODY)), BODY, NOW),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            verify(&[SECRET], Some("yesterday"), Some(&sign(SECRET, NOW, BODY)), BODY, NOW),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn extreme_timestamps_are_stale_not_a_panic() {
        let sig = sign(SECRET, NOW, BODY);
        for ts in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX] {
            assert_eq!(
                verify(&[SECRET], Some(&ts.to_string()), Some(&sig), BODY, NOW),
                Err(VerifyError::StaleTimestamp),
                "{ts}"
            );
        }
        // The verifier's own clock at either end of i64 does not overflow either.
        for now in [i64::MIN, i64::MAX] {
            assert_eq!(
                verify(&[SECRET], Some(&NOW.to_string()), Some(&sig), BODY, now),
                Err(VerifyError::StaleTimestamp)
            );
        }
    }

    #[test]
    fn a_body_changed_by_one_byte_or_a_moved_timestamp_is_refused() {
        let sig = sign(SECRET, NOW, BODY);
        let mut tampered = BODY.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            verify(&[SECRET], Some(&NOW.to_string()), Some(&sig), &tampered, NOW),
            Err(VerifyError::InvalidSignature)
        );
        // The same signature presented with another timestamp (to dodge the window) does not verify.
        assert_eq!(
            verify(&[SECRET], Some(&(NOW + 1).to_string()), Some(&sig), BODY, NOW),
            Err(VerifyError::InvalidSignature)
        );
        // Whitespace re-serialisation is a different body.
        let respaced = br#"{"event_id": "evt_1","event_type":"payment.succeeded"}"#;
        assert_eq!(
            verify(&[SECRET], Some(&NOW.to_string()), Some(&sig), respaced, NOW),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn every_active_secret_verifies_during_rotation() {
        let old: &[u8] = b"old-secret-old-secret-old-secret-01";
        let new: &[u8] = b"new-secret-new-secret-new-secret-02";
        let ts = NOW.to_string();
        for signer in [old, new] {
            let sig = sign(signer, NOW, BODY);
            assert_eq!(verify(&[new, old], Some(&ts), Some(&sig), BODY, NOW), Ok(()));
        }
        assert_eq!(
            verify(&[new], Some(&ts), Some(&sign(old, NOW, BODY)), BODY, NOW),
            Err(VerifyError::InvalidSignature),
            "a retired secret fails"
        );
    }

    #[test]
    fn stripe_signatures_round_trip_and_refuse_tampering() {
        let header = stripe_signature(SECRET, NOW, BODY);
        assert!(header.starts_with(&format!("t={NOW},v1=")), "{header}");
        assert_eq!(verify_stripe(&[SECRET], Some(&header), BODY, NOW), Ok(()));
        // Several v1 values (rotation) and an unknown scheme beside them.
        let other = stripe_signature(b"another secret of enough length!!", NOW, BODY);
        let both = format!("{},v0=abc,{}", other, header.split_once(',').map(|(_, v)| v).unwrap_or(""));
        assert_eq!(verify_stripe(&[SECRET], Some(&both), BODY, NOW), Ok(()));
        assert_eq!(verify_stripe(&[SECRET], Some(&header), b"{}", NOW), Err(VerifyError::InvalidSignature));
        assert_eq!(verify_stripe(&[SECRET], Some(&header), BODY, NOW + 301), Err(VerifyError::StaleTimestamp));
        assert_eq!(verify_stripe(&[SECRET], None, BODY, NOW), Err(VerifyError::MissingHeader));
        assert_eq!(verify_stripe(&[SECRET], Some("v1=00"), BODY, NOW), Err(VerifyError::BadTimestamp));
        assert_eq!(verify_stripe(&[SECRET], Some(&format!("t={NOW}")), BODY, NOW), Err(VerifyError::InvalidSignature));
    }

    /// Fuzzing of the header parsers and the verifier (proptest: no nightly toolchain here for cargo-fuzz). The
    /// corpus of hand-picked inputs lives in `fuzz/corpus.txt`; the random cases are bounded so CI stays quick.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const CORPUS: &str = include_str!("../fuzz/corpus.txt");

        #[test]
        fn the_corpus_never_panics_and_never_verifies_a_wrong_signature() {
            for line in CORPUS.lines().filter(|l| !l.starts_with('#')) {
                let (ts, sig) = line.split_once('\t').unwrap_or((line, ""));
                let result = verify(&[SECRET], Some(ts), Some(sig), BODY, NOW);
                // Only the exact signature of BODY at NOW may pass, and only with a timestamp that parses to NOW.
                if result.is_ok() {
                    assert_eq!(ts.trim().parse::<i64>().ok(), Some(NOW), "{line:?}");
                    assert_eq!(sig, sign(SECRET, NOW, BODY), "{line:?}");
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 4096, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_headers_never_panic(ts in ".{0,40}", sig in ".{0,90}", body in proptest::collection::vec(any::<u8>(), 0..256), now in any::<i64>()) {
                let _ = verify(&[SECRET], Some(&ts), Some(&sig), &body, now);
            }

            #[test]
            fn arbitrary_stripe_headers_never_panic(header in ".{0,120}", now in any::<i64>()) {
                let _ = verify_stripe(&[SECRET], Some(&header), BODY, now);
            }

            #[test]
            fn arbitrary_integer_timestamps_are_judged_by_distance(sent in any::<i64>(), now in any::<i64>()) {
                let sig = sign(SECRET, sent, BODY);
                let result = verify(&[SECRET], Some(&sent.to_string()), Some(&sig), BODY, now);
                let inside = now.abs_diff(sent) <= TOLERANCE_SECS.unsigned_abs();
                prop_assert_eq!(result, if inside { Ok(()) } else { Err(VerifyError::StaleTimestamp) });
            }

            #[test]
            fn a_signature_verifies_only_its_own_body(body in proptest::collection::vec(any::<u8>(), 0..512), flip in any::<usize>()) {
                let sig = sign(SECRET, NOW, &body);
                prop_assert_eq!(verify(&[SECRET], Some(&NOW.to_string()), Some(&sig), &body, NOW), Ok(()));
                if !body.is_empty() {
                    let mut tampered = body.clone();
                    tampered[flip % body.len()] ^= 0x01;
                    prop_assert_eq!(verify(&[SECRET], Some(&NOW.to_string()), Some(&sig), &tampered, NOW), Err(VerifyError::InvalidSignature));
                }
            }
        }
    }
}
