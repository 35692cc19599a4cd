//! A small HTTP client for keel's admin API, returning status and JSON.

use std::time::Duration;

use serde_json::Value;

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// JSON body (`null` if empty or not JSON).
    pub body: Value,
    /// `Retry-After`, if present.
    pub retry_after: Option<String>,
    /// `Content-Type`, if present.
    pub content_type: Option<String>,
    /// The body as text (lossy), for answers that are not JSON.
    pub text: String,
}

impl Reply {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// Whether the body is keel's error shape:
    /// `{"error": {"code": "<snake_case>", "message": "<text>"}}`.
    pub fn is_error_body(&self) -> bool {
        let code = self.code();
        !code.is_empty()
            && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            && self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
    }
}

/// A plain HTTP client for loopback tests (no proxy, every request bounded
/// by `timeout`), for probes that need more than [`Api`] shows.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .expect("http client")
}

/// A client of one node's API.
#[derive(Clone, Debug)]
pub struct Api {
    /// `http://127.0.0.1:port`.
    pub base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    /// A client of `addr` (`127.0.0.1:port`) with an optional token.
    pub fn new(addr: &str, token: Option<&str>) -> Self {
        Self::with_timeout(addr, token, Duration::from_secs(30))
    }

    /// A client whose every request gives up after `timeout` (for calls
    /// that may legitimately block on the server, such as adding a member
    /// that never catches up).
    pub fn with_timeout(addr: &str, token: Option<&str>, timeout: Duration) -> Self {
        let http = http_client(timeout);
        Api {
            base: format!("http://{addr}"),
            token: token.map(str::to_string),
            http,
        }
    }

    /// A client of a peer listener that speaks TLS (keel's mutual TLS)
    /// without a client certificate, accepting the server's: what a
    /// stranger who knows only the cluster secret can reach.
    pub fn tls_stranger(addr: &str, token: Option<&str>) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .danger_accept_invalid_certs(true)
            .build()
            .expect("https client");
        Api {
            base: format!("https://{addr}"),
            token: token.map(str::to_string),
            http,
        }
    }

    /// The same node without a token.
    pub fn anonymous(&self) -> Api {
        Api {
            token: None,
            ..self.clone()
        }
    }

    /// The same node with another token.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    /// Sends a request; `Err` only when no answer came.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        self.send_raw(method, path, body.map(|b| b.to_string().into_bytes()), &[])
            .await
    }

    /// Sends raw bytes with extra headers. The body is labelled
    /// `application/json` unless `headers` names a content type.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                req = req.header("content-type", "application/json");
            }
            req = req.body(b);
        }
        let resp = req.send().await.map_err(|e| error_chain(&e))?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header("retry-after");
        let content_type = header("content-type");
        let bytes = resp.bytes().await.map_err(|e| error_chain(&e))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            body,
            retry_after,
            content_type,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<Reply, String> {
        self.send("GET", path, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply, String> {
        self.send("POST", path, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Result<Reply, String> {
        self.send("DELETE", path, None).await
    }

    /// PATCH with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Reply, String> {
        self.send("PATCH", path, Some(body)).await
    }

    /// GET that must answer 200; returns the body.
    pub async fn get_ok(&self, path: &str) -> Value {
        let r = self
            .get(path)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(r.status, 200, "GET {path}: {:?}", r.body);
        r.body
    }

    /// POST that must answer `status`; returns the body.
    pub async fn post_expect(&self, path: &str, body: &Value, status: u16) -> Value {
        let r = self
            .post(path, body)
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert_eq!(r.status, status, "POST {path} {body}: {:?}", r.body);
        r.body
    }
}

/// An error and its sources, so "error sending request" says why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
