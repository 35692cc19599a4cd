//! `/ui/`: the status page. Its assets (web/ui/) are compiled into the
//! binary, so it works offline and always matches the API it reads. They
//! are served without a token (they hold no data); the page asks for a
//! token and reads `/v1` with it like any script. A strict Content Security
//! Policy allows only this origin's own script, style and API.

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};

const INDEX: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/style.css");
const FAVICON: &str = include_str!("../../ui/favicon.svg");

/// Only this origin; no inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// `/ui` without the slash: to the page.
pub async fn redirect() -> Redirect {
    Redirect::permanent("/ui/")
}

/// The status page.
#[utoipa::path(get, path = "/ui/", tag = "health",
    responses((status = 200, description = "the status page (HTML, assets embedded in the binary; no token needed to load it)", content_type = "text/html")))]
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// The page's script.
pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// The page's style sheet.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// The page's icon.
pub async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON)
}
