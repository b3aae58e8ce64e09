//! Binance spot SIGNED-endpoint authentication: HMAC-SHA256 over the exact bytes sent.
//!
//! Owns: building the query string (percent-encoded, in the caller's parameter order),
//! appending `recvWindow` and `timestamp`, and the `signature` over `query ‖ body` (query
//! and form body concatenated with *no* `&`, as Binance documents). Never does: I/O, clock
//! reading (the caller passes the timestamp, corrected for server offset), or header
//! handling beyond naming the API-key header.
//!
//! What is signed must be byte-identical to what is sent: sign the encoded string, then send
//! that string unchanged with `&signature=…` appended.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the API key on every authenticated request.
pub const API_KEY_HEADER: &str = "X-MBX-APIKEY";
/// Binance's default `recvWindow` in ms.
pub const DEFAULT_RECV_WINDOW_MS: u64 = 5_000;
/// The largest `recvWindow` Binance accepts.
pub const MAX_RECV_WINDOW_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinanceSigningError {
    #[error("the Binance API secret is empty; set it in the environment")]
    EmptySecret,
    #[error("recvWindow {0} ms is outside 1..=60000; Binance rejects it")]
    BadRecvWindow(u64),
}

/// The HMAC key. Never printed: `Debug` and `Display` show `***`.
#[derive(Clone)]
pub struct ApiSecret {
    mac: Hmac<Sha256>,
}

impl ApiSecret {
    /// Keeps the secret only as a ready-keyed HMAC state, so signing clones the state
    /// instead of re-deriving the key block on every request.
    pub fn new(secret: &str) -> Result<Self, BinanceSigningError> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(BinanceSigningError::EmptySecret);
        }
        // Invariant: HMAC accepts keys of any length, so new_from_slice cannot fail.
        let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|_| BinanceSigningError::EmptySecret)?;
        Ok(Self { mac })
    }

    /// Lowercase hex HMAC-SHA256 of `parts` concatenated.
    pub fn sign_parts(&self, parts: &[&str]) -> String {
        let mut mac = self.mac.clone();
        for p in parts {
            mac.update(p.as_bytes());
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// Signature of a request whose parameters are all in the query string (or all in the
    /// form body).
    pub fn sign(&self, payload: &str) -> String {
        self.sign_parts(&[payload])
    }

    /// Signature of a request with parameters both in the query string and the form body:
    /// Binance signs `query ‖ body` with no separator.
    pub fn sign_query_and_body(&self, query: &str, body: &str) -> String {
        self.sign_parts(&[query, body])
    }
}

impl fmt::Debug for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How long after `timestamp` the server still accepts the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvWindow(u64);

impl RecvWindow {
    pub fn new(ms: u64) -> Result<Self, BinanceSigningError> {
        if ms == 0 || ms > MAX_RECV_WINDOW_MS {
            return Err(BinanceSigningError::BadRecvWindow(ms));
        }
        Ok(Self(ms))
    }
    pub fn millis(self) -> u64 {
        self.0
    }
    /// Binance's timing rule: accepted if `timestamp < serverTime + 1000` and
    /// `serverTime − timestamp ≤ recvWindow`. Lets the connector reject locally what the
    /// server would answer with -1021.
    pub fn accepts(self, timestamp_ms: i64, server_time_ms: i64) -> bool {
        timestamp_ms < server_time_ms + 1_000 && server_time_ms - timestamp_ms <= self.0 as i64
    }
}

impl Default for RecvWindow {
    fn default() -> Self {
        Self(DEFAULT_RECV_WINDOW_MS)
    }
}

/// Percent-encodes a query value: RFC 3986 unreserved characters pass, everything else is
/// `%XX`. Binance verifies the signature over the string as received, so the encoded form
/// is what gets signed.
pub fn encode_component(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0x0f) as usize] as char);
        }
    }
}

/// `k1=v1&k2=v2…`, values percent-encoded, in the given order.
pub fn encode_query(params: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(params.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_component(k, &mut out);
        out.push('=');
        encode_component(v, &mut out);
    }
    out
}

/// The full signed query string of a SIGNED endpoint: the parameters, then `recvWindow`,
/// `timestamp` and finally `signature` (which must be last: it signs everything before it).
pub fn signed_query(
    secret: &ApiSecret,
    params: &[(&str, &str)],
    timestamp_ms: i64,
    recv_window: RecvWindow,
) -> String {
    let mut q = encode_query(params);
    if !q.is_empty() {
        q.push('&');
    }
    q.push_str("recvWindow=");
    q.push_str(&recv_window.millis().to_string());
    q.push_str("&timestamp=");
    q.push_str(&timestamp_ms.to_string());
    let sig = secret.sign(&q);
    q.push_str("&signature=");
    q.push_str(&sig);
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented example secret (Binance Spot API docs, SIGNED endpoint examples).
    const DOC_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

    #[test]
    fn documented_example_query_string_only() {
        let secret = ApiSecret::new(DOC_SECRET).unwrap();
        let payload = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        assert_eq!(
            secret.sign(payload),
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
    }

    #[test]
    fn documented_example_query_and_body() {
        let secret = ApiSecret::new(DOC_SECRET).unwrap();
        assert_eq!(
            secret.sign_query_and_body(
                "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC",
                "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
            ),
            "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
        );
    }

    /// Building the documented example from parameters gives the documented bytes and
    /// signature.
    #[test]
    fn signed_query_builds_the_documented_request() {
        let secret = ApiSecret::new(DOC_SECRET).unwrap();
        let q = signed_query(
            &secret,
            &[
                ("symbol", "LTCBTC"),
                ("side", "BUY"),
                ("type", "LIMIT"),
                ("timeInForce", "GTC"),
                ("quantity", "1"),
                ("price", "0.1"),
            ],
            1499827319559,
            RecvWindow::new(5000).unwrap(),
        );
        assert_eq!(
            q,
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
    }

    /// The documented example with a non-ASCII symbol: the payload is percent-encoded
    /// before signing (required since 2026-01-15), and that encoded string is sent.
    #[test]
    fn signed_query_builds_the_documented_non_ascii_request() {
        let secret = ApiSecret::new(DOC_SECRET).unwrap();
        let q = signed_query(
            &secret,
            &[
                ("symbol", "１２３４５６"),
                ("side", "BUY"),
                ("type", "LIMIT"),
                ("timeInForce", "GTC"),
                ("quantity", "1"),
                ("price", "0.1"),
            ],
            1499827319559,
            RecvWindow::new(5000).unwrap(),
        );
        assert_eq!(
            q,
            "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559&signature=e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"
        );
    }

    #[test]
    fn values_are_percent_encoded_before_signing() {
        assert_eq!(
            encode_query(&[("a", "x y&z=1"), ("b", "é")]),
            "a=x%20y%26z%3D1&b=%C3%A9"
        );
        let secret = ApiSecret::new(DOC_SECRET).unwrap();
        let q = signed_query(&secret, &[("a", "x y")], 1, RecvWindow::default());
        let (unsigned, sig) = q.rsplit_once("&signature=").unwrap();
        assert_eq!(unsigned, "a=x%20y&recvWindow=5000&timestamp=1");
        assert_eq!(sig, secret.sign(unsigned));
    }

    #[test]
    fn secret_never_prints() {
        let secret = ApiSecret::new(DOC_SECRET).unwrap();
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(
            ApiSecret::new("  ").unwrap_err(),
            BinanceSigningError::EmptySecret
        );
    }

    #[test]
    fn recv_window_and_timing_rule() {
        assert!(RecvWindow::new(0).is_err());
        assert!(RecvWindow::new(60_001).is_err());
        let w = RecvWindow::new(5_000).unwrap();
        let server = 1_000_000;
        assert!(w.accepts(server, server));
        assert!(w.accepts(server + 999, server));
        assert!(!w.accepts(server + 1_000, server)); // from the future by 1 s
        assert!(w.accepts(server - 5_000, server));
        assert!(!w.accepts(server - 5_001, server)); // too old
    }
}
