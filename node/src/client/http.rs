//! HTTP plumbing of the CLI.

use std::path::Path;

use reqwest::Method;
use serde_json::Value;

/// A CLI failure: printed as `error: ...`, exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error body.
    #[error("{code} ({status}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
    /// Anything else.
    #[error("{0}")]
    Message(String),
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Message(e.to_string())
    }
}

/// A client of one node's admin API.
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl ApiClient {
    /// A client for `addr` (`http://host:port`, or `host:port`).
    pub fn new(
        addr: &str,
        token: Option<String>,
        cacert: Option<&Path>,
    ) -> Result<Self, ClientError> {
        crate::tls::install_crypto_provider();
        let base = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", addr.trim_end_matches('/'))
        };
        // Adding a member waits for it to catch up (up to two minutes); every
        // other call answers far sooner.
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(180));
        if let Some(path) = cacert {
            let pem = std::fs::read(path)
                .map_err(|e| ClientError::Message(format!("{}: {e}", path.display())))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ClientError::Message(e.to_string()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Message(e.to_string()))?;
        Ok(ApiClient { http, base, token })
    }

    /// A client from the common CLI arguments.
    pub fn from_args(args: &crate::cli::ClientArgs) -> Result<Self, ClientError> {
        Self::new(&args.addr, args.token.clone(), args.cacert.as_deref())
    }

    /// GET returning status and raw body, without auth.
    pub async fn raw_get(&self, path: &str) -> Result<(u16, Vec<u8>), ClientError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| ClientError::Message(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| ClientError::Message(e.to_string()))?;
        Ok((status, body.to_vec()))
    }

    /// Sends a request and returns the JSON answer (or `null` for 204).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let bytes = self.request_bytes(method, path, body).await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Message(format!("unexpected answer: {e}")))
    }

    /// Sends a request and returns the raw answer body.
    pub async fn request_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Vec<u8>, ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Message(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Message(e.to_string()))?;
        if status >= 400 {
            return Err(api_error(status, &bytes));
        }
        Ok(bytes.to_vec())
    }

    /// A request with the token attached, for callers that stream a body
    /// or an answer themselves (snapshots). Its timeout replaces the
    /// client's.
    pub fn streaming(
        &self,
        method: Method,
        path: &str,
        timeout: std::time::Duration,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(timeout);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    /// Sends a request built by [`ApiClient::streaming`]; an error answer
    /// becomes a [`ClientError`], any other answer is returned unread.
    pub async fn send_streaming(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Message(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status().as_u16();
        if status >= 400 {
            let bytes = response
                .bytes()
                .await
                .map_err(|e| ClientError::Message(e.to_string()))?;
            return Err(api_error(status, &bytes));
        }
        Ok(response)
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.request(Method::GET, path, None).await
    }

    /// POST.
    pub async fn post(&self, path: &str, body: Option<Value>) -> Result<Value, ClientError> {
        self.request(Method::POST, path, body).await
    }
}

/// The [`ClientError`] of an error answer (the API's JSON error body, or
/// the raw text of anything else).
fn api_error(status: u16, bytes: &[u8]) -> ClientError {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| "error".into());
    let message = parsed
        .as_ref()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned());
    ClientError::Api {
        status,
        code,
        message,
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A query string from optional parameters.
pub fn query(params: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}
