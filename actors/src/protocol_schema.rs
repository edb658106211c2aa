//! JSON schemas for the wire types of [`crate::protocol`] whose Rust type says too little: an interval
//! is a closed set of names, a request `id` is any JSON value, indicator `params` an object. The derives
//! in `protocol.rs` point here; the server assembles them into its AsyncAPI document (`/api/asyncapi.json`).

use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{OneOfBuilder, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::model::Interval;

impl PartialSchema for Interval {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Interval::ALL.iter().map(|i| i.as_str())))
            .description(Some("A bar interval; weeks start on Monday."))
            .into()
    }
}

impl ToSchema for Interval {}

/// `id`: any JSON value the client chose (a string or a number in practice), echoed in the direct reply.
pub fn request_id() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some("Any JSON value; the direct reply (or error) echoes it."))
        .build()
        .into()
}

/// `params` of an indicator request: an object of the indicator's parameters (`GET /api/indicators`), or
/// null for the defaults.
pub fn indicator_params() -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Object))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some("The indicator's parameters (GET /api/indicators); absent or null: the defaults."))
        .into()
}

/// `params` of an indicator reply: the canonical parameters (defaults filled in, floats to 0.01).
pub fn canonical_params() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from(Type::Object))
        .description(Some("The canonical parameters: defaults filled in, float parameters rounded to 0.01."))
        .into()
}
