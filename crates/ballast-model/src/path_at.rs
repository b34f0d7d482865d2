//! Finding the field path (`spec.ports[1]`) of a line and column in a YAML document.
//!
//! serde-saphyr reports where a deserialization error happened but not the field path; walking
//! the document's events once recovers it, so every error can name the field as well as the place.

use serde_saphyr::granit_parser::{Event, Parser};

enum Frame {
    Mapping {
        path: String,
        key: Option<String>,
        expecting_key: bool,
    },
    Sequence {
        path: String,
        index: usize,
    },
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Which node to name when several start at the same place (a mapping and its first key do).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Prefer {
    /// The outermost: the value whose type or shape is wrong.
    Outer,
    /// The innermost: the key that is unknown or repeated.
    Inner,
}

/// Returns the path of the node at (line, column) (both 1-based), or of the last node that
/// starts before it. Keys count as their entry's path, so an unknown field is named as such.
#[cfg(test)]
pub(crate) fn path_at(doc: &str, line: u64, column: u64, prefer: Prefer) -> String {
    path_and_shape_at(doc, line, column, prefer).0
}

/// [`path_at`], and whether the node named is a mapping.
pub(crate) fn path_and_shape_at(
    doc: &str,
    line: u64,
    column: u64,
    prefer: Prefer,
) -> (String, bool) {
    let target = (line, column);
    let mut stack: Vec<Frame> = Vec::new();
    let mut best = String::new();
    let mut best_is_mapping = false;
    let mut exact = false;
    for item in Parser::new_from_str(doc) {
        let Ok((event, span)) = item else { break };
        let pos = (span.start.line() as u64, span.start.col() as u64 + 1);
        if pos > target || (exact && prefer == Prefer::Outer) {
            break;
        }
        exact = pos == target;
        let is_node = matches!(
            event,
            Event::Scalar(..)
                | Event::MappingStart(..)
                | Event::SequenceStart(..)
                | Event::Alias(..)
        );
        if is_node {
            // Path of this node as a value, or as a key of its parent mapping.
            let node_path = match stack.last_mut() {
                None => String::new(),
                Some(Frame::Sequence { path, index }) => {
                    let p = format!("{path}[{index}]");
                    *index += 1;
                    p
                }
                Some(Frame::Mapping {
                    path,
                    key,
                    expecting_key,
                }) => {
                    if *expecting_key {
                        let name = match &event {
                            Event::Scalar(text, ..) => text.to_string(),
                            _ => "?".to_string(),
                        };
                        *key = Some(name.clone());
                        *expecting_key = false;
                        best = join_key(path, &name);
                        best_is_mapping = false;
                        continue;
                    }
                    *expecting_key = true;
                    join_key(path, key.as_deref().unwrap_or("?"))
                }
            };
            best = node_path.clone();
            best_is_mapping = matches!(event, Event::MappingStart(..));
            match event {
                Event::MappingStart(..) => stack.push(Frame::Mapping {
                    path: node_path,
                    key: None,
                    expecting_key: true,
                }),
                Event::SequenceStart(..) => stack.push(Frame::Sequence {
                    path: node_path,
                    index: 0,
                }),
                _ => {}
            }
        } else if matches!(event, Event::MappingEnd | Event::SequenceEnd) {
            stack.pop();
        }
    }
    (best, best_is_mapping)
}

/// Finds where the field at `path` is written (its key for a mapping entry, the item for a
/// sequence element; segments are keys or decimal indexes), for diagnostics about fields that
/// carry no span of their own.
pub(crate) fn locate(doc: &str, path: &[&str]) -> Option<(u64, u64)> {
    // Segments of the node being visited, and per open container where the next child goes.
    enum Open {
        Mapping {
            key: Option<String>,
            expecting_key: bool,
        },
        Sequence {
            index: usize,
        },
    }
    let mut segments: Vec<String> = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    for item in Parser::new_from_str(doc) {
        let Ok((event, span)) = item else { return None };
        let pos = (span.start.line() as u64, span.start.col() as u64 + 1);
        match event {
            Event::Scalar(..)
            | Event::MappingStart(..)
            | Event::SequenceStart(..)
            | Event::Alias(..) => {
                let segment = match stack.last_mut() {
                    None => None,
                    Some(Open::Sequence { index }) => {
                        *index += 1;
                        Some((*index - 1).to_string())
                    }
                    Some(Open::Mapping { key, expecting_key }) => {
                        if *expecting_key {
                            let name = match &event {
                                Event::Scalar(text, ..) => text.to_string(),
                                _ => String::new(),
                            };
                            *expecting_key = false;
                            let mut candidate: Vec<&str> =
                                segments.iter().map(String::as_str).collect();
                            candidate.push(&name);
                            if candidate == path {
                                return Some(pos);
                            }
                            *key = Some(name);
                            continue;
                        }
                        *expecting_key = true;
                        key.clone()
                    }
                };
                let depth = segments.len();
                if let Some(segment) = &segment {
                    segments.push(segment.clone());
                    if segments.iter().map(String::as_str).eq(path.iter().copied()) {
                        return Some(pos);
                    }
                }
                match event {
                    Event::MappingStart(..) => stack.push(Open::Mapping {
                        key: None,
                        expecting_key: true,
                    }),
                    Event::SequenceStart(..) => stack.push(Open::Sequence { index: 0 }),
                    _ => segments.truncate(depth),
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                if !stack.is_empty() {
                    segments.pop();
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{Prefer, locate, path_at};

    const DOC: &str = "kind: App\nmetadata:\n  name: web\nspec:\n  image: x\n  ports:\n    - \"80:80\"\n    - bad\n  env:\n    A: b\n";

    #[test]
    fn finds_paths_of_keys_values_and_items() {
        let inner = |l, c| path_at(DOC, l, c, Prefer::Inner);
        assert_eq!(inner(1, 1), "kind");
        assert_eq!(inner(3, 9), "metadata.name");
        assert_eq!(inner(5, 3), "spec.image");
        assert_eq!(inner(7, 7), "spec.ports[0]");
        assert_eq!(inner(8, 7), "spec.ports[1]");
        assert_eq!(inner(10, 8), "spec.env.A");
        // A mapping and its first key start together: the outer choice names the mapping.
        assert_eq!(path_at(DOC, 5, 3, Prefer::Outer), "spec");
    }

    #[test]
    fn locates_fields_by_path() {
        assert_eq!(locate(DOC, &["spec", "image"]), Some((5, 3)));
        assert_eq!(locate(DOC, &["spec", "ports", "1"]), Some((8, 7)));
        assert_eq!(locate(DOC, &["spec", "env", "A"]), Some((10, 5)));
        assert_eq!(locate(DOC, &["spec", "nope"]), None);
    }
}
