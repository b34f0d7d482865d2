//! The Server controller: system info and preparation (skeleton; being written).
