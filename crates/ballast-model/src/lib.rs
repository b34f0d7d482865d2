//! The manifest model: what a user writes in YAML, parsed with source locations and validated as a
//! whole set before anything acts on it.
//!
//! Everything here is pure except [`load_dir`], which reads the manifest files (within the size
//! limits of [`limits`]); the types, the
//! value parsers (ports, volumes, memory sizes) and the validators are tested from tables of cases.

pub mod app;
pub mod bmc;
mod diagnostic;
pub mod firmware;
pub mod limits;
mod loader;
mod manifest;
mod near;
mod path_at;
pub mod proxmox;
mod scan;
pub mod schema;
pub mod server;
pub mod validate;

pub use app::AppSpec;
pub use diagnostic::{Diagnostic, Diagnostics, SourcePos};
pub use loader::{LoadError, ManifestFile, load_dir, manifest_files, parse_source};
pub use manifest::{
    API_VERSION, DesiredResource, DesiredSet, Document, Kind, Metadata, ResourceKey, ResourceSpec,
    spec_hash,
};
pub use serde_saphyr::Spanned;
pub use server::ServerSpec;
pub use validate::validate_set;
