//! The AsyncAPI document read the way a client would (which message has which schema), and the checks
//! validate.py runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::TestServer;

// ---------------------------------------------------------------------------------------------------
// The document, read the way a client would: which message has which schema.

pub struct Doc(pub Value);

impl Doc {
    pub async fn fetch(server: &TestServer) -> Doc {
        let (status, doc) = server.get_json("/api/asyncapi.json").await;
        assert_eq!(status, 200);
        Doc(doc)
    }

    /// The message object a `{"$ref": "#/channels/..."}` of an operation points to, and its pointer.
    pub fn message(&self, reference: &Value) -> (String, &Value) {
        let mut pointer = reference["$ref"].as_str().expect("a message $ref").trim_start_matches('#').to_owned();
        let mut message = self.0.pointer(&pointer).unwrap_or_else(|| panic!("{pointer} is not in the document"));
        while let Some(next) = message["$ref"].as_str() {
            pointer = next.trim_start_matches('#').to_owned();
            message = self.0.pointer(&pointer).unwrap_or_else(|| panic!("{pointer} is not in the document"));
        }
        (pointer, message)
    }

    /// The operations of `channel`.
    pub fn operations(&self, channel: &str) -> Vec<&Value> {
        let wanted = format!("#/channels/{channel}");
        let ops = self.0["operations"].as_object().expect("operations");
        ops.values().filter(|op| op["channel"]["$ref"] == wanted.as_str()).collect()
    }

    /// Payload pointers of the messages the server sends on `channel` (operations it sends, and replies),
    /// by name; acknowledgements apart.
    pub fn server_messages(&self, channel: &str) -> BTreeMap<String, BTreeSet<String>> {
        let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for op in self.operations(channel) {
            let sent = if op["action"] == "send" { op["messages"].as_array() } else { None };
            for r in sent.into_iter().flatten().chain(op["reply"]["messages"].as_array().into_iter().flatten()) {
                let (pointer, message) = self.message(r);
                if message["x-socketio-ack"] != true {
                    let name = message["name"].as_str().expect("a message name").to_owned();
                    by_name.entry(name).or_default().insert(format!("{pointer}/payload"));
                }
            }
        }
        by_name
    }

    /// Payload pointers of the messages the server receives on `channel`, by name.
    pub fn client_messages(&self, channel: &str) -> BTreeMap<String, BTreeSet<String>> {
        let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for op in self.operations(channel).into_iter().filter(|op| op["action"] == "receive") {
            for r in op["messages"].as_array().into_iter().flatten() {
                let (pointer, message) = self.message(r);
                let name = message["name"].as_str().expect("a message name").to_owned();
                by_name.entry(name).or_default().insert(format!("{pointer}/payload"));
            }
        }
        by_name
    }

    /// Payload pointers of the acknowledgements the server may answer Socket.IO event `event` with.
    pub fn acks(&self, event: &str) -> BTreeSet<String> {
        let mut acks = BTreeSet::new();
        for op in self.operations("socketio").into_iter().filter(|op| op["action"] == "receive") {
            let names_event =
                op["messages"].as_array().into_iter().flatten().any(|r| self.message(r).1["name"] == event);
            if names_event {
                for r in op["reply"]["messages"].as_array().into_iter().flatten() {
                    let (pointer, message) = self.message(r);
                    if message["x-socketio-ack"] == true {
                        acks.insert(format!("{pointer}/payload"));
                    }
                }
            }
        }
        acks
    }

    /// Every message example, with its payload pointer.
    pub fn examples(&self) -> Vec<(String, String, Value)> {
        let messages = self.0["components"]["messages"].as_object().expect("components.messages");
        let mut out = Vec::new();
        for (key, m) in messages {
            for e in m["examples"].as_array().into_iter().flatten() {
                out.push((
                    format!("example {key}"),
                    format!("/components/messages/{key}/payload"),
                    e["payload"].clone(),
                ));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------------
// The checks, run by validate.py.

#[derive(Default)]
pub struct Checks {
    pub items: Vec<Value>,
}

impl Checks {
    pub fn add(&mut self, what: String, schemas: &BTreeSet<String>, value: &Value) {
        assert!(!schemas.is_empty(), "{what}: the document has no schema for {value}");
        self.items.push(json!({ "what": what, "schemas": schemas, "value": value }));
    }

    /// A message the server sent on `channel` under `name`: it must have a schema.
    pub fn server(&mut self, doc: &Doc, channel: &str, name: &str, value: &Value) {
        let schemas = doc.server_messages(channel).remove(name).unwrap_or_default();
        assert!(
            !schemas.is_empty(),
            "the server sent a {channel} message {name:?} the document has no schema for: {value}"
        );
        self.add(format!("{channel} server message {name}"), &schemas, value);
    }

    /// A message a client sent on `channel` under `name`, which the server took: it must have a schema.
    pub fn client(&mut self, doc: &Doc, channel: &str, name: &str, value: &Value) {
        let schemas = doc.client_messages(channel).remove(name).unwrap_or_default();
        assert!(!schemas.is_empty(), "the document has no schema for the {channel} request {name:?}: {value}");
        self.add(format!("{channel} client message {name}"), &schemas, value);
    }

    /// Runs validate.py over the document and the checks; panics with its report on any failure.
    pub fn run(self, doc: &Doc) -> String {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let body = json!({ "document": doc.0, "checks": self.items });
        std::fs::write(file.path(), body.to_string()).expect("write the checks");
        let script = repo().join("tests/asyncapi/validate.py");
        let out = std::process::Command::new(python())
            .arg(script)
            .arg(file.path())
            .env_remove("LD_PRELOAD")
            .output()
            .expect("run validate.py");
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "validate.py failed:\n{said}");
        said
    }
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with jsonschema-rs: `$CANDLECAST_TEST_PYTHON`, or target/pyenv-tests (scripts/test-deps.sh).
pub fn python() -> PathBuf {
    let python = std::env::var_os("CANDLECAST_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/pyenv-tests/bin/python"));
    let installed = std::process::Command::new(&python).args(["-c", "import jsonschema_rs"]).output();
    assert!(
        installed.is_ok_and(|o| o.status.success()),
        "jsonschema-rs is not installed for {}: run scripts/test-deps.sh (pip install -r tests/openapi/requirements.txt)",
        python.display()
    );
    python
}
