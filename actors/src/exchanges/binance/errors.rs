//! Binance spot error answers: the `{"code":…,"msg":…}` body with its HTTP status, what
//! each means for the order and the connector, and the venue error it becomes.
//!
//! Owns: classification of Binance failures, with the venue's message always kept. Never
//! does: I/O, retrying, or clock resync (it tells the connector which one is needed).
//!
//! Classes that matter:
//! - `-1021` (timestamp outside recvWindow) is [`BinanceErrorKind::ClockSkew`]: the request
//!   was refused *before* execution, so after re-reading `GET /api/v3/time` it is safe to
//!   send again. `VenueError` has no clock-skew variant, so it becomes `InvalidRequest`
//!   (never retried blindly) with a reason that says to resync; the connector checks
//!   [`BinanceApiError::kind`] first.
//! - `-2010` (new order rejected) and `-1013` (filter failure) are rejections, except
//!   an insufficient balance, which has its own variant. A `-1013` also tells the venue
//!   its cached filters may be stale ([`BinanceApiError::is_filter_failure`], decided on
//!   the code, never on the text of the error).
//! - HTTP 429 and `-1003`/`-1015` are rate limits (Retry-After kept); HTTP 418 is an IP ban,
//!   also a rate limit with the ban's Retry-After (or the "banned until" time in the message).
//! - HTTP 5xx and `-1006`/`-1007` leave an order's fate **unknown**: `OutcomeUnknown` for order
//!   sends and cancels (resolve by client id, never re-send), `Unavailable` for reads.
//! - HTTP 403 is a WAF block (rate or security), treated as a rate limit.
//! - USD-M futures (same body shape, same classes): `-2019` margin insufficient is an
//!   insufficient balance; `-2022` reduce-only rejected, `-4164` under the minimum
//!   notional (also a filter failure) and `-4120` (order type only on the Algo Order API)
//!   are rejections.

use std::time::Duration;

use serde::Deserialize;

use crate::clock::Millis;
use crate::exchanges::VenueError;

/// Weight used in the current minute, on every response.
pub const USED_WEIGHT_HEADER: &str = "X-MBX-USED-WEIGHT-1M";
/// Orders placed in the last 10 s / day, on order responses.
pub const ORDER_COUNT_10S_HEADER: &str = "X-MBX-ORDER-COUNT-10S";
pub const ORDER_COUNT_1D_HEADER: &str = "X-MBX-ORDER-COUNT-1D";

/// What the failed request was, because a 5xx means different things for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    OrderSend,
    Cancel,
    Read,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinanceErrorKind {
    /// -1021: resync the server time offset, then the request may be sent again.
    ClockSkew,
    Rejected,
    InsufficientBalance,
    UnknownSymbol,
    OrderNotFound,
    InvalidRequest,
    RateLimited,
    /// HTTP 418: the IP is banned until Retry-After.
    Banned,
    /// HTTP 403: a WAF rule was violated.
    Firewall,
    Auth,
    /// 5xx / -1006 / -1007: the request may or may not have executed.
    OutcomeUnknown,
    Unavailable,
}

/// One Binance error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinanceApiError {
    pub http_status: u16,
    /// Binance's code (always negative); `None` when the body was not the JSON error shape
    /// (HTML from a proxy, empty body).
    pub code: Option<i64>,
    /// Binance's message, or the start of the raw body.
    pub msg: String,
    pub retry_after: Option<Duration>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: i64,
    msg: String,
}

/// Longest raw body kept in a message.
const MAX_RAW_BODY: usize = 512;

fn clip(s: &str) -> String {
    if s.len() <= MAX_RAW_BODY {
        return s.to_string();
    }
    let mut end = MAX_RAW_BODY;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// "… IP banned until 1620286253180. …" → the ban's end, in ms.
fn banned_until_ms(msg: &str) -> Option<Millis> {
    let rest = &msg[msg.find("banned until ")? + "banned until ".len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Reads an error answer. `retry_after` is the `Retry-After` header (seconds) if any;
/// `now_ms` turns a "banned until" time in the message into a wait when the header is absent.
pub fn parse_error_response(
    http_status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now_ms: Millis,
) -> BinanceApiError {
    let text = String::from_utf8_lossy(body);
    let (code, msg) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => (Some(b.code), b.msg),
        Err(_) => (None, clip(text.trim())),
    };
    let retry_after = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .or_else(|| {
            let until = banned_until_ms(&msg)?;
            u64::try_from(until - now_ms)
                .ok()
                .map(Duration::from_millis)
        });
    BinanceApiError {
        http_status,
        code,
        msg,
        retry_after,
    }
}

/// Binance's code for an order that broke one of the symbol's filters (PRICE_FILTER,
/// LOT_SIZE, NOTIONAL, ...).
pub const FILTER_FAILURE: i64 = -1013;
/// USD-M futures: "Margin is insufficient."
pub const MARGIN_INSUFFICIENT: i64 = -2019;
/// USD-M futures: "ReduceOnly Order is rejected." (nothing to reduce, or it would flip).
pub const REDUCE_ONLY_REJECTED: i64 = -2022;
/// USD-M futures: "Order's notional must be no smaller than …" (MIN_NOTIONAL).
pub const MIN_NOTIONAL_FAILURE: i64 = -4164;
/// USD-M futures: the order type must go to the Algo Order API (conditional orders since
/// 2025-12-09).
pub const ALGO_ORDER_TYPE: i64 = -4120;

impl BinanceApiError {
    /// The order broke one of the symbol's filters (`-1013`): refused, and the filters
    /// cached from exchangeInfo may be stale.
    pub fn is_filter_failure(&self) -> bool {
        matches!(self.code, Some(FILTER_FAILURE) | Some(MIN_NOTIONAL_FAILURE))
    }

    pub fn kind(&self, request: RequestKind) -> BinanceErrorKind {
        use BinanceErrorKind as K;
        let affects_orders = matches!(request, RequestKind::OrderSend | RequestKind::Cancel);
        let unknown_or_unavailable = if affects_orders {
            K::OutcomeUnknown
        } else {
            K::Unavailable
        };
        match self.http_status {
            418 => return K::Banned,
            429 => return K::RateLimited,
            403 => return K::Firewall,
            401 => return K::Auth,
            s if s >= 500 => return unknown_or_unavailable,
            _ => {}
        }
        let lower = self.msg.to_ascii_lowercase();
        match self.code {
            Some(-1021) => K::ClockSkew,
            Some(-1003) | Some(-1015) => K::RateLimited,
            Some(-1002) | Some(-1022) | Some(-2014) | Some(-2015) => K::Auth,
            Some(-1006) | Some(-1007) => unknown_or_unavailable,
            Some(-1000) | Some(-1001) | Some(-1008) => K::Unavailable,
            Some(-1121) => K::UnknownSymbol,
            Some(-2013) => K::OrderNotFound,
            Some(-2011) if lower.contains("unknown order") => K::OrderNotFound,
            Some(-2010) if lower.contains("insufficient balance") => K::InsufficientBalance,
            Some(MARGIN_INSUFFICIENT) => K::InsufficientBalance,
            Some(-2010)
            | Some(-2011)
            | Some(FILTER_FAILURE)
            | Some(REDUCE_ONLY_REJECTED)
            | Some(MIN_NOTIONAL_FAILURE)
            | Some(ALGO_ORDER_TYPE) => K::Rejected,
            _ if request == RequestKind::OrderSend => K::Rejected,
            _ => K::InvalidRequest,
        }
    }

    /// The venue-neutral error, the venue's code and message kept in the reason.
    pub fn into_venue_error(
        self,
        venue: &str,
        request: RequestKind,
        symbol: Option<&str>,
    ) -> VenueError {
        let kind = self.kind(request);
        let venue = venue.to_string();
        let reason = match self.code {
            Some(code) => format!("HTTP {} code {}: {}", self.http_status, code, self.msg),
            None => format!("HTTP {}: {}", self.http_status, self.msg),
        };
        use BinanceErrorKind as K;
        match kind {
            K::ClockSkew => VenueError::InvalidRequest {
                venue,
                reason: format!(
                    "timestamp outside recvWindow (clock skew); resync with GET /api/v3/time before re-sending ({reason})"
                ),
            },
            K::Rejected => VenueError::Rejected { venue, reason },
            K::InsufficientBalance => VenueError::InsufficientBalance { venue, reason },
            K::UnknownSymbol => VenueError::UnknownSymbol {
                venue,
                symbol: symbol.unwrap_or("?").to_string(),
            },
            K::OrderNotFound => VenueError::OrderNotFound {
                venue,
                client_id: reason,
            },
            K::InvalidRequest => VenueError::InvalidRequest { venue, reason },
            K::RateLimited => VenueError::RateLimited {
                venue,
                retry_after: self.retry_after,
                reason,
            },
            K::Banned => VenueError::RateLimited {
                venue,
                retry_after: self.retry_after,
                reason: format!("IP banned for ignoring 429s ({reason})"),
            },
            K::Firewall => VenueError::RateLimited {
                venue,
                retry_after: self.retry_after,
                reason: format!("blocked by Binance's web application firewall ({reason})"),
            },
            K::Auth => VenueError::Auth { venue, reason },
            K::OutcomeUnknown => VenueError::OutcomeUnknown { venue, reason },
            K::Unavailable => VenueError::Unavailable { venue, reason },
        }
    }
}

/// Reads `X-MBX-USED-WEIGHT-1M` (or an order-count header).
pub fn parse_count_header(value: &str) -> Option<u32> {
    value.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::ErrorClass;

    fn err(status: u16, body: &str) -> BinanceApiError {
        parse_error_response(status, None, body.as_bytes(), 0)
    }

    #[test]
    fn documented_error_body_parses() {
        // The documented example error body.
        let e = err(400, r#"{"code":-1121,"msg":"Invalid symbol."}"#);
        assert_eq!((e.code, e.msg.as_str()), (Some(-1121), "Invalid symbol."));
        let v = e.into_venue_error("binance", RequestKind::Read, Some("FOOBAR"));
        assert_eq!(
            v,
            VenueError::UnknownSymbol {
                venue: "binance".into(),
                symbol: "FOOBAR".into()
            }
        );
    }

    #[test]
    fn clock_skew_is_its_own_kind_and_says_to_resync() {
        let e = err(
            400,
            r#"{"code":-1021,"msg":"Timestamp for this request is outside of the recvWindow."}"#,
        );
        assert_eq!(e.kind(RequestKind::OrderSend), BinanceErrorKind::ClockSkew);
        let v = e.into_venue_error("binance", RequestKind::OrderSend, None);
        assert_eq!(v.class(), ErrorClass::BadRequest);
        assert!(v.to_string().contains("resync"));
        assert!(v.to_string().contains("outside of the recvWindow"));
    }

    #[test]
    fn rejections_keep_the_venue_message() {
        let e = err(
            400,
            r#"{"code":-2010,"msg":"Order would immediately match and take."}"#,
        );
        let v = e.into_venue_error("binance", RequestKind::OrderSend, None);
        assert!(
            matches!(&v, VenueError::Rejected { reason, .. } if reason.contains("immediately match"))
        );
        let e = err(400, r#"{"code":-1013,"msg":"Filter failure: NOTIONAL"}"#);
        assert_eq!(e.kind(RequestKind::OrderSend), BinanceErrorKind::Rejected);
        let e = err(
            400,
            r#"{"code":-2010,"msg":"Account has insufficient balance for requested action."}"#,
        );
        assert_eq!(
            e.into_venue_error("binance", RequestKind::OrderSend, None)
                .label(),
            "insufficient_balance"
        );
        let e = err(400, r#"{"code":-2011,"msg":"Unknown order sent."}"#);
        assert_eq!(e.kind(RequestKind::Cancel), BinanceErrorKind::OrderNotFound);
    }

    #[test]
    fn a_filter_failure_is_told_by_its_code_not_its_text() {
        let e = err(400, r#"{"code":-1013,"msg":"Filter failure: LOT_SIZE"}"#);
        assert!(e.is_filter_failure());
        // Binance's other order rejections are not filter failures, whatever they say.
        let e = err(
            400,
            r#"{"code":-2010,"msg":"Order rejected (code -1013 was not the cause)."}"#,
        );
        assert!(!e.is_filter_failure());
        // Not the JSON error shape: no code, nothing to decide on.
        let e = err(400, "code -1013 Filter failure");
        assert!(!e.is_filter_failure());
    }

    #[test]
    fn rate_limits_and_bans_carry_retry_after() {
        let e = parse_error_response(
            429,
            Some("7"),
            br#"{"code":-1003,"msg":"Too much request weight used; current limit is 6000 request weight per 1 MINUTE."}"#,
            0,
        );
        let v = e.into_venue_error("binance", RequestKind::Read, None);
        assert_eq!(
            v.class(),
            ErrorClass::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        // 418 without a header: the ban end in the message gives the wait.
        let e = parse_error_response(
            418,
            None,
            br#"{"code":-1003,"msg":"Way too much request weight used; IP banned until 1620286253180. Please use the websocket for live updates to avoid bans."}"#,
            1620286253180 - 120_000,
        );
        assert_eq!(e.kind(RequestKind::Read), BinanceErrorKind::Banned);
        assert_eq!(e.retry_after, Some(Duration::from_secs(120)));
        let v = e.into_venue_error("binance", RequestKind::Read, None);
        assert!(v.to_string().contains("IP banned"));
        // -1003 under a 400 is still a rate limit.
        assert_eq!(
            err(400, r#"{"code":-1003,"msg":"x"}"#).kind(RequestKind::Read),
            BinanceErrorKind::RateLimited
        );
    }

    #[test]
    fn server_errors_leave_orders_unknown_but_reads_unavailable() {
        let e = err(502, "<html><body>Bad Gateway</body></html>");
        assert_eq!(e.code, None);
        assert!(e.msg.contains("Bad Gateway"));
        assert_eq!(
            e.clone()
                .into_venue_error("binance", RequestKind::OrderSend, None)
                .label(),
            "outcome_unknown"
        );
        assert_eq!(
            e.into_venue_error("binance", RequestKind::Read, None)
                .label(),
            "unavailable"
        );
        let e = err(
            400,
            r#"{"code":-1007,"msg":"Timeout waiting for response from backend server. Send status unknown; execution status unknown."}"#,
        );
        assert_eq!(
            e.kind(RequestKind::Cancel),
            BinanceErrorKind::OutcomeUnknown
        );
    }

    #[test]
    fn auth_and_firewall() {
        let e = err(
            401,
            r#"{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}"#,
        );
        assert_eq!(
            e.into_venue_error("binance", RequestKind::Read, None)
                .class(),
            ErrorClass::Auth
        );
        let e = err(
            400,
            r#"{"code":-1022,"msg":"Signature for this request is not valid."}"#,
        );
        assert_eq!(e.kind(RequestKind::OrderSend), BinanceErrorKind::Auth);
        let e = err(403, "");
        assert_eq!(e.kind(RequestKind::Read), BinanceErrorKind::Firewall);
    }

    #[test]
    fn long_raw_bodies_are_clipped_on_a_char_boundary() {
        let body = "é".repeat(400); // 800 bytes
        let e = err(500, &body);
        assert!(e.msg.len() <= MAX_RAW_BODY + '…'.len_utf8());
        assert_eq!(parse_count_header(" 1234 "), Some(1234));
    }
}
