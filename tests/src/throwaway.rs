//! A throwaway host with its own sshd for preparation tests (being written).
