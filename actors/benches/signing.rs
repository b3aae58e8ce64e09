//! Cost of signing one request: Hyperliquid (msgpack → keccak → EIP-712 → secp256k1 ECDSA,
//! target ≤ 100 µs per order) and Binance (HMAC-SHA256 over a typical order query).
//!
//! Run: `cargo bench -p orrery-actors --bench signing -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rust_decimal_macros::dec;

use orrery_actors::exchanges::binance::signing::{signed_query, ApiSecret, RecvWindow};
use orrery_actors::exchanges::hyperliquid::actions::{Action, OrderWire};
use orrery_actors::exchanges::hyperliquid::signing::{action_msgpack, connection_id, l1_digest};
use orrery_actors::exchanges::hyperliquid::{AssetRules, Network, PrivateKey};
use orrery_actors::exchanges::{ClientOrderId, OrderRequest, OrderType, Side, TimeInForce};

/// The Python SDK's published test key; never a real wallet.
const TEST_KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";
/// Binance's documented example secret.
const DOC_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

fn hyperliquid(c: &mut Criterion) {
    let key = PrivateKey::from_hex(TEST_KEY).expect("the SDK test key is valid");
    let eth = AssetRules {
        name: "ETH".into(),
        index: 1,
        sz_decimals: 4,
        max_leverage: 50,
    };
    let request = OrderRequest {
        client_id: ClientOrderId::parse("0x0000000000000000000000000000abcd").expect("valid id"),
        symbol: "ETH".into(),
        side: Side::Buy,
        size: dec!(0.0147),
        order_type: OrderType::Limit {
            price: dec!(1670.1),
            tif: TimeInForce::Gtc,
        },
        reduce_only: false,
        valid_until_ms: None,
    };
    let wire = OrderWire::from_request(&request, &eth, None).expect("on-grid order");
    let action = Action::orders(vec![wire]);
    let nonce = 1_700_000_000_000u64;

    let mut g = c.benchmark_group("hyperliquid");
    g.bench_function("order_request_to_signed_body", |b| {
        b.iter(|| {
            let wire =
                OrderWire::from_request(black_box(&request), &eth, None).expect("on-grid order");
            Action::orders(vec![wire])
                .sign(&key, black_box(nonce), None, Network::Mainnet)
                .expect("signs")
        })
    });
    g.bench_function("sign_prebuilt_order_action", |b| {
        b.iter(|| {
            black_box(&action)
                .clone()
                .sign(&key, black_box(nonce), None, Network::Mainnet)
                .expect("signs")
        })
    });
    g.bench_function("msgpack_keccak_eip712_only", |b| {
        b.iter(|| {
            let bytes = action_msgpack(black_box(&action), "order").expect("encodes");
            l1_digest(
                &connection_id(&bytes, black_box(nonce), None),
                Network::Mainnet,
            )
        })
    });
    g.finish();
}

fn binance(c: &mut Criterion) {
    let secret = ApiSecret::new(DOC_SECRET).expect("non-empty secret");
    let params = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.00150"),
        ("price", "30135.45"),
        ("newClientOrderId", "0192f3a4b5c67d8e9f00112233445566"),
    ];
    let mut g = c.benchmark_group("binance");
    g.bench_function("signed_order_query", |b| {
        b.iter(|| {
            signed_query(
                &secret,
                black_box(&params),
                black_box(1_700_000_000_000),
                RecvWindow::default(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, hyperliquid, binance);
criterion_main!(benches);
