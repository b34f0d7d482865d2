//! The JSON Schema of every kind, for editors (yaml-language-server) and `ballast schema`.

use schemars::{JsonSchema, schema_for};
use serde_json::{Value, json};

use crate::app::AppSpec;
use crate::manifest::{API_VERSION, Document};
use crate::server::ServerSpec;

/// The envelope of one kind, with `apiVersion` and `kind` pinned to their only valid values.
fn kind_schema<S: JsonSchema>(kind: &str) -> Value {
    let mut schema = serde_json::to_value(schema_for!(Document<S>)).unwrap_or(Value::Null);
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("apiVersion".into(), json!({"const": API_VERSION}));
        props.insert("kind".into(), json!({"const": kind}));
    }
    schema
}

/// One schema accepting a document of any kind.
pub fn manifest_schema() -> Value {
    let mut defs = serde_json::Map::new();
    for (kind, mut schema) in [
        ("Server", kind_schema::<ServerSpec>("Server")),
        ("App", kind_schema::<AppSpec>("App")),
    ] {
        if let Some(Value::Object(kind_defs)) =
            schema.as_object_mut().and_then(|o| o.remove("$defs"))
        {
            defs.extend(kind_defs);
        }
        if let Some(o) = schema.as_object_mut() {
            o.remove("$schema");
        }
        defs.insert(kind.into(), schema);
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ballast manifest",
        "description": "A ballast/v1 resource. Print this with `ballast schema`.",
        "oneOf": [{"$ref": "#/$defs/Server"}, {"$ref": "#/$defs/App"}],
        "$defs": defs,
    })
}
