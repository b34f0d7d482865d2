//! Errors a user fixes in their YAML: each names the file, the line and column, the field path, and
//! what was expected.

use std::fmt;
use std::path::PathBuf;

/// A position in a manifest file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct SourcePos {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for SourcePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem in the manifests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub pos: SourcePos,
    /// Dotted field path inside the document, e.g. `spec.ports[1]`; empty for the document itself.
    pub field: String,
    pub message: String,
    /// A second place involved in the problem (the other definition of a duplicate name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related: Option<SourcePos>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.pos)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)?;
        // Most messages name the other place already; say it once.
        if let Some(related) = &self.related
            && !self.message.contains(&related.to_string())
        {
            write!(f, " (see also {related})")?;
        }
        Ok(())
    }
}

/// Every problem found in a set of manifests; a set with any of them applies nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
    pub(crate) fn sort(&mut self) {
        self.0
            .sort_by(|a, b| a.pos.cmp(&b.pos).then_with(|| a.message.cmp(&b.message)));
        self.0.dedup();
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(
            f,
            "{n} error{} in the manifests; nothing was applied",
            if n == 1 { "" } else { "s" }
        )
    }
}
