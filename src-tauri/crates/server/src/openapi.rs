//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the HTTP API, generated from the code.
//! Each handler's `#[utoipa::path]` gives its method, path, parameters and answers and, as the
//! extension `x-dsmon-role`, who may call it; the bodies' schemas are the `ToSchema` derives on
//! the types the API sends and takes (in the crates that own them). The routes are registered
//! with utoipa-axum's `routes!`, which takes method and path from the same annotation, so the
//! router and the document cannot disagree.
//!
//! From the role this module adds to every operation its security requirement (the session
//! cookie or `Authorization: Bearer`; none for public ones), its 401/403 answers and a line of
//! description. The document is public: it describes the API and holds no data.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder, SecurityRequirement,
};
use utoipa::OpenApi;

use super::{ApiError, ErrorBody};

/// The operation extension naming the role a route needs: `admin`, `user` (any signed-in role),
/// `public` (no session needed) or `metrics-token` (`/metrics`: its own bearer token under
/// `[auth]`).
pub const ROLE: &str = "x-dsmon-role";

/// The session cookie's name over plain http (over https it is `__Host-dsmon_session`).
const SESSION: &str = "session";
const BEARER: &str = "bearer";
const METRICS_TOKEN: &str = "metrics_token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dsmon",
        description = "The HTTP API of `dsmon serve`: live node states and metrics, history, users and the audit log, alerts, sign-in. Every JSON error answer is an `ErrorBody`. Each operation's `x-dsmon-role` names who may call it: `admin`, `user` (any signed-in role), `public`, or `metrics-token`. Without `[auth]` every caller is the local Admin (and the server answers loopback names only).",
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "server", description = "health, this document, Prometheus metrics"),
        (name = "auth", description = "sign-in (browser redirects and the desktop app's JSON exchange), who am I"),
        (name = "live", description = "node states and the live snapshots"),
        (name = "history", description = "logged rows and roll-ups"),
        (name = "users", description = "user administration and the audit log (Admin)"),
        (name = "alerts", description = "alerts now, their history, deliveries, rules, silences"),
    )
)]
struct ApiDoc;

/// The document's fixed parts, which the routes' operations are added to.
pub(crate) fn base() -> Document {
    ApiDoc::openapi()
}

/// The OpenAPI document of every route of the main listener.
pub fn openapi() -> Document {
    let (_, mut doc) = super::routes().split_for_parts();
    describe_access(&mut doc);
    doc
}

/// The document, once, as JSON.
fn document_json() -> &'static Result<String, String> {
    static DOC: OnceLock<Result<String, String>> = OnceLock::new();
    DOC.get_or_init(|| openapi().to_json().map_err(|e| e.to_string()))
}

/// This document: the OpenAPI 3.1 description of the HTTP API.
#[utoipa::path(get, path = "/api/openapi.json", tag = "server",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)),
    extensions(("x-dsmon-role" = json!("public"))))]
pub(crate) async fn openapi_json() -> Result<Response, ApiError> {
    let json = document_json().as_ref().map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        json.clone(),
    )
        .into_response())
}

/// Security schemes, and per operation from its `x-dsmon-role`: the security requirement, the
/// answers to a caller without the role, and a line of description.
fn describe_access(doc: &mut Document) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "dsmon_session",
            "The session cookie set by the sign-in (`/auth/callback`); over https its name is `__Host-dsmon_session`. A state-changing request with it must carry this site's `Origin`.",
        ))),
    );
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A session as `Authorization: Bearer <session>` (what `POST /auth/token` answers: the desktop app's remote mode). Needs no `Origin`.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        METRICS_TOKEN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "`/metrics` under `[auth]`: the token of `[server] metrics_token_file` as `Authorization: Bearer <token>`.",
                ))
                .build(),
        ),
    );
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            describe_role(op);
        }
    }
}

fn describe_role(op: &mut Operation) {
    let role = op
        .extensions
        .as_ref()
        .and_then(|e| e.get(ROLE))
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let signed_in = || {
        vec![
            SecurityRequirement::new::<_, _, String>(SESSION, []),
            SecurityRequirement::new::<_, _, String>(BEARER, []),
        ]
    };
    let (line, security, refusals): (&str, _, &[(&str, &str)]) = match role.as_str() {
        "admin" => (
            "Role: Admin.",
            signed_in(),
            &[
                ("401", "not signed in"),
                ("403", "signed in without the Admin role"),
            ],
        ),
        "user" => (
            "Role: any signed-in role (User or Admin).",
            signed_in(),
            &[("401", "not signed in")],
        ),
        "public" => ("Role: none (public).", vec![SecurityRequirement::default()], &[]),
        "metrics-token" => (
            "Role: none; under `[auth]` the metrics bearer token (else 401), or 404 without one configured.",
            vec![
                SecurityRequirement::default(),
                SecurityRequirement::new::<_, _, String>(METRICS_TOKEN, []),
            ],
            &[("401", "the metrics token is missing or wrong")],
        ),
        // `tests/router.rs` refuses an operation without a known role.
        _ => return,
    };
    op.security = Some(security);
    op.description = Some(match op.description.take() {
        Some(d) if !d.is_empty() => format!("{d}\n\n{line}"),
        _ => line.to_string(),
    });
    for (status, why) in refusals {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(error_response(why)));
    }
}

/// An error answer: `ErrorBody` as JSON.
fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}
