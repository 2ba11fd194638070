//! The OpenAPI 3.1 document of the HTTP API, generated from the route table the router is built
//! from, so that it lists exactly the routes served (checked by a test) with their auth.

use serde_json::{Map, Value, json};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Anyone.
    Open,
    /// `Authorization: Bearer <admin token>`.
    Admin,
    /// The body is a node-signed message; the signer is the actor.
    Signed,
}

/// One route of the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// Lowercase HTTP method.
    pub method: &'static str,
    /// Path template (`{param}` segments).
    pub path: &'static str,
    /// Who may call it.
    pub auth: Auth,
    /// One line for humans.
    pub summary: &'static str,
}

impl RouteSpec {
    /// Whether the route changes state.
    pub fn is_mutation(&self) -> bool {
        !matches!(self.method, "get" | "head" | "options")
    }
}

fn parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

fn operation(spec: &RouteSpec) -> Value {
    let mut op = Map::new();
    op.insert("summary".into(), json!(spec.summary));
    op.insert(
        "operationId".into(),
        json!(format!("{}_{}", spec.method, spec.path.replace(['/', '{', '}', '.'], "_"))),
    );
    op.insert("parameters".into(), Value::Array(parameters(spec.path)));
    let error = json!({"description": "error envelope", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut responses = Map::new();
    responses.insert("200".into(), json!({"description": "success"}));
    responses.insert("default".into(), error);
    match spec.auth {
        Auth::Admin => {
            op.insert("security".into(), json!([{"adminToken": []}]));
            responses
                .insert("401".into(), json!({"$ref": "#/components/responses/Unauthenticated"}));
            responses.insert("403".into(), json!({"$ref": "#/components/responses/Forbidden"}));
        }
        Auth::Signed => {
            op.insert(
                "description".into(),
                json!("The body is {message: base64 of the signed bytes, signature: 128 hex}, signed by the acting node."),
            );
        }
        Auth::Open => {}
    }
    if spec.is_mutation() {
        responses.insert("413".into(), json!({"$ref": "#/components/responses/BodyTooLarge"}));
    }
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

/// The document for `specs`.
pub fn document(specs: &[RouteSpec], version: &str) -> String {
    let mut paths: Map<String, Value> = Map::new();
    for spec in specs {
        let entry = paths.entry(spec.path.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(methods) = entry {
            methods.insert(spec.method.to_owned(), operation(spec));
        }
    }
    let envelope = json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message", "request_id"],
            "properties": {"code": {"type": "string", "pattern": "^LUCID_ERR_[A-Z_]+$"},
                "message": {"type": "string"}, "request_id": {"type": "string"}}}}
    });
    let response = |text: &str| json!({"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let document = json!({
        "openapi": "3.1.0",
        "info": {"title": "Lucid node API", "version": version},
        "paths": paths,
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": envelope},
            "responses": {
                "Unauthenticated": response("no or malformed bearer token"),
                "Forbidden": response("wrong token"),
                "BodyTooLarge": response("body above 1 MiB"),
            }
        }
    });
    document.to_string()
}
