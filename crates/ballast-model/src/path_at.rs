//! Finding the field path (`spec.ports[1]`) of a line and column in a YAML document.
//!
//! serde-saphyr reports where a deserialization error happened but not the field path; walking
//! the document's events once recovers it, so every error can name the field as well as the place.

use serde_saphyr::granit_parser::{Event, Parser};

enum Frame {
    Mapping { path: String, key: Option<String>, expecting_key: bool },
    Sequence { path: String, index: usize },
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

/// Returns the path of the node at (line, column) (both 1-based), or of the last node that
/// starts before it. Keys count as their entry's path, so an unknown field is named as such.
pub(crate) fn path_at(doc: &str, line: u64, column: u64) -> String {
    let target = (line, column);
    let mut stack: Vec<Frame> = Vec::new();
    let mut best = String::new();
    for item in Parser::new_from_str(doc) {
        let Ok((event, span)) = item else { break };
        let pos = (span.start.line() as u64, span.start.col() as u64 + 1);
        if pos > target {
            break;
        }
        let is_node = matches!(
            event,
            Event::Scalar(..) | Event::MappingStart(..) | Event::SequenceStart(..) | Event::Alias(..)
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
                Some(Frame::Mapping { path, key, expecting_key }) => {
                    if *expecting_key {
                        let name = match &event {
                            Event::Scalar(text, ..) => text.to_string(),
                            _ => "?".to_string(),
                        };
                        *key = Some(name.clone());
                        *expecting_key = false;
                        best = join_key(path, &name);
                        continue;
                    }
                    *expecting_key = true;
                    join_key(path, key.as_deref().unwrap_or("?"))
                }
            };
            best = node_path.clone();
            match event {
                Event::MappingStart(..) => {
                    stack.push(Frame::Mapping { path: node_path, key: None, expecting_key: true })
                }
                Event::SequenceStart(..) => stack.push(Frame::Sequence { path: node_path, index: 0 }),
                _ => {}
            }
        } else if matches!(event, Event::MappingEnd | Event::SequenceEnd) {
            stack.pop();
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::path_at;

    const DOC: &str = "kind: App\nmetadata:\n  name: web\nspec:\n  image: x\n  ports:\n    - \"80:80\"\n    - bad\n  env:\n    A: b\n";

    #[test]
    fn finds_paths_of_keys_values_and_items() {
        assert_eq!(path_at(DOC, 1, 1), "kind");
        assert_eq!(path_at(DOC, 3, 9), "metadata.name");
        assert_eq!(path_at(DOC, 5, 3), "spec.image");
        assert_eq!(path_at(DOC, 7, 7), "spec.ports[0]");
        assert_eq!(path_at(DOC, 8, 7), "spec.ports[1]");
        assert_eq!(path_at(DOC, 10, 8), "spec.env.A");
    }
}
