//! A loopback Binance spot websocket server for tests: a real TCP listener speaking the
//! websocket protocol (tokio-tungstenite), sending frames as Binance documents them.
//!
//! Frames, from Binance spot "WebSocket Streams" and "User Data Streams"
//! (developers.binance.com) and the recorded spot user-data events:
//! - market streams are read on `/stream?streams=<a>/<b>`; every frame is the combined
//!   envelope `{"stream":"<name>","data":<payload>}`;
//! - `<pair>@bookTicker`: `{"u","s","b","B","a","A"}` (no event type);
//! - `<pair>@aggTrade`: `{"e":"aggTrade","E","s","a","p","q","f","l","T","m","M"}`;
//! - `<pair>@kline_<i>`: `{"e":"kline","E","s","k":{"t","T","s","i","f","L","o","c","h","l",
//!   "v","n","x","q","V","Q","B"}}`;
//! - `<pair>@depth@100ms`: `{"e":"depthUpdate","E","s","U","u","b":[[p,q]],"a":[[p,q]]}`;
//! - the user stream is read on `/ws/<listenKey>`, events unwrapped: `executionReport`,
//!   `outboundAccountPosition`, `listenKeyExpired` (`{"e":"listenKeyExpired","E",
//!   "listenKey"}`).
//!
//! Behaviour as documented: the server sends a ping frame every 20 s (configurable) and
//! counts the pongs; it closes a connection when its lifetime ends (24 hours at Binance;
//! configurable short here) with a close frame. Faults a test can inject: a server close,
//! silence (no pings, no data), a frame cut in half (half a websocket frame, then the TCP
//! connection dropped), malformed JSON (any text), refused connections (the listener
//! closed until [`BinanceWsMock::reopen`]), and depth updates out of order or missing (the
//! test picks the update ids).
//!
//! Owns: its listener and the newest market and user connections. Never: the network
//! beyond loopback.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// Which connection a command goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conn {
    /// `/stream?streams=...`.
    Market,
    /// `/ws/<listenKey>`.
    User,
}

enum Command {
    Text(String),
    Close,
    Cut(String),
}

struct Shared {
    /// Request paths of every connection accepted, in order.
    paths: Mutex<Vec<String>>,
    pongs: AtomicUsize,
    silent: AtomicBool,
    ping_every: Mutex<Duration>,
    lifetime: Mutex<Duration>,
    market: Mutex<Option<mpsc::UnboundedSender<Command>>>,
    user: Mutex<Option<mpsc::UnboundedSender<Command>>>,
}

impl Shared {
    fn slot(&self, c: Conn) -> &Mutex<Option<mpsc::UnboundedSender<Command>>> {
        match c {
            Conn::Market => &self.market,
            Conn::User => &self.user,
        }
    }
}

/// The mock server; dropped, it stops listening.
pub struct BinanceWsMock {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl BinanceWsMock {
    /// Listens on an ephemeral loopback port; pings every 20 s, connections live 24 h.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            paths: Mutex::new(Vec::new()),
            pongs: AtomicUsize::new(0),
            silent: AtomicBool::new(false),
            ping_every: Mutex::new(Duration::from_secs(20)),
            lifetime: Mutex::new(Duration::from_secs(24 * 3600)),
            market: Mutex::new(None),
            user: Mutex::new(None),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept: Mutex::new(Some(accept)),
        })
    }

    /// `ws://127.0.0.1:<port>` (the `ws_url` of the venue).
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Pings sent every `every` on connections accepted from now on.
    pub fn set_ping_every(&self, every: Duration) {
        *self.shared.ping_every.lock() = every;
    }

    /// The server closes connections accepted from now on after `life` (Binance: 24 h).
    pub fn set_lifetime(&self, life: Duration) {
        *self.shared.lifetime.lock() = life;
    }

    /// Request paths of the connections accepted so far.
    pub fn paths(&self) -> Vec<String> {
        self.shared.paths.lock().clone()
    }

    /// Connections accepted so far whose path starts with `prefix`.
    pub fn connections(&self, prefix: &str) -> usize {
        self.paths()
            .iter()
            .filter(|p| p.starts_with(prefix))
            .count()
    }

    /// Pongs received (answers to the server's pings).
    pub fn pongs(&self) -> usize {
        self.shared.pongs.load(Ordering::SeqCst)
    }

    /// Whether a connection of this kind is open now.
    pub fn has_connection(&self, c: Conn) -> bool {
        self.shared
            .slot(c)
            .lock()
            .as_ref()
            .is_some_and(|tx| !tx.is_closed())
    }

    fn command(&self, c: Conn, cmd: Command) -> bool {
        self.shared
            .slot(c)
            .lock()
            .as_ref()
            .is_some_and(|tx| tx.send(cmd).is_ok())
    }

    /// Sends a text frame (false: no such connection open).
    pub fn send_text(&self, c: Conn, text: impl Into<String>) -> bool {
        self.command(c, Command::Text(text.into()))
    }

    /// Closes the connection with a close frame (code 1001, going away).
    pub fn close(&self, c: Conn) -> bool {
        self.command(c, Command::Close)
    }

    /// Writes the first half of a websocket frame carrying `text`, then drops the TCP
    /// connection.
    pub fn cut_frame(&self, c: Conn, text: impl Into<String>) -> bool {
        self.command(c, Command::Cut(text.into()))
    }

    /// No pings, no data (connections stay open).
    pub fn set_silent(&self, silent: bool) {
        self.shared.silent.store(silent, Ordering::SeqCst);
    }

    /// Closes the listener and the open connections: connecting is refused until
    /// [`BinanceWsMock::reopen`].
    pub fn refuse(&self) {
        if let Some(task) = self.accept.lock().take() {
            task.abort();
        }
        self.shared.market.lock().take();
        self.shared.user.lock().take();
    }

    /// Listens again on the same port.
    pub async fn reopen(&self) -> std::io::Result<()> {
        let listener = TcpListener::bind(self.addr).await?;
        let task = tokio::spawn(accept_loop(listener, self.shared.clone()));
        *self.accept.lock() = Some(task);
        Ok(())
    }
}

impl Drop for BinanceWsMock {
    fn drop(&mut self) {
        self.refuse();
    }
}

fn envelope(stream: String, data: Value) -> String {
    json!({"stream": stream, "data": data}).to_string()
}

/// A `<pair>@bookTicker` frame.
pub fn book_ticker_frame(pair: &str, update_id: u64, bid: &str, ask: &str) -> String {
    envelope(
        format!("{}@bookTicker", pair.to_ascii_lowercase()),
        json!({"u": update_id, "s": pair, "b": bid, "B": "31.21000000", "a": ask, "A": "40.66000000"}),
    )
}

/// A `<pair>@aggTrade` frame.
pub fn agg_trade_frame(pair: &str, price: &str, time: i64) -> String {
    envelope(
        format!("{}@aggTrade", pair.to_ascii_lowercase()),
        json!({"e": "aggTrade", "E": time, "s": pair, "a": 12345, "p": price, "q": "100",
            "f": 100, "l": 105, "T": time, "m": true, "M": true}),
    )
}

/// A `<pair>@kline_<interval>` frame (the current candle, not closed).
pub fn kline_frame(pair: &str, interval: &str, open_time: i64, close: &str) -> String {
    envelope(
        format!("{}@kline_{interval}", pair.to_ascii_lowercase()),
        json!({"e": "kline", "E": open_time + 1000, "s": pair, "k": {"t": open_time,
            "T": open_time + 59_999, "s": pair, "i": interval, "f": 100, "L": 200,
            "o": "0.0010", "c": close, "h": "0.0025", "l": "0.0010", "v": "1000", "n": 100,
            "x": false, "q": "1.0000", "V": "500", "Q": "0.500", "B": "123456"}}),
    )
}

/// A `<pair>@depth@100ms` frame with update ids `first..=last`.
pub fn depth_frame(
    pair: &str,
    first: u64,
    last: u64,
    bids: &[(&str, &str)],
    asks: &[(&str, &str)],
    time: i64,
) -> String {
    let lv = |v: &[(&str, &str)]| -> Vec<Value> { v.iter().map(|(p, q)| json!([p, q])).collect() };
    envelope(
        format!("{}@depth@100ms", pair.to_ascii_lowercase()),
        json!({"e": "depthUpdate", "E": time, "s": pair, "U": first, "u": last, "b": lv(bids), "a": lv(asks)}),
    )
}

/// `listenKeyExpired`.
pub fn listen_key_expired_frame(listen_key: &str, time: i64) -> String {
    json!({"e": "listenKeyExpired", "E": time, "listenKey": listen_key}).to_string()
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(serve(tcp, shared.clone()));
    }
}

// The handshake callback's error type is tungstenite's (an HTTP response): not ours to box.
#[allow(clippy::result_large_err)]
async fn serve(tcp: TcpStream, shared: Arc<Shared>) {
    let path = Arc::new(Mutex::new(String::new()));
    let seen = path.clone();
    let callback = move |req: &Request, resp: Response| {
        *seen.lock() = req.uri().to_string();
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let path = path.lock().clone();
    let conn = if path.starts_with("/ws/") {
        Conn::User
    } else {
        Conn::Market
    };
    shared.paths.lock().push(path);
    let (tx, mut rx) = mpsc::unbounded_channel();
    *shared.slot(conn).lock() = Some(tx);
    let every = *shared.ping_every.lock();
    let life = *shared.lifetime.lock();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let end = tokio::time::sleep(life);
    tokio::pin!(end);
    loop {
        tokio::select! {
            _ = &mut end => {
                let _ = ws.close(Some(CloseFrame { code: CloseCode::Away, reason: "connection lifetime reached".into() })).await;
                return;
            }
            _ = ping.tick() => {
                if !shared.silent.load(Ordering::SeqCst)
                    && ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            cmd = rx.recv() => match cmd {
                None => return,
                Some(Command::Text(t)) => {
                    if ws.send(Message::text(t)).await.is_err() { return; }
                }
                Some(Command::Close) => {
                    let _ = ws.close(Some(CloseFrame { code: CloseCode::Away, reason: "server going away".into() })).await;
                    return;
                }
                Some(Command::Cut(text)) => {
                    let mut frame = vec![0x81u8];
                    let bytes = text.into_bytes();
                    // Payloads up to 125 bytes use the one-byte length form.
                    frame.push(u8::try_from(bytes.len().min(125)).unwrap_or(125));
                    frame.extend_from_slice(&bytes[..bytes.len().min(125) / 2]);
                    let tcp = ws.get_mut();
                    let _ = tcp.write_all(&frame).await;
                    let _ = tcp.flush().await;
                    return;
                }
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Pong(_))) => {
                    shared.pongs.fetch_add(1, Ordering::SeqCst);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    }
}
