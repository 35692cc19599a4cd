//! HTTP/1.1 spoken by hand over a TCP socket, for what a real client
//! library hides: a body that trickles in over seconds (a request that is
//! truly in flight on the server while it reads), a head announcing more
//! bytes than are ever sent, and telling apart "answered", "cut" and
//! "refused".

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How an exchange on a raw connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawError {
    /// The connection could not be opened (nobody listens).
    Refused(String),
    /// The peer closed the connection before a whole answer arrived.
    Closed,
    /// Another I/O error (e.g. reset by the peer).
    Io(String),
    /// Nothing conclusive before the deadline.
    Timeout,
}

/// An answer read off a raw connection.
#[derive(Debug, Clone)]
pub struct RawReply {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from chunked transfer if need be.
    pub body: Vec<u8>,
}

impl RawReply {
    /// The body as JSON (`null` if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The error code of a keel error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One client connection.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

fn io(e: std::io::Error) -> RawError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => RawError::Closed,
        _ => RawError::Io(e.to_string()),
    }
}

impl RawConn {
    /// Connects to `addr` (`127.0.0.1:port`).
    pub async fn connect(addr: &str) -> Result<RawConn, RawError> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| RawError::Timeout)?
            .map_err(|e| RawError::Refused(e.to_string()))?;
        stream.set_nodelay(true).map_err(io)?;
        Ok(RawConn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Writes a request head. `headers` should include `content-length`
    /// (or `transfer-encoding`) when a body follows.
    pub async fn send_head(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(), RawError> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: keel-test\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.send(head.as_bytes()).await
    }

    /// Writes raw bytes (a piece of a body).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), RawError> {
        self.stream.write_all(bytes).await.map_err(io)?;
        self.stream.flush().await.map_err(io)
    }

    async fn fill(&mut self, until: Instant) -> Result<(), RawError> {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(until, self.stream.read(&mut chunk)).await {
            Err(_) => Err(RawError::Timeout),
            Ok(Err(e)) => Err(io(e)),
            Ok(Ok(0)) => Err(RawError::Closed),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// Reads one response head (a 1xx interim answer included).
    pub async fn read_head(
        &mut self,
        until: Instant,
    ) -> Result<(u16, Vec<(String, String)>), RawError> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                let mut lines = head.split("\r\n");
                let status_line = lines.next().unwrap_or("");
                let status = status_line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| RawError::Io(format!("bad status line `{status_line}`")))?;
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                return Ok((status, headers));
            }
            self.fill(until).await?;
        }
    }

    async fn read_exact_buffered(&mut self, n: usize, until: Instant) -> Result<Vec<u8>, RawError> {
        while self.buf.len() < n {
            self.fill(until).await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn read_line(&mut self, until: Instant) -> Result<String, RawError> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            self.fill(until).await?;
        }
    }

    /// Reads the final response (skipping 1xx answers), with its body.
    pub async fn read_response(&mut self, until: Instant) -> Result<RawReply, RawError> {
        let (status, headers) = loop {
            let (status, headers) = self.read_head(until).await?;
            if status >= 200 {
                break (status, headers);
            }
        };
        let mut reply = RawReply {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(len) = reply
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            reply.body = self.read_exact_buffered(len, until).await?;
        } else if reply
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            // Bounded by the deadline: every iteration reads or fails.
            loop {
                let size_line = self.read_line(until).await?;
                let size =
                    usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| RawError::Io(format!("bad chunk size `{size_line}`")))?;
                let data = self.read_exact_buffered(size + 2, until).await?;
                if size == 0 {
                    break;
                }
                reply.body.extend_from_slice(&data[..size]);
            }
        }
        Ok(reply)
    }

    /// Waits until the peer closes the connection (or resets it), ignoring
    /// any bytes; `Err(Timeout)` if it is still open at `until`.
    pub async fn wait_closed(&mut self, until: Instant) -> Result<(), RawError> {
        loop {
            match self.fill(until).await {
                Ok(()) => {}
                Err(RawError::Closed) | Err(RawError::Io(_)) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}
