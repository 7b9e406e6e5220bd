//! The OpenAPI document, generated from the route handlers' annotations.
//!
//! Routes are registered through `utoipa_axum`'s `routes!`, so a handler cannot be served
//! without appearing in the document and the document cannot describe a route that is not
//! served. This module adds what is common to every operation: the bearer security scheme and
//! the error responses.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, ResponseBuilder};

use super::error::{HttpErrorOut, HttpValidationError};
use super::inbox::entries::ExportFormat;
use super::inbox::firebase::FirebasePrint;
use super::pagination::Ordering;
use super::status::StatusCodeClass;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Herald API",
        description = "Herald's management API. It is compatible with the Svix v1 API, so the \
                       official Svix SDKs work against it; Herald's own additions are additive \
                       fields and routes.\n\nAuthenticate with `Authorization: Bearer <token>`: \
                       the admin token, an API key, or an application portal token.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    // Schemas that only query parameters name: utoipa refers to them without collecting them.
    components(schemas(HttpErrorOut, HttpValidationError, StatusCodeClass, Ordering, ExportFormat, FirebasePrint)),
    tags(
        (name = "Application", description = "One application per customer of your platform."),
        (name = "Event Type", description = "The catalogue of events that can be sent."),
        (name = "Endpoint", description = "Where an application's messages are delivered."),
        (name = "Message", description = "Events published to an application."),
        (name = "Message Poller", description = "Polling endpoints' consumers: reading collected messages, with Herald keeping each consumer's position."),
        (name = "Device", description = "Herald: devices whose reported facts become events (status rules, blessing, BlinkUp)."),
        (name = "Message Attempt", description = "Every delivery attempt, by endpoint and by message."),
        (name = "Delivery Log", description = "Herald: one row per message and endpoint, in numbered pages."),
        (name = "Operational Webhook", description = "Herald's own events (endpoints disabled, messages failing), sent to the operator's endpoints."),
        (name = "Authentication", description = "Portal access and API keys."),
        (name = "Inbox", description = "Receiving webhooks by path, Firebase-style: inboxes, what they received, exports."),
        (name = "Impilo", description = "Herald: Impilo's webhook API (`/api/v3/…`, `Impilo-API-Key`), over the same applications, endpoints and messages."),
        (name = "Health", description = "Liveness and readiness."),
    )
)]
pub struct ApiDoc;

const BEARER: &str = "HTTPBearer";
/// The security scheme of Impilo's API (`security(("ImpiloApiKey" = []))` on its routes).
const IMPILO_KEY: &str = "ImpiloApiKey";

/// Adds the security scheme and the standard error responses to every operation.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER.to_owned(),
        RefOr::T(SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An admin token, API key or portal token"))
                .build(),
        )),
    );
    components.security_schemes.insert(
        IMPILO_KEY.to_owned(),
        RefOr::T(SecurityScheme::ApiKey(ApiKey::Header(
            ApiKeyValue::with_description(
                super::auth::IMPILO_KEY_HEADER,
                "An API key limited to one application (Impilo's API)",
            ),
        ))),
    );
    doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    for item in doc.paths.paths.values_mut() {
        for (op, writes) in [
            (&mut item.get, false),
            (&mut item.put, true),
            (&mut item.post, true),
            (&mut item.delete, true),
            (&mut item.patch, true),
            (&mut item.head, false),
        ] {
            if let Some(op) = op {
                add_error_responses(op, writes);
            }
        }
    }
    doc
}

fn add_error_responses(op: &mut Operation, writes: bool) {
    // `security(())` in a handler's annotation marks a public route.
    let public = op
        .security
        .as_ref()
        .is_some_and(|s| s.iter().all(|r| r == &SecurityRequirement::default()));
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("HttpErrorOut"))),
                )
                .build(),
        )
    };
    let mut standard = vec![
        ("400", error("Malformed request (e.g. invalid JSON)")),
        ("413", error("Request body too large")),
        ("503", error("The database is unavailable; retry later")),
    ];
    if writes {
        standard.push((
            "507",
            error("The database's disk is full: nothing was written; retry once space is freed"),
        ));
    }
    if !public {
        standard.extend([
            ("401", error("Missing or invalid bearer token")),
            ("403", error("The token may not do this")),
            (
                "404",
                error("Not found, or outside the token's application"),
            ),
            (
                "409",
                error("Conflict with an existing resource or a request in progress"),
            ),
            (
                "422",
                RefOr::T(
                    ResponseBuilder::new()
                        .description("Invalid fields")
                        .content(
                            "application/json",
                            Content::new(Some(Ref::from_schema_name("HttpValidationError"))),
                        )
                        .build(),
                ),
            ),
        ]);
    }
    for (status, response) in standard {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert(response);
    }
}
