//! The end-to-end tests, in one test binary: the system as processes (`system`, `journeys`, `billing`), and both
//! services with their workers in one process on a test clock (`clocked`: `payments`, `billing_cycle`,
//! `simulation`).

mod common;

mod billing;
mod billing_cycle;
mod clocked;
mod journeys;
mod payments;
mod seats_and_pause;
mod simulation;
mod snapshots;
mod system;
mod usage_billing;
