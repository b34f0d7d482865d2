//! Facts about a document that typed deserialization does not keep, read from its YAML events
//! (granit-parser, the parser under serde-saphyr) in one pass each: the text of plain scalars as
//! written, scalars over the size limit, and the byte range of one mapping entry.
//!
//! Byte offsets here are those of the document text serde-saphyr parsed, so they match the
//! [`serde_saphyr::Location`] spans of its values.

use std::collections::HashMap;
use std::ops::Range;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

/// The text of every plain scalar of `doc`, by the byte offset where it starts.
///
/// A plain scalar such as `1.50` or `0x1F` is what the user wrote; YAML's type resolution (which
/// would read them as 1.5 and 31) must not reach fields whose meaning is text.
pub(crate) fn plain_scalar_texts(doc: &str) -> HashMap<usize, String> {
    let mut out = HashMap::new();
    for item in Parser::new_from_str(doc) {
        let Ok((event, span)) = item else { break };
        if let Event::Scalar(text, ScalarStyle::Plain, ..) = event
            && let Some(start) = span.start.byte_offset()
        {
            out.insert(start, text.into_owned());
        }
    }
    out
}

/// A place in the document (1-based line and column) and a size found there.
pub(crate) struct Measured {
    pub line: u64,
    pub column: u64,
    pub bytes: usize,
}

/// What a size scan of a document found.
pub(crate) struct Sizes {
    /// Scalars longer than the per-scalar limit.
    pub oversized: Vec<Measured>,
    /// Where the document, with its aliases expanded, first grew past the per-document limit,
    /// and the size it reached there.
    pub expanded_over: Option<Measured>,
}

/// Scans `doc` for scalars over `max_scalar` bytes and for a document that, with every alias
/// expanded, exceeds `max_expanded`: an alias copies its anchor's node, so a small file can stand
/// for gigabytes (a "billion laughs" alias bomb). The expanded size counts scalar bytes plus one
/// per node, so bombs of empty collections count too. Only events are read, no alias is
/// expanded, so the scan costs what parsing the text costs.
pub(crate) fn scan_sizes(doc: &str, max_scalar: usize, max_expanded: usize) -> Sizes {
    let mut sizes = Sizes {
        oversized: Vec::new(),
        expanded_over: None,
    };
    // Expanded size of each anchored node, and of the anchored collections still open (anchor
    // id, total when it opened, nesting depth it opened at).
    let mut anchor_size: HashMap<usize, usize> = HashMap::new();
    let mut open: Vec<(usize, usize, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut total = 0usize;
    for item in Parser::new_from_str(doc) {
        let Ok((event, span)) = item else { break };
        let at = |bytes| Measured {
            line: span.start.line() as u64,
            column: span.start.col() as u64 + 1,
            bytes,
        };
        match &event {
            Event::Scalar(text, _, anchor, _) => {
                if text.len() > max_scalar {
                    sizes.oversized.push(at(text.len()));
                }
                let size = text.len() + 1;
                total = total.saturating_add(size);
                if *anchor != 0 {
                    anchor_size.insert(*anchor, size);
                }
            }
            Event::Alias(id) => {
                total = total.saturating_add(anchor_size.get(id).copied().unwrap_or(1));
            }
            Event::MappingStart(_, anchor, _) | Event::SequenceStart(_, anchor, _) => {
                total = total.saturating_add(1);
                depth += 1;
                if *anchor != 0 {
                    open.push((*anchor, total - 1, depth));
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(&(anchor, start, at_depth)) = open.last()
                    && at_depth == depth
                {
                    anchor_size.insert(anchor, total - start);
                    open.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        if total > max_expanded && sizes.expanded_over.is_none() {
            sizes.expanded_over = Some(at(total));
            break;
        }
    }
    sizes
}

/// A mapping entry found by the position of its key or of its value.
pub(crate) struct Entry {
    /// Bytes from the key's first character to the value's last.
    pub range: Range<usize>,
    /// Whether it is the only entry of its mapping (removing it leaves the mapping empty).
    pub only_entry: bool,
}

enum Open {
    Mapping {
        expecting_key: bool,
        keys: usize,
        /// Where the last key seen is (bytes).
        last_key: Range<usize>,
    },
    Sequence,
}

/// Which node at the position to take when a key and a value start at the same place (a block
/// mapping and its first key do).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum At {
    /// The entry whose key is there (an unknown or repeated key).
    Key,
    /// The entry whose value starts there (a value of the wrong type or shape).
    Value,
}

/// The mapping entry whose key or value (as `at` says) starts at (line, column) (1-based).
pub(crate) fn entry_at(doc: &str, line: u64, column: u64, at: At) -> Option<Entry> {
    let target = (line, column);
    let mut events = Parser::new_from_str(doc);
    let mut stack: Vec<Open> = Vec::new();
    // Find the entry: where its key starts, whether it is the first of its mapping, and the
    // value's first event when that is what matched.
    let (key, first_of_mapping, mut end, mut pending) = loop {
        let (event, span) = events.next()?.ok()?;
        let pos = (span.start.line() as u64, span.start.col() as u64 + 1);
        let range = span.byte_range()?;
        let is_node = matches!(
            event,
            Event::Scalar(..)
                | Event::Alias(..)
                | Event::MappingStart(..)
                | Event::SequenceStart(..)
        );
        if is_node
            && let Some(Open::Mapping {
                expecting_key,
                keys,
                last_key,
            }) = stack.last_mut()
        {
            if *expecting_key {
                *keys += 1;
                *last_key = range.clone();
                if at == At::Key && pos == target && matches!(event, Event::Scalar(..)) {
                    break (range.clone(), *keys == 1, range.end, None);
                }
            } else if at == At::Value && pos == target {
                break (
                    last_key.clone(),
                    *keys == 1,
                    range.end,
                    Some((event, range)),
                );
            }
            *expecting_key = !*expecting_key;
        }
        match event {
            Event::MappingStart(..) => stack.push(Open::Mapping {
                expecting_key: true,
                keys: 0,
                last_key: 0..0,
            }),
            Event::SequenceStart(..) => stack.push(Open::Sequence),
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            _ => {}
        }
    };
    // The value: one scalar or alias, or a whole collection.
    let mut depth = 0usize;
    loop {
        let (event, range) = match pending.take() {
            Some(first) => first,
            None => {
                let (event, span) = events.next()?.ok()?;
                (event, span.byte_range()?)
            }
        };
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                depth += 1;
                end = end.max(range.end);
            }
            Event::MappingEnd | Event::SequenceEnd => {
                // A flow collection ends at its bracket; a block one at the next token, which
                // is not part of the value.
                if !range.is_empty() {
                    end = end.max(range.end);
                }
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            Event::Scalar(..) | Event::Alias(..) => {
                end = end.max(range.end);
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    // An empty value has no extent of its own: the entry runs at least through the `:`.
    let after_key = doc.get(key.end..).unwrap_or_default();
    let spaces = after_key.len() - after_key.trim_start_matches([' ', '\t']).len();
    if after_key[spaces..].starts_with(':') {
        end = end.max(key.end + spaces + 1);
    }
    // A key after it means the mapping has other entries.
    let mut only_entry = first_of_mapping;
    if only_entry {
        for item in events {
            let Ok((event, _)) = item else { break };
            match event {
                Event::Scalar(..)
                | Event::Alias(..)
                | Event::MappingStart(..)
                | Event::SequenceStart(..) => {
                    only_entry = false;
                    break;
                }
                Event::MappingEnd => break,
                _ => {}
            }
        }
    }
    Some(Entry {
        range: key.start..end,
        only_entry,
    })
}

/// Replaces `range` of `text` with spaces, keeping line breaks, so every other byte keeps its
/// offset and line.
pub(crate) fn blank(text: &mut String, range: Range<usize>) {
    let blanked: String = text[range.clone()]
        .bytes()
        .map(|b| if b == b'\n' { '\n' } else { ' ' })
        .collect();
    text.replace_range(range, &blanked);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_keep_their_text() {
        let doc = "a: 1.50\nb: \"q\"\nc: 0x1F\n";
        let texts = plain_scalar_texts(doc);
        assert_eq!(texts.get(&3).map(String::as_str), Some("1.50"));
        assert_eq!(texts.get(&18).map(String::as_str), Some("0x1F"));
        assert!(!texts.values().any(|t| t == "q"));
    }

    #[test]
    fn entries_are_found_by_their_key_and_blanked_whole() {
        let doc = "spec:\n  image: x\n  imagee:\n    deep: [1, 2]\n  ports: []\n";
        let entry = entry_at(doc, 3, 3, At::Key).expect("entry");
        assert!(!entry.only_entry);
        let mut text = doc.to_string();
        blank(&mut text, entry.range);
        assert_eq!(
            text,
            "spec:\n  image: x\n         \n                \n  ports: []\n"
        );
        let flow = "env: {A: {secret: x}}\n";
        let entry = entry_at(flow, 1, 11, At::Key).expect("flow entry");
        assert!(entry.only_entry);
        let mut text = flow.to_string();
        blank(&mut text, entry.range);
        assert_eq!(text, "env: {A: {         }}\n");
        assert!(
            entry_at(doc, 2, 10, At::Key).is_none(),
            "a value is not a key"
        );
        // By its value: a block mapping starts where its first key does.
        let entry = entry_at(doc, 4, 5, At::Value).expect("by value");
        assert_eq!(&doc[entry.range], "imagee:\n    deep: [1, 2]");
        let entry = entry_at(doc, 2, 3, At::Value).expect("spec by value");
        assert_eq!(
            &doc[entry.range],
            "spec:\n  image: x\n  imagee:\n    deep: [1, 2]\n  ports: []"
        );
    }
}
