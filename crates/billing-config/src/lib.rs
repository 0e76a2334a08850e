#![doc = include_str!("../README.md")]

mod dotenv;
mod error;
mod loader;
mod secret;
mod settings;

pub use error::ConfigError;
pub use loader::{Layers, Loader};
pub use secret::Secret;
pub use settings::{
    AppEnv, DatabaseSettings, GatewaySettings, HttpSettings, JwtSettings, LogFormat, LogSettings, RedisSettings,
    ServiceKind, ServiceSettings, Settings, SigningSecrets,
};
