//! Hyperliquid /exchange actions in their exact wire shape, and the signed request body.
//!
//! Owns: the serde layout of each action (field names *and order*: the msgpack of these
//! structs is what gets hashed and signed, so the declaration order below is the wire order
//! `a,b,p,s,r,t,c` and must not be "tidied"), and turning an [`OrderRequest`] into an order
//! wire for one asset. Never does: I/O, nonce choice, price discovery; it validates prices
//! and sizes against the asset's grid and rejects what is off it rather than rounding
//! silently (rounding is the caller's explicit choice, see `wire::round_price`).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::signing::{
    sign_l1_action_expiring, Address, Network, PrivateKey, Signature, SigningError,
};
use super::wire::{float_to_wire, AssetRules, Rounding, WireError};
use crate::exchanges::{ClientOrderId, OrderRequest, OrderType, Side, TimeInForce, TriggerKind};

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("order {client_id} for {symbol}: {source}")]
    Wire {
        client_id: ClientOrderId,
        symbol: String,
        #[source]
        source: WireError,
    },
    #[error("order {client_id} is for {order_symbol} but was built with the rules of {asset}")]
    WrongAsset {
        client_id: ClientOrderId,
        order_symbol: String,
        asset: String,
    },
    #[error("market order {client_id} for {symbol} needs a reference (mid) price to bound its slippage; the risk-approved order carries it")]
    MissingReferencePrice {
        client_id: ClientOrderId,
        symbol: String,
    },
    #[error("market order {client_id}: max_slippage {max_slippage} must be in [0, 1)")]
    BadSlippage {
        client_id: ClientOrderId,
        max_slippage: Decimal,
    },
    #[error("leverage {leverage} for {asset} is outside 1..={max}")]
    BadLeverage {
        asset: String,
        leverage: u32,
        max: u32,
    },
    #[error(transparent)]
    Signing(#[from] SigningError),
}

/// Hyperliquid's time-in-force spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tif {
    Alo,
    Ioc,
    Gtc,
}

impl From<TimeInForce> for Tif {
    fn from(t: TimeInForce) -> Self {
        match t {
            TimeInForce::Alo => Tif::Alo,
            TimeInForce::Ioc => Tif::Ioc,
            TimeInForce::Gtc => Tif::Gtc,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tpsl {
    Tp,
    Sl,
}

impl From<TriggerKind> for Tpsl {
    fn from(k: TriggerKind) -> Self {
        match k {
            TriggerKind::TakeProfit => Tpsl::Tp,
            TriggerKind::StopLoss => Tpsl::Sl,
        }
    }
}

/// `t`: `{"limit":{"tif":…}}` or `{"trigger":{"isMarket":…,"triggerPx":…,"tpsl":…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", rename_all_fields = "camelCase")]
pub enum OrderTypeWire {
    Limit {
        tif: Tif,
    },
    Trigger {
        is_market: bool,
        trigger_px: String,
        tpsl: Tpsl,
    },
}

/// One order on the wire. Field order is the hashed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderWire {
    /// Asset index (position in `meta.universe`).
    pub a: u32,
    /// Is buy.
    pub b: bool,
    /// Limit price, `float_to_wire` string.
    pub p: String,
    /// Size, `float_to_wire` string.
    pub s: String,
    /// Reduce only.
    pub r: bool,
    pub t: OrderTypeWire,
    /// Client order id, `0x` + 32 hex digits.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub c: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Grouping {
    Na,
    NormalTpsl,
    PositionTpsl,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelWire {
    pub a: u32,
    pub o: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelByCloidWire {
    pub asset: u32,
    pub cloid: String,
}

/// An L1 action. `type` comes first on the wire, then the fields in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Action {
    Order {
        orders: Vec<OrderWire>,
        grouping: Grouping,
    },
    Cancel {
        cancels: Vec<CancelWire>,
    },
    CancelByCloid {
        cancels: Vec<CancelByCloidWire>,
    },
    UpdateLeverage {
        asset: u32,
        is_cross: bool,
        leverage: u32,
    },
    /// Dead man's switch: cancel all open orders at `time` (ms); without `time`, unset it.
    ScheduleCancel {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        time: Option<u64>,
    },
    CreateSubAccount {
        name: String,
    },
    SubAccountTransfer {
        sub_account_user: String,
        is_deposit: bool,
        /// Micro-USDC (USD × 10^6) as an integer.
        usd: u64,
    },
}

impl Action {
    pub fn label(&self) -> &'static str {
        match self {
            Action::Order { .. } => "order",
            Action::Cancel { .. } => "cancel",
            Action::CancelByCloid { .. } => "cancelByCloid",
            Action::UpdateLeverage { .. } => "updateLeverage",
            Action::ScheduleCancel { .. } => "scheduleCancel",
            Action::CreateSubAccount { .. } => "createSubAccount",
            Action::SubAccountTransfer { .. } => "subAccountTransfer",
        }
    }

    /// Orders placed independently (no TP/SL grouping).
    pub fn orders(orders: Vec<OrderWire>) -> Action {
        Action::Order {
            orders,
            grouping: Grouping::Na,
        }
    }

    pub fn cancel_by_cloid(asset: &AssetRules, client_id: &ClientOrderId) -> Action {
        Action::CancelByCloid {
            cancels: vec![CancelByCloidWire {
                asset: asset.index,
                cloid: client_id.to_hex128(),
            }],
        }
    }

    pub fn cancel(asset: &AssetRules, venue_order_id: u64) -> Action {
        Action::Cancel {
            cancels: vec![CancelWire {
                a: asset.index,
                o: venue_order_id,
            }],
        }
    }

    pub fn update_leverage(
        asset: &AssetRules,
        leverage: u32,
        is_cross: bool,
    ) -> Result<Action, ActionError> {
        if leverage == 0 || leverage > asset.max_leverage {
            return Err(ActionError::BadLeverage {
                asset: asset.name.clone(),
                leverage,
                max: asset.max_leverage,
            });
        }
        Ok(Action::UpdateLeverage {
            asset: asset.index,
            is_cross,
            leverage,
        })
    }

    /// Signs this action into the body of `POST /exchange`.
    pub fn sign(
        self,
        key: &PrivateKey,
        nonce: u64,
        vault: Option<Address>,
        network: Network,
    ) -> Result<ExchangeRequest, ActionError> {
        self.sign_expiring(key, nonce, vault, None, network)
    }

    /// Signs this action with `expiresAfter` (ms since the epoch): the exchange refuses
    /// it once that time has passed, so it can never be applied later. The expiry is
    /// part of the signed hash and of the body, as the Python SDK sends it.
    pub fn sign_expiring(
        self,
        key: &PrivateKey,
        nonce: u64,
        vault: Option<Address>,
        expires_after: Option<u64>,
        network: Network,
    ) -> Result<ExchangeRequest, ActionError> {
        let signature = sign_l1_action_expiring(
            key,
            &self,
            self.label(),
            nonce,
            vault.as_ref(),
            expires_after,
            network,
        )?;
        Ok(ExchangeRequest {
            action: self,
            nonce,
            signature,
            vault_address: vault,
            expires_after,
        })
    }
}

/// Body of `POST {api}/exchange`:
/// `{"action":…,"nonce":…,"signature":{r,s,v},"vaultAddress":…,"expiresAfter":…}`.
/// The nonce must be the one that was signed (normally the current time in ms, unique per
/// signer); `expiresAfter` is `null` when the action has no expiry, as the SDK sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeRequest {
    pub action: Action,
    pub nonce: u64,
    pub signature: Signature,
    pub vault_address: Option<Address>,
    pub expires_after: Option<u64>,
}

impl OrderWire {
    /// The wire form of one order for `asset`.
    ///
    /// Limit and trigger prices must already be on the asset's grid (an off-grid price is
    /// an error, not silently moved). A market order becomes an IOC limit at most
    /// `max_slippage` away from `reference_price` (normally the mid), rounded toward the
    /// reference so the bound is never exceeded. A market trigger (no `limit_price`) sends
    /// the trigger price as `p`, as the SDK does.
    pub fn from_request(
        order: &OrderRequest,
        asset: &AssetRules,
        reference_price: Option<Decimal>,
    ) -> Result<OrderWire, ActionError> {
        if order.symbol != asset.name {
            return Err(ActionError::WrongAsset {
                client_id: order.client_id.clone(),
                order_symbol: order.symbol.clone(),
                asset: asset.name.clone(),
            });
        }
        let wire_err = |source| ActionError::Wire {
            client_id: order.client_id.clone(),
            symbol: order.symbol.clone(),
            source,
        };
        asset.check_size(order.size).map_err(wire_err)?;
        let (price, t) = match &order.order_type {
            OrderType::Limit { price, tif } => {
                asset.check_price(*price).map_err(wire_err)?;
                (*price, OrderTypeWire::Limit { tif: (*tif).into() })
            }
            OrderType::Market { max_slippage } => {
                if *max_slippage < Decimal::ZERO || *max_slippage >= Decimal::ONE {
                    return Err(ActionError::BadSlippage {
                        client_id: order.client_id.clone(),
                        max_slippage: *max_slippage,
                    });
                }
                let reference =
                    reference_price.ok_or_else(|| ActionError::MissingReferencePrice {
                        client_id: order.client_id.clone(),
                        symbol: order.symbol.clone(),
                    })?;
                let (bound, rounding) = match order.side {
                    Side::Buy => (reference * (Decimal::ONE + max_slippage), Rounding::Down),
                    Side::Sell => (reference * (Decimal::ONE - max_slippage), Rounding::Up),
                };
                let px = asset.round_price(bound, rounding).map_err(wire_err)?;
                (px, OrderTypeWire::Limit { tif: Tif::Ioc })
            }
            OrderType::Trigger {
                trigger_price,
                kind,
                limit_price,
            } => {
                asset.check_price(*trigger_price).map_err(wire_err)?;
                let px = limit_price.unwrap_or(*trigger_price);
                asset.check_price(px).map_err(wire_err)?;
                (
                    px,
                    OrderTypeWire::Trigger {
                        is_market: limit_price.is_none(),
                        trigger_px: float_to_wire(*trigger_price).map_err(wire_err)?,
                        tpsl: (*kind).into(),
                    },
                )
            }
        };
        Ok(OrderWire {
            a: asset.index,
            b: order.side == Side::Buy,
            p: float_to_wire(price).map_err(wire_err)?,
            s: float_to_wire(order.size).map_err(wire_err)?,
            r: order.reduce_only,
            t,
            c: Some(order.client_id.to_hex128()),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::exchanges::hyperliquid::signing::{
        action_msgpack, connection_id, l1_digest, recover_l1_signer, sign_l1_action, Hash32,
    };
    use rust_decimal_macros::dec;

    pub(crate) const SDK_TEST_KEY: &str =
        "0x0123456789012345678901234567890123456789012345678901234567890123";

    /// The SDK test's `{"type":"dummy","num":100000000000}`: not a real action, only a
    /// signing vector.
    #[derive(Serialize)]
    struct Dummy {
        #[serde(rename = "type")]
        kind: &'static str,
        num: u64,
    }

    fn h32(s: &str) -> Hash32 {
        let h = s.strip_prefix("0x").unwrap_or(s);
        let mut out = [0u8; 32];
        hex::decode_to_slice(format!("{h:0>64}"), &mut out).unwrap();
        out
    }

    /// (digest, r, s, v) for one network.
    type Expected = (&'static str, &'static str, &'static str, u8);

    struct Case {
        name: &'static str,
        msgpack: &'static str,
        nonce: u64,
        vault: Option<&'static str>,
        connection_id: &'static str,
        mainnet: Expected,
        testnet: Expected,
    }

    fn check_case<A: Serialize>(action: &A, case: &Case) {
        let key = PrivateKey::from_hex(SDK_TEST_KEY).unwrap();
        let bytes = action_msgpack(action, "test").unwrap();
        assert_eq!(hex::encode(&bytes), case.msgpack, "{}: msgpack", case.name);
        let vault: Option<Address> = case.vault.map(|v| v.parse().unwrap());
        let cid = connection_id(&bytes, case.nonce, vault.as_ref());
        assert_eq!(cid, h32(case.connection_id), "{}: connectionId", case.name);
        for (network, (digest, r, s, v)) in [
            (Network::Mainnet, case.mainnet),
            (Network::Testnet, case.testnet),
        ] {
            let d = l1_digest(&cid, network);
            assert_eq!(hex::encode(d), digest, "{} {network:?}: digest", case.name);
            let sig =
                sign_l1_action(&key, action, "test", case.nonce, vault.as_ref(), network).unwrap();
            // r/s compared as integers: the SDK prints them without leading zeros.
            assert_eq!(
                sig,
                Signature {
                    r: h32(r),
                    s: h32(s),
                    v
                },
                "{} {network:?}: signature",
                case.name
            );
            let signer =
                recover_l1_signer(action, "test", case.nonce, vault.as_ref(), network, &sig)
                    .unwrap();
            assert_eq!(signer, key.address(), "{} {network:?}: recovery", case.name);
        }
    }

    fn limit_order(c: Option<&str>) -> Action {
        Action::orders(vec![OrderWire {
            a: 1,
            b: true,
            p: "100".into(),
            s: "100".into(),
            r: false,
            t: OrderTypeWire::Limit { tif: Tif::Gtc },
            c: c.map(String::from),
        }])
    }

    // ---- every case of the Python SDK's signing test (nonce 0 unless stated) ----

    #[test]
    fn sdk_vector_dummy() {
        check_case(
            &Dummy {
                kind: "dummy",
                num: 100000000000,
            },
            &Case {
                name: "dummy",
                msgpack: "82a474797065a564756d6d79a36e756dcf000000174876e800",
                nonce: 0,
                vault: None,
                connection_id: "0xf528daee6a0bd11407b483cfcd9a48c56884180b70ee86f124053e5fc1bf4d57",
                mainnet: (
                    "e0aabfac88a47d3e7028b6ba6a94b30c8afcfffac26cbce788cf362b1312eafa",
                    "0x53749d5b30552aeb2fca34b530185976545bb22d0b3ce6f62e31be961a59298",
                    "0x755c40ba9bf05223521753995abb2f73ab3229be8ec921f350cb447e384d8ed8",
                    27,
                ),
                testnet: (
                    "c05ce2df9d9d18fab3570746cc27e1136a4020a28561171a24f60c2258989224",
                    "0x542af61ef1f429707e3c76c5293c80d01f74ef853e34b76efffcb57e574f9510",
                    "0x17b8b32f086e8cdede991f1e2c529f5dd5297cbe8128500e00cbaf766204a613",
                    28,
                ),
            },
        );
    }

    #[test]
    fn sdk_vector_order() {
        check_case(
            &limit_order(None),
            &Case {
                name: "order",
                msgpack: "83a474797065a56f72646572a66f72646572739186a16101a162c3a170a3313030a173a3313030a172c2a17481a56c696d697481a3746966a3477463a867726f7570696e67a26e61",
                nonce: 0,
                vault: None,
                connection_id: "0x884f2c32bb6dbdd65f6033e32fb28c0cb6f5b345db0f6471fd3366d85c9252c1",
                mainnet: (
                    "a5cfed1f2d7948de30aecacc7fea3c5e05c1e759020e96239847879b906f801e",
                    "0xd65369825a9df5d80099e513cce430311d7d26ddf477f5b3a33d2806b100d78e",
                    "0x2b54116ff64054968aa237c20ca9ff68000f977c93289157748a3162b6ea940e",
                    28,
                ),
                testnet: (
                    "606be2d25f68768f876dc04a2c3c86ceafd2d6a3c3cbb963454462d6734ebfa6",
                    "0x82b2ba28e76b3d761093aaded1b1cdad4960b3af30212b343fb2e6cdfa4e3d54",
                    "0x6b53878fc99d26047f4d7e8c90eb98955a109f44209163f52d8dc4278cbbd9f5",
                    27,
                ),
            },
        );
    }

    #[test]
    fn sdk_vector_order_cloid() {
        check_case(
            &limit_order(Some("0x00000000000000000000000000000001")),
            &Case {
                name: "order_cloid",
                msgpack: "83a474797065a56f72646572a66f72646572739187a16101a162c3a170a3313030a173a3313030a172c2a17481a56c696d697481a3746966a3477463a163d92230783030303030303030303030303030303030303030303030303030303030303031a867726f7570696e67a26e61",
                nonce: 0,
                vault: None,
                connection_id: "0x0ba500cedd8f4ba6ded620a0b1cd04f124d9ba745e2e2893fcc763bcc1444af5",
                mainnet: (
                    "54a60f6e5107c3ebbd5600ce51c5c208b66c4acdaddf159d34f380f4985f4a3f",
                    "0x41ae18e8239a56cacbc5dad94d45d0b747e5da11ad564077fcac71277a946e3",
                    "0x3c61f667e747404fe7eea8f90ab0e76cc12ce60270438b2058324681a00116da",
                    27,
                ),
                testnet: (
                    "40529778f312dd898fe2e3b86a6f8ad38db2e4fb6e2d8012349b6021407c5328",
                    "0xeba0664bed2676fc4e5a743bf89e5c7501aa6d870bdb9446e122c9466c5cd16d",
                    "0x7f3e74825c9114bc59086f1eebea2928c190fdfbfde144827cb02b85bbe90988",
                    28,
                ),
            },
        );
    }

    #[test]
    fn sdk_vector_dummy_vault() {
        check_case(
            &Dummy {
                kind: "dummy",
                num: 100000000000,
            },
            &Case {
                name: "dummy_vault",
                msgpack: "82a474797065a564756d6d79a36e756dcf000000174876e800",
                nonce: 0,
                // The SDK test signs for this vault address (its own test wallet).
                vault: Some("0x1719884eb866cb12b2287399b15f7db5e7d775ea"),
                connection_id: "0xde9e09a7a3da45cc694096d4bfdcd89bc1b892d05497c5ecc1f56c335945184c",
                mainnet: (
                    "fc2d745b97fc2d89fbca951d3665f56f14e8b2fa19d21dbd137ab115fcd5b4f1",
                    "0x3c548db75e479f8012acf3000ca3a6b05606bc2ec0c29c50c515066a326239",
                    "0x4d402be7396ce74fbba3795769cda45aec00dc3125a984f2a9f23177b190da2c",
                    28,
                ),
                testnet: (
                    "ae91fb8ce73153ef15612f60dea044c325a342b9a8b0cbd0df8d3c8c66bef395",
                    "0xe281d2fb5c6e25ca01601f878e4d69c965bb598b88fac58e475dd1f5e56c362b",
                    "0x7ddad27e9a238d045c035bc606349d075d5c5cd00a6cd1da23ab5c39d4ef0f60",
                    27,
                ),
            },
        );
    }

    #[test]
    fn sdk_vector_tpsl() {
        check_case(
            &Action::orders(vec![OrderWire {
                a: 1,
                b: true,
                p: "100".into(),
                s: "100".into(),
                r: false,
                t: OrderTypeWire::Trigger {
                    is_market: true,
                    trigger_px: "103".into(),
                    tpsl: Tpsl::Sl,
                },
                c: None,
            }]),
            &Case {
                name: "tpsl",
                msgpack: "83a474797065a56f72646572a66f72646572739186a16101a162c3a170a3313030a173a3313030a172c2a17481a77472696767657283a869734d61726b6574c3a9747269676765725078a3313033a47470736ca2736ca867726f7570696e67a26e61",
                nonce: 0,
                vault: None,
                connection_id: "0x430a86fb9876e901920d931f5bb20c9d011f6389bd179f39a73c09e6219adcad",
                mainnet: (
                    "012ce9a26d8326e9de0e2e76709c076b94cec6b137031928ec7334c8f3c4028f",
                    "0x98343f2b5ae8e26bb2587daad3863bc70d8792b09af1841b6fdd530a2065a3f9",
                    "0x6b5bb6bb0633b710aa22b721dd9dee6d083646a5f8e581a20b545be6c1feb405",
                    27,
                ),
                testnet: (
                    "28f89042e8188e26f18fb164d9c705db8dcfd6a7e74e793d4917a318dd45f799",
                    "0x971c554d917c44e0e1b6cc45d8f9404f32172a9d3b3566262347d0302896a2e4",
                    "0x206257b104788f80450f8e786c329daa589aa0b32ba96948201ae556d5637eac",
                    28,
                ),
            },
        );
    }

    #[test]
    fn sdk_vector_create_sub_account() {
        check_case(
            &Action::CreateSubAccount {
                name: "example".into(),
            },
            &Case {
                name: "createSubAccount",
                msgpack: "82a474797065b06372656174655375624163636f756e74a46e616d65a76578616d706c65",
                nonce: 0,
                vault: None,
                connection_id: "0x9a7b5272baf65d28b0589bd50863a42ac35897553a6beb274e625b6faf7d6bb1",
                mainnet: (
                    "4423e9ec1018e626f959974e00f3715aa1d91ad58815ae8f11f8c7283e70973c",
                    "0x51096fe3239421d16b671e192f574ae24ae14329099b6db28e479b86cdd6caa7",
                    "0xb71f7d293af92d3772572afb8b102d167a7cef7473388286bc01f52a5c5b423",
                    27,
                ),
                testnet: (
                    "1467a6a95a4a57ea2b1cb7af29b52aa9922df169c5ee945f641d10ccee9d6c21",
                    "0xa699e3ed5c2b89628c746d3298b5dc1cca604694c2c855da8bb8250ec8014a5b",
                    "0x53f1b8153a301c72ecc655b1c315d64e1dcea3ee58921fd7507e35818fcc1584",
                    28,
                ),
            },
        );
    }

    #[test]
    fn sdk_vector_sub_account_transfer() {
        check_case(
            &Action::SubAccountTransfer {
                sub_account_user: "0x1d9470d4b963f552e6f671a81619d395877bf409".into(),
                is_deposit: true,
                usd: 10,
            },
            &Case {
                name: "subAccountTransfer",
                msgpack: "84a474797065b27375624163636f756e745472616e73666572ae7375624163636f756e7455736572d92a307831643934373064346239363366353532653666363731613831363139643339353837376266343039a969734465706f736974c3a37573640a",
                nonce: 0,
                vault: None,
                connection_id: "0xd12f71eba9e3e792812bfdf01a6a92f4d4016bb0541e850b41f770891c0cc447",
                mainnet: (
                    "16d4f3be13b4dfbbe7015924637e6b2cbf8f63eb3c21538c3f5ad73a4b5022c4",
                    "0x43592d7c6c7d816ece2e206f174be61249d651944932b13343f4d13f306ae602",
                    "0x71a926cb5c9a7c01c3359ec4c4c34c16ff8107d610994d4de0e6430e5cc0f4c9",
                    28,
                ),
                testnet: (
                    "16771266fdd99cee549b98d7e3aa30dcace521c450372abf12c3f804a3e96304",
                    "0xe26574013395ad55ee2f4e0575310f003c5bb3351b5425482e2969fa51543927",
                    "0xefb08999196366871f919fd0e138b3a7f30ee33e678df7cfaf203e25f0a4278",
                    28,
                ),
            },
        );
    }

    #[test]
    fn sdk_vector_schedule_cancel() {
        check_case(
            &Action::ScheduleCancel { time: None },
            &Case {
                name: "scheduleCancel",
                msgpack: "81a474797065ae7363686564756c6543616e63656c",
                nonce: 0,
                vault: None,
                connection_id: "0xa2887a3147b6542306b61d311a056fd1753913d63cc904f30cba61712a98f4ae",
                mainnet: (
                    "b2501a589d58456ff3fcb01a4b5e82f70745856837c35dc88c9dc8eb0262cd4f",
                    "0x6cdfb286702f5917e76cd9b3b8bf678fcc49aec194c02a73e6d4f16891195df9",
                    "0x6557ac307fa05d25b8d61f21fb8a938e703b3d9bf575f6717ba21ec61261b2a0",
                    27,
                ),
                testnet: (
                    "7ed5032a58c1a14bffb06942a63f6ea3cbc688352cb7cf0b76c26ec80c6a16ee",
                    "0xc75bb195c3f6a4e06b7d395acc20bbb224f6d23ccff7c6a26d327304e6efaeed",
                    "0x342f8ede109a29f2c0723bd5efb9e9100e3bbb493f8fb5164ee3d385908233df",
                    28,
                ),
            },
        );
    }

    #[test]
    fn sdk_vector_schedule_cancel_time() {
        check_case(
            &Action::ScheduleCancel {
                time: Some(123456789),
            },
            &Case {
                name: "scheduleCancel_time",
                msgpack: "82a474797065ae7363686564756c6543616e63656ca474696d65ce075bcd15",
                nonce: 0,
                vault: None,
                connection_id: "0x4be18e445114437c5d1d9dd35a09f5601a3cc34ed4ac94a0281251b9bd8f6832",
                mainnet: (
                    "9393b4b91056b0153438d4e16380db88f41a0e56d8d9e508084748b19e475598",
                    "0x609cb20c737945d070716dcc696ba030e9976fcf5edad87afa7d877493109d55",
                    "0x16c685d63b5c7a04512d73f183b3d7a00da5406ff1f8aad33f8ae2163bab758b",
                    28,
                ),
                testnet: (
                    "40daefeaa4ffca7e11aa99be35f1afc0a15ec5137f3240f778284d8bd6d42639",
                    "0x4e4f2dbd4107c69783e251b7e1057d9f2b9d11cee213441ccfa2be63516dc5bc",
                    "0x706c656b23428c8ba356d68db207e11139ede1670481a9e01ae2dfcdb0e1a678",
                    27,
                ),
            },
        );
    }

    /// The SDK's phantom_prod case, built from our own `OrderRequest` (ETH, asset 4 in the
    /// SDK test's universe, szDecimals 4): proves the request → wire path, not just serde.
    #[test]
    fn sdk_vector_phantom_prod_from_order_request() {
        let eth = AssetRules {
            name: "ETH".into(),
            index: 4,
            sz_decimals: 4,
            max_leverage: 50,
        };
        let req = OrderRequest {
            client_id: ClientOrderId::generate(),
            symbol: "ETH".into(),
            side: Side::Buy,
            size: dec!(0.0147),
            order_type: OrderType::Limit {
                price: dec!(1670.1),
                tif: TimeInForce::Ioc,
            },
            reduce_only: false,
            valid_until_ms: None,
        };
        let mut wire = OrderWire::from_request(&req, &eth, None).unwrap();
        assert_eq!(wire.c.as_deref(), Some(req.client_id.to_hex128().as_str()));
        wire.c = None; // the SDK vector has no cloid
        check_case(
            &Action::orders(vec![wire]),
            &Case {
                name: "phantom_prod",
                msgpack: "83a474797065a56f72646572a66f72646572739186a16104a162c3a170a6313637302e31a173a6302e30313437a172c2a17481a56c696d697481a3746966a3496f63a867726f7570696e67a26e61",
                // test_phantom_agent_creation_matches_production signs at this timestamp.
                nonce: 1677777606040,
                vault: None,
                connection_id: "0x0fcbeda5ae3c4950a548021552a4fea2226858c4453571bf3f24ba017eac2908",
                mainnet: (
                    "be5eb0697b77c2acfeaa07a3d4913ae5d06489c63bfd143c5d3d66540a196c43",
                    "0xe302c107c0048633293299b066317048f69f685aa4f536fe56c050efaf04996c",
                    "0x70e01d4d26e3d724fb8f8ab54b3f2544a37ea1b092f83532349405274f3f3962",
                    28,
                ),
                testnet: (
                    "eb995f6f09994a13de522ce0cc454871e81500e01de770e09d9fa6f5d2742601",
                    "0x54d5cc489d4fa822a2788ecbdfe19d8dd478b9373cf0024b19aeb8452dc15474",
                    "0xeef26897cba04c5670c683b27c3601deb3189295a5670dda0b7cb97efe1b860",
                    28,
                ),
            },
        );
    }

    fn btc() -> AssetRules {
        AssetRules {
            name: "BTC".into(),
            index: 0,
            sz_decimals: 5,
            max_leverage: 50,
        }
    }

    fn request(order_type: OrderType, side: Side, size: Decimal) -> OrderRequest {
        OrderRequest {
            client_id: ClientOrderId::parse("0x0000000000000000000000000000abcd").unwrap(),
            symbol: "BTC".into(),
            side,
            size,
            order_type,
            reduce_only: false,
            valid_until_ms: None,
        }
    }

    /// The acceptance check: a request whose signature recovers to the configured wallet.
    #[test]
    fn signed_request_recovers_to_the_wallet() {
        let key = PrivateKey::from_hex(SDK_TEST_KEY).unwrap();
        let req = request(
            OrderType::Limit {
                price: dec!(30135),
                tif: TimeInForce::Alo,
            },
            Side::Sell,
            dec!(0.01),
        );
        let wire = OrderWire::from_request(&req, &btc(), None).unwrap();
        let nonce = 1_700_000_000_123;
        let body = Action::orders(vec![wire])
            .sign(&key, nonce, None, Network::Mainnet)
            .unwrap();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["nonce"], nonce);
        assert_eq!(json["vaultAddress"], serde_json::Value::Null);
        assert_eq!(
            json["action"]["orders"][0]["c"],
            "0x0000000000000000000000000000abcd"
        );
        assert_eq!(json["action"]["orders"][0]["t"]["limit"]["tif"], "Alo");
        // What a server does: re-read the JSON body, hash the action, recover.
        let action: Action = serde_json::from_value(json["action"].clone()).unwrap();
        let sig: Signature = serde_json::from_value(json["signature"].clone()).unwrap();
        let signer =
            recover_l1_signer(&action, "order", nonce, None, Network::Mainnet, &sig).unwrap();
        assert_eq!(signer, key.address());
        // A different nonce or network does not recover to the wallet.
        let other =
            recover_l1_signer(&action, "order", nonce + 1, None, Network::Mainnet, &sig).unwrap();
        assert_ne!(other, key.address());
        let other =
            recover_l1_signer(&action, "order", nonce, None, Network::Testnet, &sig).unwrap();
        assert_ne!(other, key.address());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Any nonce, vault and network: the signature recovers to the wallet, and only
        /// with the exact nonce it was made for.
        #[test]
        fn signatures_recover_to_the_wallet(nonce in 0u64..u64::MAX, vault in proptest::option::of(proptest::array::uniform20(0u8..)), testnet: bool) {
            let key = PrivateKey::from_hex(SDK_TEST_KEY).unwrap();
            let network = if testnet { Network::Testnet } else { Network::Mainnet };
            let vault = vault.map(Address);
            let action = limit_order(Some("0x00000000000000000000000000000001"));
            let sig = sign_l1_action(&key, &action, "order", nonce, vault.as_ref(), network).unwrap();
            let signer = recover_l1_signer(&action, "order", nonce, vault.as_ref(), network, &sig).unwrap();
            proptest::prop_assert_eq!(signer, key.address());
            let other = recover_l1_signer(&action, "order", nonce ^ 1, vault.as_ref(), network, &sig).unwrap();
            proptest::prop_assert_ne!(other, key.address());
        }
    }

    #[test]
    fn market_orders_become_bounded_ioc_limits() {
        let buy = request(
            OrderType::Market {
                max_slippage: dec!(0.01),
            },
            Side::Buy,
            dec!(0.001),
        );
        let w = OrderWire::from_request(&buy, &btc(), Some(dec!(30135.0))).unwrap();
        // 30135 × 1.01 = 30436.35 → 5 sig figs, rounded down: 30436.
        assert_eq!(w.p, "30436");
        assert_eq!(w.t, OrderTypeWire::Limit { tif: Tif::Ioc });
        let sell = request(
            OrderType::Market {
                max_slippage: dec!(0.01),
            },
            Side::Sell,
            dec!(0.001),
        );
        let w = OrderWire::from_request(&sell, &btc(), Some(dec!(30135.0))).unwrap();
        // 30135 × 0.99 = 29833.65 → rounded up: 29834.
        assert_eq!(w.p, "29834");
        assert!(!w.b);
        assert!(matches!(
            OrderWire::from_request(&sell, &btc(), None),
            Err(ActionError::MissingReferencePrice { .. })
        ));
    }

    #[test]
    fn off_grid_orders_are_rejected_not_rounded() {
        let bad_px = request(
            OrderType::Limit {
                price: dec!(30135.5),
                tif: TimeInForce::Gtc,
            },
            Side::Buy,
            dec!(0.01),
        );
        assert!(matches!(
            OrderWire::from_request(&bad_px, &btc(), None),
            Err(ActionError::Wire {
                source: WireError::TooManySigFigs { .. },
                ..
            })
        ));
        let bad_sz = request(
            OrderType::Limit {
                price: dec!(30135),
                tif: TimeInForce::Gtc,
            },
            Side::Buy,
            dec!(0.000001),
        );
        assert!(matches!(
            OrderWire::from_request(&bad_sz, &btc(), None),
            Err(ActionError::Wire {
                source: WireError::TooManyDecimals { .. },
                ..
            })
        ));
        let mut wrong = bad_sz.clone();
        wrong.symbol = "ETH".into();
        assert!(matches!(
            OrderWire::from_request(&wrong, &btc(), None),
            Err(ActionError::WrongAsset { .. })
        ));
    }

    #[test]
    fn trigger_orders_carry_trigger_price_and_kind() {
        let tp = request(
            OrderType::Trigger {
                trigger_price: dec!(31000),
                kind: TriggerKind::TakeProfit,
                limit_price: Some(dec!(30990)),
            },
            Side::Sell,
            dec!(0.01),
        );
        let w = OrderWire::from_request(&tp, &btc(), None).unwrap();
        assert_eq!(w.p, "30990");
        assert_eq!(
            w.t,
            OrderTypeWire::Trigger {
                is_market: false,
                trigger_px: "31000".into(),
                tpsl: Tpsl::Tp
            }
        );
    }

    #[test]
    fn cancel_and_leverage_actions_have_wire_shapes() {
        let cid = ClientOrderId::parse("0000000000000000000000000000abcd").unwrap();
        let json = serde_json::to_string(&Action::cancel_by_cloid(&btc(), &cid)).unwrap();
        assert_eq!(
            json,
            r#"{"type":"cancelByCloid","cancels":[{"asset":0,"cloid":"0x0000000000000000000000000000abcd"}]}"#
        );
        let json = serde_json::to_string(&Action::cancel(&btc(), 62269971)).unwrap();
        assert_eq!(
            json,
            r#"{"type":"cancel","cancels":[{"a":0,"o":62269971}]}"#
        );
        let json =
            serde_json::to_string(&Action::update_leverage(&btc(), 20, true).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"type":"updateLeverage","asset":0,"isCross":true,"leverage":20}"#
        );
        assert!(matches!(
            Action::update_leverage(&btc(), 51, true),
            Err(ActionError::BadLeverage { .. })
        ));
        // The msgpack of a leverage update keeps that order too.
        let bytes =
            action_msgpack(&Action::update_leverage(&btc(), 20, true).unwrap(), "x").unwrap();
        let back: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"type":"updateLeverage","asset":0,"isCross":true,"leverage":20})
        );
    }
}
