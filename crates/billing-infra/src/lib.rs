#![doc = include_str!("../README.md")]

pub mod clock;
pub mod db;
pub mod migrate;
pub mod redis;

pub use clock::{Clock, SharedClock, SystemClock, TestClock};
pub use db::{CachedDsl, DbConn, DbError, DbPool};
pub use redis::Redis;
