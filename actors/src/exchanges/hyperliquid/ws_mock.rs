//! A loopback Hyperliquid websocket server for tests: a real TCP listener speaking the
//! websocket protocol (tokio-tungstenite), answering as the venue documents.
//!
//! Frame shapes, from the official docs (hyperliquid.gitbook.io/hyperliquid-docs/
//! for-developers/api/websocket, pages "Subscriptions" and "Timeouts and heartbeats"):
//! - subscription acknowledgement: `{"channel":"subscriptionResponse","data":{"method":
//!   "subscribe","subscription":{...}}}` (websocket page);
//! - heartbeat: the client's `{"method":"ping"}` is answered with `{"channel":"pong"}`
//!   (heartbeats page);
//! - `allMids`: `{"channel":"allMids","data":{"mids":{"BTC":"80868.5",...}}}` (subscriptions
//!   page, `AllMids`; values as recorded in NautilusTrader's `ws_allmids.json` capture);
//! - `l2Book`: `{"channel":"l2Book","data":{"coin","time","levels":[[bids],[asks]]}}` with
//!   levels `{"px","sz","n"}` (`WsBook`, `WsLevel`);
//! - `bbo`: `{"channel":"bbo","data":{"coin","time","bbo":[WsLevel|null, WsLevel|null]}}`
//!   (`WsBbo`);
//! - `trades`: `{"channel":"trades","data":[{"coin","side","px","sz","hash","time","tid",
//!   "users"}]}` (`WsTrade`);
//! - `candle`: `{"channel":"candle","data":{"t","T","s","i","o","c","h","l","v","n"}}`
//!   (`Candle`). The docs type `o,c,h,l,v` as numbers, but the REST `candleSnapshot` answer
//!   recorded in the Python SDK's cassettes carries them as decimal strings; no recorded
//!   websocket candle frame was available, so the mock sends strings (the parser accepts both).
//!
//! User channels (same page: `orderUpdates` → `WsOrder[]`, `userFills` → `WsUserFills`,
//! `userEvents` → `WsUserEvent`, whose frames the server labels with channel `user`, as the
//! official Python SDK's `ws_msg_to_identifier` and the recorded liquidation fill
//! `{"channel":"user","data":{"fills":[...]}}` show): every `userFills` subscription is
//! answered with one frame carrying `isSnapshot: true` and the user's fills so far, then
//! live frames without the flag. With a REST mock to follow ([`HlWsMock::follow`]), the
//! mock's account drives them: each new fill goes out on `userFills` and on `userEvents`
//! (`{"fills":[...]}`), and each change of an order's status or remaining size on
//! `orderUpdates` (no snapshot there: the venue sends only changes). Other users' fills
//! are sent by the test ([`user_fills_frame`]).
//!
//! Faults a test can inject: a server-initiated close, silence (no data, no pongs), a frame
//! cut in half (half a websocket frame written, then the TCP connection dropped), malformed
//! JSON, and connection refused (the listener is closed until [`HlWsMock::reopen`]).
//!
//! Owns: its listener and the newest connection. Never: the network beyond loopback.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::mock::UserFeed;

enum Command {
    Text(String),
    Close,
    Cut(String),
}

#[derive(Default)]
struct Shared {
    /// The REST mock whose account drives the user channels, if any.
    user_feed: Mutex<Option<UserFeed>>,
    subscriptions: Mutex<Vec<Value>>,
    connections: AtomicUsize,
    pings: AtomicUsize,
    silent: AtomicBool,
    current: Mutex<Option<mpsc::UnboundedSender<Command>>>,
}

/// The mock server; dropped, it stops listening.
pub struct HlWsMock {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl HlWsMock {
    /// Listens on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept: Mutex::new(Some(accept)),
        })
    }

    /// `ws://127.0.0.1:<port>/ws`.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Pings received so far.
    pub fn pings(&self) -> usize {
        self.shared.pings.load(Ordering::SeqCst)
    }

    /// Every `subscription` object received, over all connections, in order.
    pub fn subscriptions(&self) -> Vec<Value> {
        self.shared.subscriptions.lock().clone()
    }

    /// Whether a connection is open now.
    pub fn has_connection(&self) -> bool {
        self.shared
            .current
            .lock()
            .as_ref()
            .is_some_and(|c| !c.is_closed())
    }

    fn command(&self, c: Command) -> bool {
        self.shared
            .current
            .lock()
            .as_ref()
            .is_some_and(|tx| tx.send(c).is_ok())
    }

    /// Sends a text frame on the open connection (false: none open).
    pub fn send_text(&self, text: impl Into<String>) -> bool {
        self.command(Command::Text(text.into()))
    }

    /// A `bbo` frame with both sides.
    pub fn send_bbo(&self, coin: &str, bid: &str, ask: &str, time: i64) -> bool {
        self.send_text(bbo_frame(coin, bid, ask, time))
    }

    /// Closes the open connection with a close frame (code 1001, going away).
    pub fn close(&self) -> bool {
        self.command(Command::Close)
    }

    /// Writes the first half of a websocket frame carrying `text`, then drops the TCP
    /// connection.
    pub fn cut_frame(&self, text: impl Into<String>) -> bool {
        self.command(Command::Cut(text.into()))
    }

    /// Stops answering: no pongs, no data (the connection stays open). User-channel
    /// frames due meanwhile (a snapshot, new fills, order changes) are lost, never sent
    /// later: only REST reconciliation can find those facts.
    pub fn set_silent(&self, silent: bool) {
        self.shared.silent.store(silent, Ordering::SeqCst);
    }

    /// Closes the listener and the open connection: connecting is refused until
    /// [`HlWsMock::reopen`].
    pub fn refuse(&self) {
        if let Some(task) = self.accept.lock().take() {
            task.abort();
        }
        self.shared.current.lock().take();
    }

    /// Drives the user channels from the REST mock's account: its fills and order
    /// changes are pushed to connections subscribed for its wallet.
    pub fn follow(&self, feed: UserFeed) {
        *self.shared.user_feed.lock() = Some(feed);
    }

    /// Listens again on the same port.
    pub async fn reopen(&self) -> std::io::Result<()> {
        let listener = TcpListener::bind(self.addr).await?;
        let task = tokio::spawn(accept_loop(listener, self.shared.clone()));
        *self.accept.lock() = Some(task);
        Ok(())
    }
}

impl Drop for HlWsMock {
    fn drop(&mut self) {
        self.refuse();
    }
}

/// A `bbo` data frame.
pub fn bbo_frame(coin: &str, bid: &str, ask: &str, time: i64) -> String {
    json!({"channel": "bbo", "data": {"coin": coin, "time": time, "bbo": [
        {"px": bid, "sz": "1.5", "n": 2}, {"px": ask, "sz": "0.7", "n": 1}]}})
    .to_string()
}

/// An `allMids` frame, values as recorded from the venue.
pub fn all_mids_frame() -> String {
    json!({"channel": "allMids", "data": {"mids": {"@142": "80907.5", "BTC": "80868.5", "ETH": "2296.45", "SOL": "94.8775", "PURR/USDC": "0.067131"}}}).to_string()
}

/// An `l2Book` frame (levels as in NautilusTrader's recorded book data).
pub fn l2_book_frame(coin: &str, time: i64) -> String {
    json!({"channel": "l2Book", "data": {"coin": coin, "time": time, "levels": [
        [{"px": "98450.50", "sz": "2.5", "n": 3}, {"px": "98449.75", "sz": "1.8", "n": 2}],
        [{"px": "98451.00", "sz": "1.5", "n": 2}, {"px": "98451.75", "sz": "2.1", "n": 3}]]}})
    .to_string()
}

/// A `trades` frame.
pub fn trades_frame(coin: &str, px: &str, time: i64) -> String {
    json!({"channel": "trades", "data": [{"coin": coin, "side": "B", "px": px, "sz": "0.01",
        "hash": "0x0000000000000000000000000000000000000000000000000000000000000000",
        "time": time, "tid": 118906512037719u64,
        "users": ["0x0000000000000000000000000000000000000001", "0x0000000000000000000000000000000000000002"]}]})
    .to_string()
}

/// A `trades` frame of one print: `side` `B` (the buyer was the aggressor) or `A`.
pub fn trade_print_frame(
    coin: &str,
    side: &str,
    px: &str,
    sz: &str,
    tid: u64,
    time: i64,
) -> String {
    json!({"channel": "trades", "data": [{"coin": coin, "side": side, "px": px, "sz": sz,
        "hash": "0x0000000000000000000000000000000000000000000000000000000000000000",
        "time": time, "tid": tid,
        "users": ["0x0000000000000000000000000000000000000001", "0x0000000000000000000000000000000000000002"]}]})
    .to_string()
}

/// A `candle` frame.
/// A `clearinghouseState` frame: the REST answer `state` wrapped with the user and the
/// main dex, as the TypeScript SDK's `ClearinghouseStateEvent` types it (no recording).
pub fn clearinghouse_frame(user: &str, state: &Value) -> String {
    json!({"channel": "clearinghouseState", "data": {"dex": "", "user": user, "clearinghouseState": state}})
        .to_string()
}

pub fn candle_frame(coin: &str, t: i64) -> String {
    json!({"channel": "candle", "data": {"t": t, "T": t + 59_999, "s": coin, "i": "1m",
        "o": "29258.0", "c": "29260.0", "h": "29265.0", "l": "29250.0", "v": "0.98639", "n": 189}})
    .to_string()
}

/// A `userFills` frame for `user` (`WsUserFills`); `fills` in the `WsFill` shape.
pub fn user_fills_frame(user: &str, fills: &[Value], snapshot: bool) -> String {
    let mut data = json!({"user": user, "fills": fills});
    if snapshot {
        data["isSnapshot"] = json!(true);
    }
    json!({"channel": "userFills", "data": data}).to_string()
}

/// A `WsFill` of a perpetual, as the venue sends it (fields and value shapes of the
/// recorded liquidation fill, without its `liquidation`; without `cloid`, as for an order
/// placed without one).
pub fn ws_fill(coin: &str, px: &str, sz: &str, side: &str, oid: u64, tid: u64, time: i64) -> Value {
    json!({"coin": coin, "px": px, "sz": sz, "side": side, "time": time,
        "startPosition": "0.0", "dir": if side == "B" { "Open Long" } else { "Open Short" },
        "closedPnl": "0.0", "hash": format!("0x{tid:064x}"), "oid": oid, "crossed": true,
        "fee": "0.0", "tid": tid, "feeToken": "USDC", "twapId": null})
}

/// What one connection follows of the REST mock's account.
#[derive(Default)]
struct Following {
    fills: bool,
    events: bool,
    orders: bool,
    /// Fills already sent.
    sent_fills: usize,
    /// Each order's last sent (status, remaining size).
    order_states: std::collections::HashMap<u64, (String, rust_decimal::Decimal)>,
}

impl Following {
    /// The frames for what changed at the REST mock since the last call.
    fn frames(&mut self, feed: &UserFeed) -> Vec<String> {
        let mut out = Vec::new();
        let user = feed.wallet().to_string();
        if self.fills || self.events {
            let fills = feed.fills();
            if fills.len() > self.sent_fills {
                let new = &fills[self.sent_fills..];
                if self.fills {
                    out.push(user_fills_frame(&user, new, false));
                }
                if self.events {
                    out.push(json!({"channel": "user", "data": {"fills": new}}).to_string());
                }
                self.sent_fills = fills.len();
            }
        }
        if self.orders {
            let changed: Vec<Value> = feed
                .orders()
                .into_iter()
                .filter(|o| {
                    let state = (o.status.clone(), o.sz);
                    self.order_states.insert(o.oid, state.clone()) != Some(state)
                })
                .map(|o| o.json)
                .collect();
            if !changed.is_empty() {
                out.push(json!({"channel": "orderUpdates", "data": changed}).to_string());
            }
        }
        out
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(serve(tcp, shared.clone()));
    }
}

async fn serve(tcp: TcpStream, shared: Arc<Shared>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let (tx, mut rx) = mpsc::unbounded_channel();
    *shared.current.lock() = Some(tx);
    let mut following = Following::default();
    // How often the REST mock's account is looked at for changes to push.
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = poll.tick() => {
                let feed = shared.user_feed.lock().clone();
                if let Some(feed) = feed {
                    let frames = following.frames(&feed);
                    // A silent server loses what it would have pushed meanwhile.
                    if shared.silent.load(Ordering::SeqCst) {
                        continue;
                    }
                    for frame in frames {
                        if ws.send(Message::text(frame)).await.is_err() { return; }
                    }
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
                Some(Ok(Message::Text(t))) => {
                    let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
                    match v.get("method").and_then(Value::as_str) {
                        Some("ping") => {
                            shared.pings.fetch_add(1, Ordering::SeqCst);
                            if !shared.silent.load(Ordering::SeqCst)
                                && ws.send(Message::text(r#"{"channel":"pong"}"#)).await.is_err() {
                                return;
                            }
                        }
                        Some("subscribe") => {
                            let sub = v.get("subscription").cloned().unwrap_or(Value::Null);
                            shared.subscriptions.lock().push(sub.clone());
                            let frames = subscribe_user(&shared, &sub, &mut following);
                            if !shared.silent.load(Ordering::SeqCst) {
                                let ack = json!({"channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": sub}});
                                if ws.send(Message::text(ack.to_string())).await.is_err() { return; }
                                for frame in frames {
                                    if ws.send(Message::text(frame)).await.is_err() { return; }
                                }
                            }
                        }
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    }
}

/// Starts following a user channel of the REST mock's account (when `sub` names its
/// wallet) and returns the frames the venue sends at once: `userFills` answers with its
/// snapshot (the account's fills so far, or none for another user).
fn subscribe_user(shared: &Shared, sub: &Value, following: &mut Following) -> Vec<String> {
    let (Some(kind), Some(user)) = (
        sub.get("type").and_then(Value::as_str),
        sub.get("user").and_then(Value::as_str),
    ) else {
        return Vec::new();
    };
    let feed = shared.user_feed.lock().clone();
    let ours = feed
        .as_ref()
        .filter(|f| f.wallet().to_string().eq_ignore_ascii_case(user));
    match (kind, ours) {
        ("userFills", Some(feed)) => {
            let fills = feed.fills();
            following.fills = true;
            following.sent_fills = following.sent_fills.max(fills.len());
            // The venue sends the newest first.
            let newest_first: Vec<Value> = fills.into_iter().rev().collect();
            vec![user_fills_frame(user, &newest_first, true)]
        }
        ("userFills", None) => vec![user_fills_frame(user, &[], true)],
        ("userEvents", Some(feed)) => {
            following.events = true;
            following.sent_fills = following.sent_fills.max(feed.fills().len());
            Vec::new()
        }
        ("orderUpdates", Some(feed)) => {
            following.orders = true;
            for o in feed.orders() {
                following.order_states.insert(o.oid, (o.status, o.sz));
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}
