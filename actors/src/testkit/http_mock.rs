//! A loopback HTTP/1.1 server for tests.
//!
//! Hand-written rather than built on a server framework because tests need to misbehave
//! at the byte level: reset a connection mid-stream, hang after the headers, dribble SSE
//! chunks with delays. It runs on its own thread and tokio runtime, so it outlives the
//! actix systems and the engine processes that talk to it, and it records every request
//! (method, path with query, headers, body) for assertions such as "never sent twice".

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path with the query string, e.g. `/api/v3/order?symbol=BTCUSDT&...`.
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    /// The path without the query string.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or(&self.path)
    }
    /// The value of a query parameter (not percent-decoded).
    pub fn query(&self, key: &str) -> Option<&str> {
        let q = self.path.split_once('?')?.1;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key).then_some(v)
        })
    }
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("")
    }
    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// How a stream ends after its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The terminating zero-length chunk; the connection stays usable.
    Finish,
    /// The connection is closed mid-body.
    Reset,
    /// Nothing more is ever sent.
    Hang,
}

/// What the server answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A whole response with `Content-Length`.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// A chunked response: each chunk is sent after its delay.
    Chunked {
        status: u16,
        headers: Vec<(String, String)>,
        chunks: Vec<(Duration, Vec<u8>)>,
        end: StreamEnd,
    },
    /// Read the request, never answer.
    Hang,
    /// Close the connection without answering.
    Reset,
    /// Wait, then answer.
    Delayed(Duration, Box<Reply>),
    /// Wait, then compute the answer: for a server that acts on the request only later
    /// (a venue that applies an order after a lag). The computation runs after the wait
    /// even when the client has gone, as the server would still act.
    Later(Duration, Deferred),
}

/// The computation of a [`Reply::Later`].
#[derive(Clone)]
pub struct Deferred(pub Arc<dyn Fn() -> Reply + Send + Sync>);

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deferred(..)")
    }
}

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::raw(status, "application/json", value.to_string())
    }

    /// A whole (non-streamed) OpenAI chat completion whose message is `content`, in the
    /// envelope OpenAI was recorded sending (id, model snapshot, `refusal`/`annotations`,
    /// usage 412 prompt + 19 completion tokens, `service_tier`, `system_fingerprint`).
    pub fn openai_chat_completion(content: &str) -> Self {
        let body = serde_json::json!({
            "id": "chatcmpl-CcWj9dBmozYrIh53F5tkednY14t4r",
            "object": "chat.completion",
            "created": 1763298303,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 412, "completion_tokens": 19, "total_tokens": 431},
            "service_tier": "default",
            "system_fingerprint": "fp_560af6e559"
        });
        Self::json(200, &body)
    }
    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Reply::Full {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }
    /// A server-sent-events stream of `chunks`, all sent at once unless delayed.
    pub fn sse(chunks: Vec<(Duration, String)>, end: StreamEnd) -> Self {
        Reply::Chunked {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            chunks: chunks
                .into_iter()
                .map(|(d, c)| (d, c.into_bytes()))
                .collect(),
            end,
        }
    }
    /// Adds a header to a `Full` or `Chunked` reply.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        match &mut self {
            Reply::Full { headers, .. } | Reply::Chunked { headers, .. } => {
                headers.push((name.to_ascii_lowercase(), value.to_string()))
            }
            Reply::Delayed(_, inner) => {
                let taken = std::mem::replace(inner.as_mut(), Reply::Hang);
                **inner = taken.with_header(name, value);
            }
            Reply::Hang | Reply::Reset | Reply::Later(..) => {}
        }
        self
    }
}

type Handler = Arc<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

/// A running mock server; stops when dropped.
pub struct MockServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Largest request head or body the mock accepts.
const MAX_REQUEST: usize = 8 * 1024 * 1024;

impl MockServer {
    /// Starts a server on a free loopback port; `handler` answers every request.
    pub fn start(handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static) -> Self {
        let handler: Handler = Arc::new(handler);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let recorded = requests.clone();
        let thread = std::thread::Builder::new()
            .name("mock-http".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("test runtime");
                rt.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind loopback");
                    addr_tx
                        .send(listener.local_addr().expect("local addr"))
                        .expect("report addr");
                    let serve = async {
                        loop {
                            let Ok((socket, _)) = listener.accept().await else {
                                continue;
                            };
                            let (handler, recorded) = (handler.clone(), recorded.clone());
                            tokio::spawn(serve_connection(socket, handler, recorded));
                        }
                    };
                    tokio::select! {
                        _ = serve => {}
                        _ = stop_rx => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(100));
            })
            .expect("spawn mock server thread");
        let addr = addr_rx.recv().expect("mock server address");
        Self {
            addr,
            requests,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().clone()
    }

    /// Requests whose path (without query) equals `route`.
    pub fn count(&self, route: &str) -> usize {
        self.requests
            .lock()
            .iter()
            .filter(|r| r.route() == route)
            .count()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A loopback address where nothing listens (connections are refused).
pub fn refused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("local addr")
}

async fn serve_connection(
    mut socket: TcpStream,
    handler: Handler,
    recorded: Arc<Mutex<Vec<RecordedRequest>>>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let Some(request) = read_request(&mut socket, &mut buf).await else {
            return;
        };
        recorded.lock().push(request.clone());
        let reply = handler(&request);
        if !write_reply(&mut socket, reply).await {
            return;
        }
    }
}

async fn read_request(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<RecordedRequest> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_REQUEST {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if len > MAX_REQUEST {
        return None;
    }
    let body_start = head_end + 4;
    while buf.len() < body_start + len {
        let mut chunk = [0u8; 8192];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[body_start..body_start + len].to_vec();
    buf.drain(..body_start + len);
    Some(RecordedRequest {
        method,
        path,
        headers,
        body,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        418 => "I'm a teapot",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Status",
    }
}

fn head(status: u16, headers: &[(String, String)], framing: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(framing);
    out.push_str("\r\n");
    out.into_bytes()
}

/// Writes a reply; returns whether the connection may serve another request.
async fn write_reply(socket: &mut TcpStream, reply: Reply) -> bool {
    match reply {
        Reply::Delayed(d, inner) => {
            tokio::time::sleep(d).await;
            Box::pin(write_reply(socket, *inner)).await
        }
        Reply::Later(d, compute) => {
            tokio::time::sleep(d).await;
            let reply = (compute.0)();
            Box::pin(write_reply(socket, reply)).await
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
            false
        }
        Reply::Reset => false,
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut out = head(
                status,
                &headers,
                &format!("content-length: {}\r\n", body.len()),
            );
            out.extend_from_slice(&body);
            socket.write_all(&out).await.is_ok()
        }
        Reply::Chunked {
            status,
            headers,
            chunks,
            end,
        } => {
            if socket
                .write_all(&head(status, &headers, "transfer-encoding: chunked\r\n"))
                .await
                .is_err()
            {
                return false;
            }
            for (delay, chunk) in chunks {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if chunk.is_empty() {
                    continue;
                }
                let mut out = format!("{:x}\r\n", chunk.len()).into_bytes();
                out.extend_from_slice(&chunk);
                out.extend_from_slice(b"\r\n");
                if socket.write_all(&out).await.is_err() || socket.flush().await.is_err() {
                    return false;
                }
            }
            match end {
                StreamEnd::Finish => socket.write_all(b"0\r\n\r\n").await.is_ok(),
                StreamEnd::Reset => false,
                StreamEnd::Hang => {
                    std::future::pending::<()>().await;
                    false
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replays_records_streams_and_misbehaves() {
        let server = MockServer::start(|req| match req.route() {
            "/json" => Reply::json(200, &serde_json::json!({"ok": true}))
                .with_header("x-ratelimit-remaining-requests", "9"),
            "/sse" => Reply::sse(
                vec![
                    (Duration::ZERO, "data: a\n\n".into()),
                    (Duration::from_millis(20), "data: b\n\n".into()),
                ],
                StreamEnd::Finish,
            ),
            "/cut" => Reply::sse(
                vec![(Duration::ZERO, "data: a\n\n".into())],
                StreamEnd::Reset,
            ),
            "/hang" => Reply::Hang,
            _ => Reply::Reset,
        });
        let client = reqwest::Client::new();
        let r = client
            .post(format!("{}/json?x=1", server.url()))
            .body("{\"q\":1}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "9");
        assert_eq!(r.text().await.unwrap(), "{\"ok\":true}");
        assert_eq!(
            client
                .get(format!("{}/sse", server.url()))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "data: a\n\ndata: b\n\n"
        );
        let cut = client
            .get(format!("{}/cut", server.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await;
        assert!(cut.is_err(), "a reset mid-body is an error");
        let hang = tokio::time::timeout(
            Duration::from_millis(200),
            client.get(format!("{}/hang", server.url())).send(),
        )
        .await;
        assert!(hang.is_err(), "a hanging server never answers");
        assert!(client
            .get(format!("{}/other", server.url()))
            .send()
            .await
            .is_err());
        let reqs = server.requests();
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(reqs[0].query("x"), Some("1"));
        assert_eq!(reqs[0].body_json().unwrap()["q"], 1);
        assert_eq!(server.count("/sse"), 1);
        let refused = reqwest::Client::new()
            .get(format!("http://{}/", refused_addr()))
            .send()
            .await;
        assert!(refused.is_err());
    }
}
