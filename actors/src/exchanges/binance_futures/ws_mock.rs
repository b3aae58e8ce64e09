//! A loopback Binance USDⓈ-M futures websocket server for tests (feature `testkit`): a real
//! TCP listener speaking the websocket protocol (tokio-tungstenite), answering as the venue
//! documents.
//!
//! Facts, from developers.binance.com (derivatives → USDⓈ-M futures → "Websocket Market
//! Streams" and "User Data Streams"):
//! - combined market streams at `/stream?streams=<a>/<b>/...`, each event wrapped as
//!   `{"stream":"<name>","data":<event>}`; the user data stream at `/ws/<listenKey>`, each
//!   event as is;
//! - the server sends a ping frame every 3 minutes and drops a connection that sends no
//!   pong within 10 minutes; a connection is valid for 24 hours (the mock's
//!   [`FuturesWsMock::set_max_lifetime`] closes it earlier, as the venue does at 24 h);
//! - frame shapes: `markPriceUpdate`, `forceOrder`, `aggTrade`, `bookTicker`,
//!   `ORDER_TRADE_UPDATE`, `ACCOUNT_UPDATE`, `listenKeyExpired` with the fields and values of
//!   the docs' examples (the same values the NautilusTrader test data records).
//!
//! Faults a test can inject: a server-initiated close, silence (no data, no pings), a frame
//! cut in half (half a websocket frame written, then the TCP connection dropped),
//! malformed JSON, and connection refused (listener closed until [`FuturesWsMock::reopen`]).
//!
//! Owns: its listener and the newest market and user connection. Never: the network beyond
//! loopback, or REST (the listen key's REST calls are the futures REST mock's).

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    /// `/stream?streams=...`
    Market,
    /// `/ws/<listenKey>`
    User,
}

enum Command {
    Text(String),
    Close,
    Cut(String),
}

struct Shared {
    connections: AtomicUsize,
    user_connections: AtomicUsize,
    pongs: AtomicUsize,
    silent: AtomicBool,
    /// The streams named by each market connection, in order.
    stream_sets: Mutex<Vec<Vec<String>>>,
    /// The listen key of each user connection, in order.
    listen_keys: Mutex<Vec<String>>,
    market: Mutex<Option<mpsc::UnboundedSender<Command>>>,
    user: Mutex<Option<mpsc::UnboundedSender<Command>>>,
    ping_every: Mutex<Duration>,
    max_lifetime: Mutex<Option<Duration>>,
}

/// The mock server; dropped, it stops listening.
pub struct FuturesWsMock {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl FuturesWsMock {
    /// Listens on an ephemeral loopback port; pings every 3 minutes as the venue does.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            connections: AtomicUsize::new(0),
            user_connections: AtomicUsize::new(0),
            pongs: AtomicUsize::new(0),
            silent: AtomicBool::new(false),
            stream_sets: Mutex::new(Vec::new()),
            listen_keys: Mutex::new(Vec::new()),
            market: Mutex::new(None),
            user: Mutex::new(None),
            ping_every: Mutex::new(Duration::from_secs(180)),
            max_lifetime: Mutex::new(None),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept: Mutex::new(Some(accept)),
        })
    }

    /// `ws://127.0.0.1:<port>`: the base URL, as `ws_url` is configured.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Market connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// User-data connections accepted so far.
    pub fn user_connections(&self) -> usize {
        self.shared.user_connections.load(Ordering::SeqCst)
    }

    /// Pong frames received (answers to the server's pings).
    pub fn pongs(&self) -> usize {
        self.shared.pongs.load(Ordering::SeqCst)
    }

    /// The streams each market connection named, in order.
    pub fn stream_sets(&self) -> Vec<Vec<String>> {
        self.shared.stream_sets.lock().clone()
    }

    /// The listen key of each user connection, in order.
    pub fn listen_keys(&self) -> Vec<String> {
        self.shared.listen_keys.lock().clone()
    }

    /// How often the server pings (the venue: every 3 minutes).
    pub fn set_ping_every(&self, every: Duration) {
        *self.shared.ping_every.lock() = every;
    }

    /// Closes each connection this long after it opened (the venue: 24 h), for new
    /// connections.
    pub fn set_max_lifetime(&self, life: Option<Duration>) {
        *self.shared.max_lifetime.lock() = life;
    }

    fn slot(&self, conn: Conn) -> &Mutex<Option<mpsc::UnboundedSender<Command>>> {
        match conn {
            Conn::Market => &self.shared.market,
            Conn::User => &self.shared.user,
        }
    }

    /// Whether that connection is open now.
    pub fn has_connection(&self, conn: Conn) -> bool {
        self.slot(conn)
            .lock()
            .as_ref()
            .is_some_and(|c| !c.is_closed())
    }

    fn command(&self, conn: Conn, c: Command) -> bool {
        self.slot(conn)
            .lock()
            .as_ref()
            .is_some_and(|tx| tx.send(c).is_ok())
    }

    /// Sends a text frame as is (false: no such connection open).
    pub fn send_text(&self, conn: Conn, text: impl Into<String>) -> bool {
        self.command(conn, Command::Text(text.into()))
    }

    /// Sends `event` on the market connection wrapped as a combined-stream frame.
    pub fn send_market(&self, stream: &str, event: Value) -> bool {
        self.send_text(Conn::Market, combined(stream, event))
    }

    /// Sends `event` on the user connection (raw, as the user stream sends it).
    pub fn send_user(&self, event: Value) -> bool {
        self.send_text(Conn::User, event.to_string())
    }

    /// Closes that connection with a close frame (1001, going away).
    pub fn close(&self, conn: Conn) -> bool {
        self.command(conn, Command::Close)
    }

    /// Writes the first half of a websocket frame carrying `text`, then drops the TCP
    /// connection.
    pub fn cut_frame(&self, conn: Conn, text: impl Into<String>) -> bool {
        self.command(conn, Command::Cut(text.into()))
    }

    /// Stops sending anything (no data, no pings); connections stay open.
    pub fn set_silent(&self, silent: bool) {
        self.shared.silent.store(silent, Ordering::SeqCst);
    }

    /// Closes the listener and the open connections: connecting is refused until
    /// [`FuturesWsMock::reopen`].
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

impl Drop for FuturesWsMock {
    fn drop(&mut self) {
        self.refuse();
    }
}

/// `{"stream":<stream>,"data":<event>}`.
pub fn combined(stream: &str, event: Value) -> String {
    json!({"stream": stream, "data": event}).to_string()
}

/// A `markPriceUpdate` (the docs' example, with the contract and values given).
pub fn mark_price_event(pair: &str, mark: &str, funding: &str, next_funding_ms: i64) -> Value {
    json!({"e": "markPriceUpdate", "E": 1562305380000i64, "s": pair, "p": mark,
        "i": "11784.62659091", "P": "11784.25641265", "r": funding, "T": next_funding_ms})
}

/// A `forceOrder` (the docs' example shape).
pub fn force_order_event(pair: &str, side: &str, qty: &str, avg_price: &str, time: i64) -> Value {
    json!({"e": "forceOrder", "E": time, "o": {"s": pair, "S": side, "o": "LIMIT", "f": "IOC",
        "q": qty, "p": avg_price, "ap": avg_price, "X": "FILLED", "l": qty, "z": qty, "T": time}})
}

/// An `aggTrade`.
pub fn agg_trade_event(pair: &str, price: &str, time: i64) -> Value {
    json!({"e": "aggTrade", "E": time, "a": 5933014, "s": pair, "p": price, "q": "100",
        "f": 100, "l": 105, "T": time, "m": true})
}

/// An `aggTrade` of aggregate trade id `id`: `qty` at `price`; `buyer_is_maker` (`m`)
/// true means the seller was the aggressor.
pub fn agg_trade_print(
    pair: &str,
    id: u64,
    price: &str,
    qty: &str,
    buyer_is_maker: bool,
    time: i64,
) -> Value {
    json!({"e": "aggTrade", "E": time, "a": id, "s": pair, "p": price, "q": qty,
        "f": id * 10, "l": id * 10 + 1, "T": time, "m": buyer_is_maker})
}

/// A `bookTicker`.
pub fn book_ticker_event(pair: &str, bid: &str, ask: &str, time: i64) -> Value {
    json!({"e": "bookTicker", "u": 400900217, "E": time, "T": time, "s": pair,
        "b": bid, "B": "31.21000000", "a": ask, "A": "40.66000000"})
}

/// An `ORDER_TRADE_UPDATE` for a fill (`x = TRADE`) of `last_qty` at `last_price` with
/// trade id `trade_id`, or a state change (`trade_id = 0`, `x = execution`).
#[allow(clippy::too_many_arguments)]
pub fn order_trade_update_event(
    pair: &str,
    client_id: &str,
    side: &str,
    order_type: &str,
    qty: &str,
    execution: &str,
    status: &str,
    order_id: u64,
    last_qty: &str,
    filled: &str,
    last_price: &str,
    trade_id: u64,
    reduce_only: bool,
) -> Value {
    json!({"e": "ORDER_TRADE_UPDATE", "T": 1568879465651i64, "E": 1568879465651i64, "o": {
        "s": pair, "c": client_id, "S": side, "o": order_type, "f": "GTC", "q": qty,
        "p": "0", "ap": if filled == "0" { "0" } else { last_price }, "sp": "0",
        "x": execution, "X": status, "i": order_id, "l": last_qty, "z": filled,
        "L": last_price, "N": "USDT", "n": "0.01000000", "T": 1568879465651i64,
        "t": trade_id, "b": "0", "a": "0", "m": false, "R": reduce_only,
        "wt": "CONTRACT_PRICE", "ot": order_type, "ps": "BOTH", "cp": false, "AP": "0",
        "cr": "0", "pP": false, "si": 0, "ss": 0, "rp": "0", "V": "NONE"}})
}

/// An `ACCOUNT_UPDATE` with one balance and one position.
pub fn account_update_event(asset: &str, wallet: &str, pair: &str, amount: &str) -> Value {
    json!({"e": "ACCOUNT_UPDATE", "T": 1564745798939i64, "E": 1564745798939i64, "a": {
        "m": "ORDER",
        "B": [{"a": asset, "wb": wallet, "cw": wallet, "bc": "0"}],
        "P": [{"s": pair, "pa": amount, "ep": "6563.6", "bep": "6563.559", "cr": "0",
            "up": "2850.21200", "mt": "isolated", "iw": "13200.70726908", "ps": "BOTH"}]}})
}

/// `listenKeyExpired`.
pub fn listen_key_expired_event(listen_key: &str) -> Value {
    json!({"e": "listenKeyExpired", "E": "1736996475556", "listenKey": listen_key})
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(serve(tcp, shared.clone()));
    }
}

/// The query's `streams` list (`a/b/c`), or `None` for a `/ws/<key>` path (with the key).
fn route(uri: &str) -> (Conn, Vec<String>) {
    if let Some(key) = uri.strip_prefix("/ws/") {
        return (Conn::User, vec![key.to_string()]);
    }
    let streams = uri
        .split_once("streams=")
        .map(|(_, s)| s.split('&').next().unwrap_or(""))
        .unwrap_or("");
    (
        Conn::Market,
        streams
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

// The handshake callback's error type is tungstenite's `ErrorResponse` (an HTTP response),
// fixed by its `Callback` trait.
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
    let (conn, names) = route(&path.lock());
    let (tx, mut rx) = mpsc::unbounded_channel();
    match conn {
        Conn::Market => {
            shared.stream_sets.lock().push(names);
            shared.connections.fetch_add(1, Ordering::SeqCst);
            *shared.market.lock() = Some(tx);
        }
        Conn::User => {
            shared.listen_keys.lock().extend(names);
            shared.user_connections.fetch_add(1, Ordering::SeqCst);
            *shared.user.lock() = Some(tx);
        }
    }
    let every = *shared.ping_every.lock();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let life = *shared.max_lifetime.lock();
    let end_of_life = tokio::time::sleep(life.unwrap_or(Duration::from_secs(365 * 86_400)));
    tokio::pin!(end_of_life);
    loop {
        tokio::select! {
            _ = &mut end_of_life => {
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
                    // A text frame's header claiming the whole payload (16-bit length
                    // form), then only half of it, then the TCP connection is gone.
                    let bytes = text.into_bytes();
                    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
                    let mut frame = vec![0x81u8, 126];
                    frame.extend_from_slice(&len.to_be_bytes());
                    frame.extend_from_slice(&bytes[..bytes.len() / 2]);
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
