#![doc = include_str!("../README.md")]

pub mod jwt;
pub mod password;
pub mod refresh;

pub use jwt::{Claims, JwtIssuer, JwtVerifier, Role, TokenError};
pub use password::{PasswordError, check_policy, hash_password, hashing_saturated, verify_password};
