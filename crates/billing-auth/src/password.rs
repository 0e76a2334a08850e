//! Password policy and argon2id hashing, always on the blocking pool.

use std::collections::HashSet;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Why a password was refused or could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("must be 8 to 128 characters")]
    Length,
    #[error("must contain at least one letter and one digit")]
    Composition,
    #[error("is too common; choose another")]
    Common,
    #[error("could not hash the password")]
    Hash,
}

const COMMON: &str = include_str!("../data/common-passwords-10k.txt");

fn common_passwords() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().map(|l| l.trim().to_lowercase()).filter(|l| !l.is_empty()).collect())
}

/// 8–128 characters, at least one letter and one digit, not among the 10,000 most common passwords.
pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    let length = password.chars().count();
    if !(8..=128).contains(&length) {
        return Err(PasswordError::Length);
    }
    if !password.chars().any(char::is_alphabetic) || !password.chars().any(|c| c.is_ascii_digit()) {
        return Err(PasswordError::Composition);
    }
    if common_passwords().contains(&password.to_lowercase()) {
        return Err(PasswordError::Common);
    }
    Ok(())
}

fn argon2() -> Argon2<'static> {
    // argon2id, v19, m = 19 MiB, t = 2, p = 1: the OWASP recommendation.
    Argon2::default()
}

/// Hashes `password` (PHC string) on the blocking pool.
pub async fn hash_password(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || {
        argon2().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|_| PasswordError::Hash)
    })
    .await
    .map_err(|_| PasswordError::Hash)?
}

/// A hash of a random password, so that checking an unknown account costs the same as a real one.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let random = uuid::Uuid::new_v4().to_string();
        argon2().hash_password(random.as_bytes()).map(|h| h.to_string()).unwrap_or_default()
    })
}

/// True when `password` matches `hash`. With no hash (unknown account), a decoy hash is checked so the answer
/// takes the same time. Runs on the blocking pool.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| decoy_hash().to_owned());
        let Ok(parsed) = PasswordHash::new(&hash) else { return false };
        argon2().verify_password(password.as_bytes(), &parsed).is_ok() && known
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert_eq!(check_policy("short1"), Err(PasswordError::Length));
        assert_eq!(check_policy(&format!("a1{}", "x".repeat(127))), Err(PasswordError::Length));
        assert_eq!(check_policy("onlyletters"), Err(PasswordError::Composition));
        assert_eq!(check_policy("1234567890"), Err(PasswordError::Composition));
        assert_eq!(check_policy("password1"), Err(PasswordError::Common));
        assert_eq!(check_policy("PASSWORD1"), Err(PasswordError::Common), "case-insensitive");
        assert_eq!(check_policy("correct horse 42 battery"), Ok(()));
        assert_eq!(common_passwords().len(), 10_000 - duplicates_after_lowercasing());
    }

    fn duplicates_after_lowercasing() -> usize {
        COMMON.lines().count() - COMMON.lines().map(str::to_lowercase).collect::<HashSet<_>>().len()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_at_owasp_parameters_and_verify() {
        let hash = hash_password("correct horse 42".to_owned()).await.unwrap_or_default();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password("correct horse 42".to_owned(), Some(hash.clone())).await);
        assert!(!verify_password("wrong horse 42".to_owned(), Some(hash.clone())).await);
        assert!(!verify_password("correct horse 42".to_owned(), None).await, "an unknown account never verifies");
        let again = hash_password("correct horse 42".to_owned()).await.unwrap_or_default();
        assert_ne!(hash, again, "salted");
    }
}
