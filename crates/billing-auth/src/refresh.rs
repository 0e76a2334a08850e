//! Refresh tokens: random, shown to the client once, stored only as a SHA-256 digest.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new refresh token and the digest to store.
pub fn generate() -> (String, Vec<u8>) {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("rt_{}", URL_SAFE_NO_PAD.encode(bytes));
    let digest = digest(&token);
    (token, digest)
}

/// The digest a token is stored and looked up by.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_stored_as_digests() {
        let (a, da) = generate();
        let (b, _) = generate();
        assert_ne!(a, b);
        assert!(a.starts_with("rt_") && a.len() > 40);
        assert_eq!(da, digest(&a));
        assert_eq!(da.len(), 32);
    }
}
