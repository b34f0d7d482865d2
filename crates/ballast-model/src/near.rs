//! Diagnostics about fields that may not be written at all (a default left out, a required
//! block missing): placed at the field when it is written, else at its nearest written
//! ancestor, so the position points at the block to fix instead of the document's first line.

use crate::diagnostic::Diagnostic;
use crate::loader::DocContext;
use crate::path_at::locate;

/// A diagnostic about the field at `segments`, named by its whole path, placed at the nearest
/// of it and its ancestors that is written in the document.
pub(crate) fn diag_near(
    ctx: &DocContext,
    segments: &[&str],
    message: impl Into<String>,
) -> Diagnostic {
    let mut d = ctx.diag_at_path(segments, message);
    for len in (1..=segments.len()).rev() {
        if let Some((line, column)) = locate(&ctx.text, &segments[..len]) {
            d.pos = ctx.pos(line, column);
            break;
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_to_the_nearest_written_ancestor() {
        let ctx = DocContext {
            file: "plan.yaml".into(),
            first_line: 3,
            text: "kind: X\nspec:\n  policy:\n    maxConcurrent: 2\n".into(),
        };
        let d = diag_near(&ctx, &["spec", "policy", "timeouts", "task"], "m");
        assert_eq!((d.pos.line, d.pos.column), (5, 3));
        assert_eq!(d.field, "spec.policy.timeouts.task");
        let d = diag_near(&ctx, &["spec", "policy", "maxConcurrent"], "m");
        assert_eq!((d.pos.line, d.pos.column), (6, 5));
    }
}
