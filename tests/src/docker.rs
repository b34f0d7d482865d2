//! Docker engine for tests.
