//! The AsyncAPI 3.0 document of the streaming protocols, `/ws` and Socket.IO (docs/protocol.md), at
//! `GET /api/asyncapi.json`.
//!
//! The payload schemas are derived from the Rust types the server serializes and decodes
//! (`candlecast_actors::protocol`, the scripts' types) with utoipa, as the OpenAPI document's are; frames
//! built with `json!` have a schema type of their own in [`payloads`]. This module assembles them into
//! channels, messages (each with examples from docs/protocol.md) and operations:
//!
//! - [`ws`]: the `/ws` channel: every client request, every server message, the error codes and the
//!   close codes.
//! - [`socketio`]: the Socket.IO namespace `/`: the events each way, and the acknowledgements as the
//!   replies of the client's events.
//! - [`payloads`]: schemas of the frames built with `json!`.
//!
//! Server messages are closed (`additionalProperties: false`): tests/asyncapi.rs validates every message
//! a real server sends against its schema, so a field added in the code without its schema fails it.

mod payloads;
mod socketio;
mod ws;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use actix_web::{get, HttpResponse};
use serde_json::{json, Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType};
use utoipa::openapi::ComponentsBuilder;
use utoipa::ToSchema;

/// Any JSON value (a script's own `timestamp`, echoed as it came).
pub fn any_value() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some("Any JSON value, echoed as it came."))
        .build()
        .into()
}

/// One message of a channel.
pub(crate) struct Message {
    /// Its key under `components/messages` and in its channel.
    key: &'static str,
    /// Its name on the wire: the `type` of a `/ws` message, the event name of a Socket.IO event, or
    /// `ack:<event>` for the acknowledgement of a Socket.IO event.
    name: &'static str,
    title: &'static str,
    summary: &'static str,
    payload: Value,
    /// Payload examples (each checked against the payload schema by tests/asyncapi.rs).
    examples: Vec<Value>,
    /// Sent by the server: its schema is closed.
    outgoing: bool,
    /// A Socket.IO acknowledgement (`x-socketio-ack`), not an event.
    ack: bool,
}

impl Message {
    /// A message the client sends; `name` is also its key.
    fn from_client(name: &'static str, title: &'static str, summary: &'static str, payload: Value) -> Message {
        Message { key: name, name, title, summary, payload, examples: Vec::new(), outgoing: false, ack: false }
    }

    /// A message the server sends; `name` is also its key.
    fn from_server(name: &'static str, title: &'static str, summary: &'static str, payload: Value) -> Message {
        Message { outgoing: true, ..Message::from_client(name, title, summary, payload) }
    }

    /// A Socket.IO acknowledgement, keyed `key` (its name on the wire is its event's).
    fn ack(key: &'static str, title: &'static str, summary: &'static str, payload: Value) -> Message {
        Message { ack: true, name: "ack", ..Message::from_server(key, title, summary, payload) }
    }

    fn examples(mut self, examples: &[&str]) -> Message {
        // The examples are ours and valid JSON; a typo shows as null, which the test's schema check rejects.
        self.examples = examples.iter().map(|e| serde_json::from_str(e).unwrap_or(Value::Null)).collect();
        self
    }
}

impl Operation {
    fn receive(key: &'static str, summary: &'static str, reply: &[&'static str]) -> Operation {
        Operation { key, action: "receive", summary, messages: vec![key], reply: reply.to_vec() }
    }

    fn send(key: &'static str, summary: &'static str, messages: &[&'static str]) -> Operation {
        Operation { key, action: "send", summary, messages: messages.to_vec(), reply: Vec::new() }
    }
}

/// One operation: the server receives (`receive`) or sends (`send`) the messages of a channel.
pub(crate) struct Operation {
    key: &'static str,
    action: &'static str,
    summary: &'static str,
    messages: Vec<&'static str>,
    /// For a client request: the messages the server answers it with.
    reply: Vec<&'static str>,
}

/// A channel with its messages and operations.
pub(crate) struct Channel {
    key: &'static str,
    address: &'static str,
    title: &'static str,
    description: String,
    messages: Vec<Message>,
    operations: Vec<Operation>,
    /// Extensions (`x-...`) of the channel, e.g. its close codes.
    extensions: Vec<(&'static str, Value)>,
    /// Messages that are another channel's: (key here, its key under `components/messages`).
    borrowed: Vec<(&'static str, &'static str)>,
}

/// The component schemas of the types named, with those they refer to, as JSON.
pub(crate) struct Schemas {
    builder: Option<ComponentsBuilder>,
    json: Map<String, Value>,
}

impl Schemas {
    fn new() -> Schemas {
        Schemas { builder: Some(ComponentsBuilder::new()), json: Map::new() }
    }

    /// `{"$ref": "#/components/schemas/<T>"}`, collecting `T` and what it refers to.
    fn reference<T: ToSchema>(&mut self) -> Value {
        let mut schemas = vec![(T::name().into_owned(), T::schema())];
        T::schemas(&mut schemas);
        if let Some(b) = self.builder.take() {
            self.builder = Some(b.schemas_from_iter(schemas));
        }
        json!({ "$ref": format!("#/components/schemas/{}", T::name()) })
    }

    /// `T`'s schema, inline (collecting what it refers to), to be made a message's own payload.
    fn inline<T: ToSchema>(&mut self) -> Value {
        let mut refers_to = Vec::new();
        T::schemas(&mut refers_to);
        if let Some(b) = self.builder.take() {
            self.builder = Some(b.schemas_from_iter(refers_to));
        }
        to_json(&T::schema())
    }

    /// `T`'s schema with its `type` property fixed to `kind`: the payload of a `/ws` message.
    fn typed<T: ToSchema>(&mut self, kind: &str) -> Value {
        let mut schema = self.inline::<T>();
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("type".into(), json!({ "type": "string", "const": kind }));
        }
        let required = schema.as_object_mut().map(|o| o.entry("required").or_insert_with(|| json!([])));
        if let Some(Value::Array(list)) = required {
            if !list.iter().any(|r| r == "type") {
                list.insert(0, json!("type"));
            }
        }
        schema
    }

    fn finish(mut self) -> Map<String, Value> {
        if let Some(b) = self.builder.take() {
            let components = to_json(&b.build());
            if let Some(schemas) = components.get("schemas").and_then(Value::as_object) {
                self.json.extend(schemas.clone());
            }
        }
        self.json
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Adds `property` (required) to an object schema.
fn with_property(mut schema: Value, name: &str, property: Value) -> Value {
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(name.into(), property);
    }
    if let Some(o) = schema.as_object_mut() {
        if let Value::Array(list) = o.entry("required").or_insert_with(|| json!([])) {
            list.push(json!(name));
        }
    }
    schema
}

/// `additionalProperties: false` on every object schema in `schema` that lists its properties and says
/// nothing about others; the names of the component schemas it refers to are added to `refs`.
fn close(schema: &mut Value, refs: &mut BTreeSet<String>) {
    match schema {
        Value::Object(o) => {
            if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                if let Some(name) = r.strip_prefix("#/components/schemas/") {
                    refs.insert(name.to_owned());
                }
            }
            if o.contains_key("properties") && !o.contains_key("additionalProperties") {
                o.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (key, v) in o.iter_mut() {
                // `properties` maps names to schemas; every other member holds schemas or none.
                if key == "properties" {
                    if let Value::Object(props) = v {
                        props.values_mut().for_each(|p| close(p, refs));
                    }
                } else if matches!(key.as_str(), "items" | "oneOf" | "anyOf" | "allOf" | "additionalProperties") {
                    close(v, refs);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| close(i, refs)),
        _ => {}
    }
}

/// Closes the payloads of the server's messages and every component schema they refer to.
fn close_outgoing(channels: &mut [Channel], schemas: &mut Map<String, Value>) {
    let mut pending = BTreeSet::new();
    for m in channels.iter_mut().flat_map(|c| c.messages.iter_mut()).filter(|m| m.outgoing) {
        close(&mut m.payload, &mut pending);
    }
    let mut done = BTreeSet::new();
    while let Some(name) = pending.pop_first() {
        if !done.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = schemas.get_mut(&name) {
            close(schema, &mut pending);
        }
    }
}

/// The document.
fn build() -> Value {
    let mut schemas = Schemas::new();
    let mut channels = vec![ws::channel(&mut schemas), socketio::channel(&mut schemas)];
    let mut components = schemas.finish();
    close_outgoing(&mut channels, &mut components);

    let mut messages = BTreeMap::new();
    let mut channel_docs = Map::new();
    let mut operations = Map::new();
    for c in &channels {
        let mut channel_messages = Map::new();
        for m in &c.messages {
            let component = format!("{}_{}", c.key, m.key);
            let examples: Vec<Value> = m
                .examples
                .iter()
                .enumerate()
                .map(|(i, e)| json!({ "name": format!("{}{}", m.key, i + 1), "payload": e }))
                .collect();
            messages.insert(
                component.clone(),
                json!({
                    "name": m.name,
                    "title": m.title,
                    "summary": m.summary,
                    "contentType": "application/json",
                    "payload": m.payload,
                    "examples": examples,
                }),
            );
            if m.ack {
                if let Some(doc) = messages.get_mut(&component) {
                    doc["x-socketio-ack"] = Value::Bool(true);
                }
            }
            channel_messages.insert(m.key.into(), json!({ "$ref": format!("#/components/messages/{component}") }));
        }
        for (key, component) in &c.borrowed {
            channel_messages.insert((*key).into(), json!({ "$ref": format!("#/components/messages/{component}") }));
        }
        let mut doc = json!({
            "address": c.address,
            "title": c.title,
            "description": c.description,
            "messages": channel_messages,
        });
        for (k, v) in &c.extensions {
            doc[*k] = v.clone();
        }
        channel_docs.insert(c.key.into(), doc);
        let message_ref = |key: &str| json!({ "$ref": format!("#/channels/{}/messages/{key}", c.key) });
        for op in &c.operations {
            let mut doc = json!({
                "action": op.action,
                "channel": { "$ref": format!("#/channels/{}", c.key) },
                "summary": op.summary,
                "messages": op.messages.iter().map(|k| message_ref(k)).collect::<Vec<_>>(),
            });
            if !op.reply.is_empty() {
                doc["reply"] = json!({
                    "channel": { "$ref": format!("#/channels/{}", c.key) },
                    "messages": op.reply.iter().map(|k| message_ref(k)).collect::<Vec<_>>(),
                });
            }
            operations.insert(format!("{}.{}", c.key, op.key), doc);
        }
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "candlecast streaming",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Live OHLCV bars, history, indicators and signals over the `/ws` WebSocket, and the \
                            scripts' Socket.IO events at `/socket.io/`. Prose, limits and budgets: docs/protocol.md. \
                            The REST API is in /api/openapi.json.",
            "license": { "name": "Apache-2.0" },
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "localhost:8000",
                "protocol": "ws",
                "description": "The default listen address (`[server]` in config/default.toml); both channels are \
                                served by every node of a cluster.",
            }
        },
        "channels": channel_docs,
        "operations": operations,
        "components": { "schemas": components, "messages": messages },
    })
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| serde_json::to_string_pretty(&build()).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
}

/// The AsyncAPI document of the streaming protocols.
#[utoipa::path(get, path = "/api/asyncapi.json", tag = "operations",
    responses((status = 200, description = "The AsyncAPI 3.0 document of /ws and Socket.IO", content_type = "application/json")))]
#[get("/api/asyncapi.json")]
pub async fn asyncapi_json() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation and reply names messages of its channel, and every message's component exists.
    #[test]
    fn operations_name_messages_that_exist() {
        let doc: Value = serde_json::from_str(document()).expect("JSON");
        assert_eq!(doc["asyncapi"], "3.0.0");
        for (key, op) in doc["operations"].as_object().expect("operations") {
            let refs = op["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(op["reply"]["messages"].as_array().into_iter().flatten());
            for r in refs {
                let pointer = r["$ref"].as_str().expect("a $ref").trim_start_matches('#');
                let message = doc.pointer(pointer).unwrap_or_else(|| panic!("{key}: {pointer} is missing"));
                let component = message["$ref"].as_str().expect("a component $ref").trim_start_matches('#');
                assert!(doc.pointer(component).is_some(), "{key}: {component} is missing");
            }
        }
    }

    /// A server message's schema rejects a field it does not list; a component it refers to is closed too.
    #[test]
    fn server_messages_are_closed() {
        let doc: Value = serde_json::from_str(document()).expect("JSON");
        let price_update = &doc["components"]["messages"]["ws_price_update"]["payload"];
        assert_eq!(price_update["additionalProperties"], false, "{price_update}");
        assert_eq!(doc["components"]["schemas"]["BarData"]["additionalProperties"], false);
    }
}
