//! Access tokens: EdDSA (Ed25519) JWTs.

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
    pub jti: Uuid,
    pub role: Role,
}

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

/// Verifies access tokens; holds only the public key.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
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
        validation.leeway = 5;
        Ok(Self { key, validation })
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        decode::<Claims>(token, &self.key, &self.validation).map(|data| data.claims).map_err(|err| match err.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })
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
            exp: iat + i64::try_from(self.ttl.as_secs()).unwrap_or(3600),
            iat,
            jti: Uuid::now_v7(),
            role,
        };
        encode(&Header::new(Algorithm::EdDSA), &claims, &self.key).map_err(|_| TokenError::Invalid)
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
        let claims = verifier.verify(&token).unwrap_or_else(|e| panic!("{e}"));
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
        assert_eq!(verifier.verify(&token.unwrap_or_default()), Err(TokenError::Expired));
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
            assert_eq!(verifier.verify(&token), Err(TokenError::Invalid));
        }
    }

    #[test]
    fn unsigned_and_tampered_tokens_are_refused() {
        let (issuer, verifier) = pair();
        let token = issuer.issue(Uuid::new_v4(), Role::User, Utc::now()).unwrap_or_default();
        let parts: Vec<&str> = token.split('.').collect();
        // alg: none with the same claims and no signature.
        let none = format!("{}.{}.", b64url(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
        assert_eq!(verifier.verify(&none), Err(TokenError::Invalid));
        // HS256 "signed" with the public key as the secret: the algorithm-confusion attack.
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &verifier_claims(&token, &verifier),
            &EncodingKey::from_secret(PUBLIC.as_bytes()),
        )
        .unwrap_or_default();
        assert_eq!(verifier.verify(&hs), Err(TokenError::Invalid));
        // The role changed from user to admin, signature kept.
        let forged_claims =
            String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap_or_default())
                .unwrap_or_default()
                .replace("\"user\"", "\"admin\"");
        let forged = format!("{}.{}.{}", parts[0], b64url(forged_claims.as_bytes()), parts[2]);
        assert_eq!(verifier.verify(&forged), Err(TokenError::Invalid));
        assert_eq!(verifier.verify("not.a.token"), Err(TokenError::Invalid));
        assert_eq!(verifier.verify(""), Err(TokenError::Invalid));
    }

    fn verifier_claims(token: &str, verifier: &JwtVerifier) -> Claims {
        verifier.verify(token).unwrap_or_else(|e| panic!("{e}"))
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
}
