//! Test support: starts the real peers the tests need (a Docker engine, PostgreSQL, sshd, a
//! throwaway host) when they are not already running, and makes test images offline. Nothing
//! here is used by product code.

pub mod docker;
pub mod postgres;
pub mod sshd;
pub mod throwaway;
