//! The end-to-end tests, in one test binary.

mod billing;
mod journeys;
mod system;
