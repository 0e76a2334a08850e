#![doc = include_str!("../README.md")]

pub mod db;
pub mod migrate;
pub mod redis;

pub use db::{DbConn, DbError, DbPool};
pub use redis::Redis;
