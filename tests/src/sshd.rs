//! A real sshd for tests (being written).
