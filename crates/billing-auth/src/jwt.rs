//! Access tokens: EdDSA (Ed25519) JWTs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use billing_config::JwtSettings;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// Not before: the issue time; a token carrying a later one is refused until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// A UUIDv7: its timestamp (milliseconds) orders the token against a revocation of the user's tokens.
    pub jti: Uuid,
    pub role: Role,
}

impl Claims {
    /// When the token was made, to the millisecond (from the UUIDv7 `jti`; `iat` only has seconds).
    pub fn issued_at_ms(&self) -> i64 {
        match self.jti.get_timestamp() {
            Some(ts) => {
                let (secs, nanos) = ts.to_unix();
                i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000) + i64::from(nanos / 1_000_000)
            }
            None => self.iat.saturating_mul(1000),
        }
    }
}

/// The longest lifetime a token may claim (`exp - iat`): the largest `JWT_TTL_SECS` allowed.
pub const MAX_TOKEN_LIFETIME_SECS: i64 = 86_400;
/// Clock skew tolerated between the issuing and the verifying process.
const LEEWAY_SECS: i64 = 5;

/// Why a token or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
    #[error("{key}: {reason}")]
    Key { key: &'static str, reason: String },
}

// SubjectPublicKeyInfo header of an Ed25519 key; the raw 32-byte key follows it.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
// PKCS#8 header of an Ed25519 private key (version 0, no public key); the 32-byte seed follows it.
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

fn decode_key(key: &'static str, b64: &str, prefix: &[u8]) -> Result<Vec<u8>, TokenError> {
    let der = STANDARD.decode(b64.trim()).map_err(|_| TokenError::Key { key, reason: "not base64".to_owned() })?;
    if der.len() != prefix.len() + 32 || !der.starts_with(prefix) {
        return Err(TokenError::Key {
            key,
            reason: "not a base64 DER Ed25519 key (see env-manager.sh secrets)".to_owned(),
        });
    }
    Ok(der)
}

/// Tokens whose signature, issuer and audience were checked, kept with their claims. A client sends the same
/// token with every request until it expires, and checking an Ed25519 signature was the largest part of a read's
/// CPU; a token is found here only by its exact text, and its times are still judged at every request.
const VERIFIED_TOKENS: usize = 10_000;

/// Verifies access tokens; holds only the public key.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    verified: Arc<Mutex<HashMap<Box<str>, Claims>>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// From the configured public key, issuer and audience.
    pub fn from_settings(settings: &JwtSettings) -> Result<Self, TokenError> {
        let der = decode_key("JWT_PUBLIC_KEY", &settings.public_key, &ED25519_SPKI_PREFIX)?;
        let key = DecodingKey::from_ed_der(&der[ED25519_SPKI_PREFIX.len()..]);
        // Only EdDSA is accepted: `alg: none` and algorithm switching fail here.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // The times are checked in `verify` against the service's clock (which tests can move), not the machine's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Ok(Self { key, validation, verified: Arc::default() })
    }

    /// The claims of a valid token at `now`: signed by our key for our issuer and audience, issued no later than
    /// now, valid from `nbf`, not expired, and living no longer than [`MAX_TOKEN_LIFETIME_SECS`].
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        let claims = self.signed_claims(token)?;
        let now = now.timestamp();
        let from_the_future = claims.iat > now + LEEWAY_SECS || claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS);
        let lifetime = claims.exp.saturating_sub(claims.iat);
        if from_the_future || lifetime <= 0 || lifetime > MAX_TOKEN_LIFETIME_SECS {
            return Err(TokenError::Invalid);
        }
        if claims.exp <= now - LEEWAY_SECS {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// The claims of a token signed by our key for our issuer and audience (its times not judged yet).
    fn signed_claims(&self, token: &str) -> Result<Claims, TokenError> {
        if let Some(claims) = self.verified.lock().ok().and_then(|known| known.get(token).cloned()) {
            return Ok(claims);
        }
        let claims = decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| TokenError::Invalid)?;
        if let Ok(mut known) = self.verified.lock() {
            // Expired tokens leave with everything else when it fills up: a bound, not an eviction policy.
            if known.len() >= VERIFIED_TOKENS {
                known.clear();
            }
            known.insert(token.into(), claims.clone());
        }
        Ok(claims)
    }
}

/// Issues access tokens; holds the private key (subscription service only).
#[derive(Clone)]
pub struct JwtIssuer {
    key: EncodingKey,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl std::fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtIssuer").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl JwtIssuer {
    /// From the configured private key; fails when this process was given none.
    pub fn from_settings(settings: &JwtSettings) -> Result<Self, TokenError> {
        let private = settings
            .private_key
            .as_ref()
            .ok_or(TokenError::Key { key: "JWT_PRIVATE_KEY", reason: "is not set".to_owned() })?;
        let der = decode_key("JWT_PRIVATE_KEY", private.expose(), &ED25519_PKCS8_PREFIX)?;
        Ok(Self {
            key: EncodingKey::from_ed_der(&der),
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            ttl: settings.ttl,
        })
    }

    /// How long an access token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `user` with `role`, issued at `now`.
    pub fn issue(&self, user: Uuid, role: Role, now: DateTime<Utc>) -> Result<String, TokenError> {
        let iat = now.timestamp();
        let claims = Claims {
            sub: user,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: iat + i64::try_from(self.ttl.as_secs()).unwrap_or(3600).min(MAX_TOKEN_LIFETIME_SECS),
            iat,
            nbf: Some(iat),
            jti: Uuid::now_v7(),
            role,
        };
        encode(&Header::new(Algorithm::EdDSA), &claims, &self.key).map_err(|_| TokenError::Invalid)
    }
}

/// Checks the configured keys at boot: the public key parses and, where this process also holds the private key
/// (the subscription service), the two belong together, so every token it issues verifies everywhere.
pub fn check_keys(settings: &JwtSettings) -> Result<(), TokenError> {
    let verifier = JwtVerifier::from_settings(settings)?;
    if settings.private_key.is_none() {
        return Ok(());
    }
    let issuer = JwtIssuer::from_settings(settings)?;
    let now = Utc::now();
    let probe = issuer.issue(Uuid::nil(), Role::User, now)?;
    match verifier.verify(&probe, now) {
        Ok(_) => Ok(()),
        Err(_) => Err(TokenError::Key {
            key: "JWT_PUBLIC_KEY",
            reason: "does not belong to JWT_PRIVATE_KEY: tokens this service issues would not verify".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use billing_config::Secret;

    // The test environment's public development keys (config/environments/test.env).
    const PRIVATE: &str = "MC4CAQAwBQYDK2VwBCIEINh858aAkgygywp7uWisAHeYG289VznIU0c479TI9QBq";
    const PUBLIC: &str = "MCowBQYDK2VwAyEAiHD7eVGw4KBqis9yRm4U+FGGZOIKbwlD6KTgx1mAFPY=";
    // The development pair: a valid key that is not the test one.
    const OTHER_PRIVATE: &str = "MC4CAQAwBQYDK2VwBCIEIAuUWcC3K5DOTIEWdypqNfNkRbpGo93t/HGKMLoQejw1";

    fn settings(private: &str, issuer: &str, audience: &str) -> JwtSettings {
        JwtSettings {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl: Duration::from_secs(3600),
            private_key: Some(Secret::new(private.to_owned())),
            public_key: PUBLIC.to_owned(),
        }
    }

    fn pair() -> (JwtIssuer, JwtVerifier) {
        let s = settings(PRIVATE, "iss", "aud");
        (
            JwtIssuer::from_settings(&s).unwrap_or_else(|e| panic!("{e}")),
            JwtVerifier::from_settings(&s).unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn b64url(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn issued_tokens_verify_with_every_claim() {
        let (issuer, verifier) = pair();
        let user = Uuid::new_v4();
        let now = Utc::now();
        let token = issuer.issue(user, Role::Admin, now).unwrap_or_else(|e| panic!("{e}"));
        let claims = verifier.verify(&token, now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((claims.sub, claims.role), (user, Role::Admin));
        assert_eq!((claims.iss.as_str(), claims.aud.as_str()), ("iss", "aud"));
        assert_eq!(claims.exp - claims.iat, 3600);
        let header = jsonwebtoken::decode_header(&token).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(header.alg, Algorithm::EdDSA);
    }

    #[test]
    fn expired_tokens_are_refused() {
        let (issuer, verifier) = pair();
        let token = issuer.issue(Uuid::new_v4(), Role::User, Utc::now() - chrono::Duration::hours(2));
        assert_eq!(verifier.verify(&token.unwrap_or_default(), Utc::now()), Err(TokenError::Expired));
    }

    #[test]
    fn wrong_issuer_audience_or_key_are_refused() {
        let (_, verifier) = pair();
        let now = Utc::now();
        for s in [
            settings(PRIVATE, "other", "aud"),
            settings(PRIVATE, "iss", "other"),
            settings(OTHER_PRIVATE, "iss", "aud"),
        ] {
            let issuer = JwtIssuer::from_settings(&s).unwrap_or_else(|e| panic!("{e}"));
            let token = issuer.issue(Uuid::new_v4(), Role::User, now).unwrap_or_default();
            assert_eq!(verifier.verify(&token, now), Err(TokenError::Invalid));
        }
    }

    #[test]
    fn unsigned_and_tampered_tokens_are_refused() {
        let (issuer, verifier) = pair();
        let token = issuer.issue(Uuid::new_v4(), Role::User, Utc::now()).unwrap_or_default();
        let parts: Vec<&str> = token.split('.').collect();
        // alg: none with the same claims and no signature.
        let none = format!("{}.{}.", b64url(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
        assert_eq!(verifier.verify(&none, Utc::now()), Err(TokenError::Invalid));
        // HS256 "signed" with the public key as the secret: the algorithm-confusion attack.
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &verifier_claims(&token, &verifier),
            &EncodingKey::from_secret(PUBLIC.as_bytes()),
        )
        .unwrap_or_default();
        assert_eq!(verifier.verify(&hs, Utc::now()), Err(TokenError::Invalid));
        // The role changed from user to admin, signature kept.
        let forged_claims =
            String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap_or_default())
                .unwrap_or_default()
                .replace("\"user\"", "\"admin\"");
        let forged = format!("{}.{}.{}", parts[0], b64url(forged_claims.as_bytes()), parts[2]);
        assert_eq!(verifier.verify(&forged, Utc::now()), Err(TokenError::Invalid));
        assert_eq!(verifier.verify("not.a.token", Utc::now()), Err(TokenError::Invalid));
        assert_eq!(verifier.verify("", Utc::now()), Err(TokenError::Invalid));
    }

    fn verifier_claims(token: &str, verifier: &JwtVerifier) -> Claims {
        verifier.verify(token, Utc::now()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Signs arbitrary claims with the test key, as an attacker holding a leaked key or a buggy issuer would.
    fn signed(claims: &serde_json::Value) -> String {
        let der = decode_key("JWT_PRIVATE_KEY", PRIVATE, &ED25519_PKCS8_PREFIX).unwrap_or_default();
        encode(&Header::new(Algorithm::EdDSA), claims, &EncodingKey::from_ed_der(&der)).unwrap_or_default()
    }

    #[test]
    fn tokens_from_the_future_or_living_too_long_are_refused() {
        let (_, verifier) = pair();
        let now = Utc::now().timestamp();
        let claims = |iat: i64, nbf: Option<i64>, exp: i64| {
            let mut c = serde_json::json!({"sub": Uuid::new_v4(), "iss": "iss", "aud": "aud", "iat": iat, "exp": exp,
                "jti": Uuid::now_v7(), "role": "admin"});
            if let Some(nbf) = nbf {
                c["nbf"] = nbf.into();
            }
            c
        };
        let at = Utc::now();
        assert!(verifier.verify(&signed(&claims(now, Some(now), now + 3600)), at).is_ok(), "a normal token");
        for (what, c) in [
            ("iat a day ahead", claims(now + 86_400, None, now + 90_000)),
            ("nbf an hour ahead", claims(now, Some(now + 3600), now + 7200)),
            ("exp ten years away", claims(now, None, now + 10 * 365 * 86_400)),
            ("exp before iat", claims(now, None, now - 1)),
        ] {
            assert_eq!(verifier.verify(&signed(&c), at), Err(TokenError::Invalid), "{what}");
        }
    }

    #[test]
    fn issued_tokens_carry_nbf_and_a_v7_jti_ordering_them() {
        let (issuer, verifier) = pair();
        let before = Utc::now().timestamp_millis();
        let token = issuer.issue(Uuid::new_v4(), Role::User, Utc::now()).unwrap_or_default();
        let claims = verifier.verify(&token, Utc::now()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claims.nbf, Some(claims.iat));
        assert!((before..=Utc::now().timestamp_millis()).contains(&claims.issued_at_ms()));
    }

    #[test]
    fn a_private_key_and_a_public_key_of_another_pair_are_refused_together() {
        assert_eq!(check_keys(&settings(PRIVATE, "iss", "aud")), Ok(()));
        let err = check_keys(&settings(OTHER_PRIVATE, "iss", "aud"));
        assert!(matches!(err, Err(TokenError::Key { key: "JWT_PUBLIC_KEY", .. })), "{err:?}");
        let mut verify_only = settings(OTHER_PRIVATE, "iss", "aud");
        verify_only.private_key = None;
        assert_eq!(check_keys(&verify_only), Ok(()), "the payment service holds no private key");
    }

    #[test]
    fn malformed_keys_name_the_setting() {
        let mut s = settings("bm90IGEga2V5", "iss", "aud");
        assert!(matches!(JwtIssuer::from_settings(&s), Err(TokenError::Key { key: "JWT_PRIVATE_KEY", .. })));
        s.public_key = "!!!".to_owned();
        assert!(matches!(JwtVerifier::from_settings(&s), Err(TokenError::Key { key: "JWT_PUBLIC_KEY", .. })));
        s.private_key = None;
        assert!(matches!(JwtIssuer::from_settings(&s), Err(TokenError::Key { key: "JWT_PRIVATE_KEY", .. })));
    }

    #[test]
    fn a_token_verified_before_is_still_judged_by_its_text_and_its_times() {
        let (issuer, verifier) = pair();
        let now = Utc::now();
        let token = issuer.issue(Uuid::new_v4(), Role::User, now).unwrap_or_default();
        assert!(verifier.verify(&token, now).is_ok());
        assert!(verifier.verify(&token, now).is_ok(), "known now, and still valid");
        // The same signature under other claims: not the token that was verified.
        let parts: Vec<&str> = token.split('.').collect();
        let claims =
            String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap_or_default())
                .unwrap_or_default()
                .replace("\"user\"", "\"admin\"");
        let forged = format!("{}.{}.{}", parts[0], b64url(claims.as_bytes()), parts[2]);
        assert_ne!(forged, token);
        assert_eq!(verifier.verify(&forged, now), Err(TokenError::Invalid));
        // Its times are judged at each request, known or not.
        assert_eq!(verifier.verify(&token, now + chrono::Duration::hours(2)), Err(TokenError::Expired));
        assert_eq!(verifier.verify(&token, now - chrono::Duration::hours(1)), Err(TokenError::Invalid));
    }
}
