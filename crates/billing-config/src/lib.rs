#![doc = include_str!("../README.md")]

mod cidr;
mod dotenv;
mod error;
mod loader;
mod secret;
mod settings;

pub use cidr::Cidr;
pub use error::ConfigError;
pub use loader::{Layers, Loader};
pub use secret::Secret;
pub use settings::{
    AppEnv, DatabaseSettings, GatewaySettings, HttpSettings, JwtSettings, LimitSettings, LogFormat, LogSettings,
    RedisSettings, ServiceKind, ServiceSettings, Settings, SigningSecrets,
};
