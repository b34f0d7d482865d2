//! SSH transport to servers (skeleton; being written).
