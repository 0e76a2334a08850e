//! End-to-end tests of the whole system as it is deployed: the gateway simulator, both services and both workers,
//! each its own process, started the way `env-manager.sh` starts them (`tests/it`). This library is empty; it
//! exists so the package has a target besides its tests.
