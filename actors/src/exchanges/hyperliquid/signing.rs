//! Hyperliquid request signing: L1 actions (orders, cancels, leverage, ...) through the
//! EIP-712 "phantom agent", and user-signed actions (usdSend, withdraw) through the
//! `HyperliquidSignTransaction` domain; plus the wallet key, its address and signature
//! recovery.
//!
//! Owns: the exact bytes that are hashed and the secp256k1 signature over them. Never does:
//! I/O, nonce choice (the caller passes the nonce, normally the current time in ms), or
//! building actions (see `actions`).
//!
//! L1 action, as the Python SDK's `sign_l1_action`:
//! 1. `msgpack(action)` with named fields in wire order and integers in their smallest
//!    encoding (rmp-serde `to_vec_named`), checked byte for byte against the SDK vectors;
//! 2. `connectionId = keccak256(msgpack ‖ nonce as u64 big-endian ‖ 0x00)`, or
//!    `‖ 0x01 ‖ vault address (20 bytes)` when trading for a vault or sub-account;
//! 3. EIP-712 digest of `Agent(string source, bytes32 connectionId)` with source `"a"` on
//!    mainnet and `"b"` on testnet, domain `{name "Exchange", version "1", chainId 1337,
//!    verifyingContract 0x0}`;
//! 4. secp256k1 ECDSA with RFC 6979 deterministic nonces and low-s (as eth_account), so
//!    the same input always gives the same signature; `v` is 27 or 28.

use std::fmt;
use std::str::FromStr;

use k256::ecdsa::{RecoveryId, Signature as EcdsaSignature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize, Serializer};
use sha3::{Digest, Keccak256};

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("the Hyperliquid private key is not 32 bytes of hex (0x-prefixed or not); check HYPER_LIQUID_ETH_PRIVATE_KEY")]
    BadPrivateKeyFormat,
    #[error("the Hyperliquid private key is not a valid secp256k1 scalar (zero or above the curve order)")]
    BadPrivateKeyValue,
    #[error("`{0}` is not an address (20 bytes as 0x-prefixed hex)")]
    BadAddress(String),
    #[error("could not msgpack-encode the {action} action: {source}")]
    Encode {
        action: &'static str,
        #[source]
        source: rmp_serde::encode::Error,
    },
    #[error("signing failed: {0}")]
    Sign(#[source] k256::ecdsa::Error),
    #[error("signature is not valid: {reason}")]
    BadSignature { reason: String },
}

pub type Hash32 = [u8; 32];

pub fn keccak256(bytes: &[u8]) -> Hash32 {
    Keccak256::digest(bytes).into()
}

/// Which Hyperliquid chain a signature is for; part of what is signed, so a testnet
/// signature never works on mainnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Mainnet,
    Testnet,
}

impl Network {
    /// The phantom agent's `source`.
    pub fn agent_source(self) -> &'static str {
        match self {
            Network::Mainnet => "a",
            Network::Testnet => "b",
        }
    }
    /// The `hyperliquidChain` field of user-signed actions.
    pub fn chain_name(self) -> &'static str {
        match self {
            Network::Mainnet => "Mainnet",
            Network::Testnet => "Testnet",
        }
    }
    pub fn api_url(self) -> &'static str {
        match self {
            Network::Mainnet => "https://api.hyperliquid.xyz",
            Network::Testnet => "https://api.hyperliquid-testnet.xyz",
        }
    }
}

/// A 20-byte Ethereum address. Displays as 0x + lowercase hex (what the API expects in
/// `user` fields); [`Address::to_checksum`] gives the EIP-55 form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl Address {
    pub const ZERO: Address = Address([0; 20]);

    pub fn from_verifying_key(key: &VerifyingKey) -> Address {
        let point = key.to_encoded_point(false);
        // Uncompressed SEC1 point: 0x04 ‖ x ‖ y; the address is the last 20 bytes of
        // keccak(x ‖ y).
        let hash = keccak256(&point.as_bytes()[1..]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }

    /// EIP-55 mixed-case checksum form.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl FromStr for Address {
    type Err = SigningError;
    /// Accepts any letter case; the checksum is not enforced (the API itself is
    /// case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        let mut out = [0u8; 20];
        hex::decode_to_slice(hex_part, &mut out)
            .map_err(|_| SigningError::BadAddress(s.to_string()))?;
        Ok(Address(out))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The wallet (or API agent wallet) key. Never printed: `Debug` and `Display` show `***`.
#[derive(Clone)]
pub struct PrivateKey {
    key: SigningKey,
    address: Address,
}

impl PrivateKey {
    /// Parses 32 bytes of hex, with or without `0x`. Surrounding whitespace (a trailing
    /// newline from an env file) is ignored.
    pub fn from_hex(s: &str) -> Result<Self, SigningError> {
        let s = s.trim();
        let hex_part = s.strip_prefix("0x").unwrap_or(s);
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes)
            .map_err(|_| SigningError::BadPrivateKeyFormat)?;
        let key =
            SigningKey::from_bytes(&bytes.into()).map_err(|_| SigningError::BadPrivateKeyValue)?;
        let address = Address::from_verifying_key(key.verifying_key());
        Ok(Self { key, address })
    }

    /// The address this key signs for (the account, or the API agent wallet).
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte EIP-712 digest.
    pub fn sign_digest(&self, digest: &Hash32) -> Result<Signature, SigningError> {
        let (sig, recid) = self
            .key
            .sign_prehash_recoverable(digest)
            .map_err(SigningError::Sign)?;
        // k256 returns low-s already (and adjusts the recovery id to match), as Ethereum
        // requires; normalise anyway in case that ever changes.
        let (sig, recid) = match sig.normalize_s() {
            Some(low) => (
                low,
                RecoveryId::new(!recid.is_y_odd(), recid.is_x_reduced()),
            ),
            None => (sig, recid),
        };
        let (r, s) = sig.split_bytes();
        Ok(Signature {
            r: r.into(),
            s: s.into(),
            v: 27 + recid.to_byte(),
        })
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An Ethereum-style recoverable signature, serialised as the exchange expects:
/// `{"r": "0x…", "s": "0x…", "v": 27|28}`. `r` and `s` are written as full 32-byte hex;
/// the SDK drops leading zeros, and the server reads both as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub r: Hash32,
    pub s: Hash32,
    pub v: u8,
}

impl Signature {
    /// Recovers the address that produced this signature over `digest`.
    pub fn recover(&self, digest: &Hash32) -> Result<Address, SigningError> {
        let sig = EcdsaSignature::from_scalars(self.r, self.s).map_err(|e| {
            SigningError::BadSignature {
                reason: format!("r/s out of range: {e}"),
            }
        })?;
        let recid = self
            .v
            .checked_sub(27)
            .and_then(RecoveryId::from_byte)
            .ok_or_else(|| SigningError::BadSignature {
                reason: format!("v is {}, expected 27 or 28", self.v),
            })?;
        let key = VerifyingKey::recover_from_prehash(digest, &sig, recid).map_err(|e| {
            SigningError::BadSignature {
                reason: format!("no key recovers from it: {e}"),
            }
        })?;
        Ok(Address::from_verifying_key(&key))
    }

    /// The 65-byte `r ‖ s ‖ v` form.
    pub fn to_bytes65(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&self.r);
        out[32..64].copy_from_slice(&self.s);
        out[64] = self.v;
        out
    }
}

#[derive(Serialize, Deserialize)]
struct SignatureWire {
    r: String,
    s: String,
    v: u8,
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SignatureWire {
            r: format!("0x{}", hex::encode(self.r)),
            s: format!("0x{}", hex::encode(self.s)),
            v: self.v,
        }
        .serialize(s)
    }
}

/// Parses a 0x-hex integer of at most 32 bytes (leading zeros may be dropped, as the SDK does).
fn parse_u256_hex(s: &str) -> Result<Hash32, String> {
    let h = s.strip_prefix("0x").unwrap_or(s);
    if h.is_empty() || h.len() > 64 {
        return Err(format!("`{s}` is not a 32-byte hex integer"));
    }
    let padded = format!("{h:0>64}");
    let mut out = [0u8; 32];
    hex::decode_to_slice(&padded, &mut out).map_err(|_| format!("`{s}` is not hex"))?;
    Ok(out)
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = SignatureWire::deserialize(d)?;
        Ok(Signature {
            r: parse_u256_hex(&w.r).map_err(serde::de::Error::custom)?,
            s: parse_u256_hex(&w.s).map_err(serde::de::Error::custom)?,
            v: w.v,
        })
    }
}

// ---- EIP-712 ----------------------------------------------------------------------------

const EIP712_DOMAIN_TYPE: &str =
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
const AGENT_TYPE: &str = "Agent(string source,bytes32 connectionId)";
/// Chain id of the L1 action domain (a fixed constant, not a real chain).
pub const L1_CHAIN_ID: u64 = 1337;
/// Chain id the SDK signs user-signed actions with (`signatureChainId` 0x66eee).
pub const USER_SIGNED_CHAIN_ID: u64 = 0x66eee;

fn u256_word(n: u64) -> Hash32 {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&n.to_be_bytes());
    w
}

fn address_word(a: &Address) -> Hash32 {
    let mut w = [0u8; 32];
    w[12..].copy_from_slice(&a.0);
    w
}

/// `hashStruct` over already-encoded 32-byte words.
fn hash_words(words: &[&Hash32]) -> Hash32 {
    let mut h = Keccak256::new();
    for w in words {
        h.update(w);
    }
    h.finalize().into()
}

/// EIP-712 domain separator with a zero verifying contract.
pub fn domain_separator(name: &str, version: &str, chain_id: u64) -> Hash32 {
    hash_words(&[
        &keccak256(EIP712_DOMAIN_TYPE.as_bytes()),
        &keccak256(name.as_bytes()),
        &keccak256(version.as_bytes()),
        &u256_word(chain_id),
        &address_word(&Address::ZERO),
    ])
}

/// `keccak256(0x19 0x01 ‖ domainSeparator ‖ structHash)`.
pub fn eip712_digest(domain_separator: &Hash32, struct_hash: &Hash32) -> Hash32 {
    let mut h = Keccak256::new();
    h.update([0x19, 0x01]);
    h.update(domain_separator);
    h.update(struct_hash);
    h.finalize().into()
}

/// The L1 domain never changes; computed once.
fn l1_domain_separator() -> &'static Hash32 {
    static SEP: std::sync::OnceLock<Hash32> = std::sync::OnceLock::new();
    SEP.get_or_init(|| domain_separator("Exchange", "1", L1_CHAIN_ID))
}

fn agent_type_hash() -> &'static Hash32 {
    static H: std::sync::OnceLock<Hash32> = std::sync::OnceLock::new();
    H.get_or_init(|| keccak256(AGENT_TYPE.as_bytes()))
}

// ---- L1 actions -------------------------------------------------------------------------

/// The msgpack bytes Hyperliquid hashes for an action: named fields (maps) in declaration
/// order, integers in their smallest encoding.
pub fn action_msgpack<A: Serialize + ?Sized>(
    action: &A,
    label: &'static str,
) -> Result<Vec<u8>, SigningError> {
    rmp_serde::to_vec_named(action).map_err(|source| SigningError::Encode {
        action: label,
        source,
    })
}

/// `connectionId`: keccak of the msgpack, the nonce (u64 BE) and the vault marker.
pub fn connection_id(msgpack: &[u8], nonce: u64, vault: Option<&Address>) -> Hash32 {
    connection_id_expiring(msgpack, nonce, vault, None)
}

/// `connectionId` of an action that carries `expiresAfter`: as [`connection_id`], then
/// `0x00` and the expiry in ms (u64 BE), as the Python SDK's `action_hash`
/// (`utils/signing.py`) does; without an expiry the bytes are exactly [`connection_id`]'s.
pub fn connection_id_expiring(
    msgpack: &[u8],
    nonce: u64,
    vault: Option<&Address>,
    expires_after: Option<u64>,
) -> Hash32 {
    let mut h = Keccak256::new();
    h.update(msgpack);
    h.update(nonce.to_be_bytes());
    match vault {
        None => h.update([0x00]),
        Some(a) => {
            h.update([0x01]);
            h.update(a.0);
        }
    }
    if let Some(expires) = expires_after {
        h.update([0x00]);
        h.update(expires.to_be_bytes());
    }
    h.finalize().into()
}

/// EIP-712 digest of the phantom agent `{source, connectionId}`.
pub fn l1_digest(connection_id: &Hash32, network: Network) -> Hash32 {
    let struct_hash = hash_words(&[
        agent_type_hash(),
        &keccak256(network.agent_source().as_bytes()),
        connection_id,
    ]);
    eip712_digest(l1_domain_separator(), &struct_hash)
}

/// Digest of an L1 action as the exchange will recompute it from the request body.
pub fn l1_action_digest<A: Serialize + ?Sized>(
    action: &A,
    label: &'static str,
    nonce: u64,
    vault: Option<&Address>,
    network: Network,
) -> Result<Hash32, SigningError> {
    l1_action_digest_expiring(action, label, nonce, vault, None, network)
}

/// [`l1_action_digest`] of an action sent with `expiresAfter` (`None`: without).
pub fn l1_action_digest_expiring<A: Serialize + ?Sized>(
    action: &A,
    label: &'static str,
    nonce: u64,
    vault: Option<&Address>,
    expires_after: Option<u64>,
    network: Network,
) -> Result<Hash32, SigningError> {
    let bytes = action_msgpack(action, label)?;
    Ok(l1_digest(
        &connection_id_expiring(&bytes, nonce, vault, expires_after),
        network,
    ))
}

/// Signs an L1 action (order, cancel, updateLeverage, scheduleCancel, ...).
pub fn sign_l1_action<A: Serialize + ?Sized>(
    key: &PrivateKey,
    action: &A,
    label: &'static str,
    nonce: u64,
    vault: Option<&Address>,
    network: Network,
) -> Result<Signature, SigningError> {
    sign_l1_action_expiring(key, action, label, nonce, vault, None, network)
}

/// Signs an L1 action that the exchange must refuse after `expires_after` (ms).
pub fn sign_l1_action_expiring<A: Serialize + ?Sized>(
    key: &PrivateKey,
    action: &A,
    label: &'static str,
    nonce: u64,
    vault: Option<&Address>,
    expires_after: Option<u64>,
    network: Network,
) -> Result<Signature, SigningError> {
    key.sign_digest(&l1_action_digest_expiring(
        action,
        label,
        nonce,
        vault,
        expires_after,
        network,
    )?)
}

/// The address that signed an L1 action; equal to the wallet (or its API agent) when the
/// exchange will accept the request.
pub fn recover_l1_signer<A: Serialize + ?Sized>(
    action: &A,
    label: &'static str,
    nonce: u64,
    vault: Option<&Address>,
    network: Network,
    signature: &Signature,
) -> Result<Address, SigningError> {
    recover_l1_signer_expiring(action, label, nonce, vault, None, network, signature)
}

/// [`recover_l1_signer`] for a request that carried `expiresAfter`.
pub fn recover_l1_signer_expiring<A: Serialize + ?Sized>(
    action: &A,
    label: &'static str,
    nonce: u64,
    vault: Option<&Address>,
    expires_after: Option<u64>,
    network: Network,
    signature: &Signature,
) -> Result<Address, SigningError> {
    signature.recover(&l1_action_digest_expiring(
        action,
        label,
        nonce,
        vault,
        expires_after,
        network,
    )?)
}

// ---- user-signed actions ----------------------------------------------------------------

/// Which user-signed transfer; they share one field layout and differ in the EIP-712
/// primary type (and the wire `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserTransferKind {
    /// `usdSend`: USDC to another Hyperliquid address.
    UsdSend,
    /// `withdraw3`: USDC out to Arbitrum.
    Withdraw,
}

impl UserTransferKind {
    pub fn eip712_type(self) -> &'static str {
        match self {
            UserTransferKind::UsdSend => {
                "HyperliquidTransaction:UsdSend(string hyperliquidChain,string destination,string amount,uint64 time)"
            }
            UserTransferKind::Withdraw => {
                "HyperliquidTransaction:Withdraw(string hyperliquidChain,string destination,string amount,uint64 time)"
            }
        }
    }
    pub fn wire_type(self) -> &'static str {
        match self {
            UserTransferKind::UsdSend => "usdSend",
            UserTransferKind::Withdraw => "withdraw3",
        }
    }
}

/// The signed fields of a usdSend / withdraw. `destination` is sent as the lowercase
/// 0x-hex string and `amount` as its wire decimal string; `time` doubles as the nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTransfer {
    pub kind: UserTransferKind,
    pub network: Network,
    pub destination: String,
    pub amount: String,
    pub time: u64,
}

impl UserTransfer {
    pub fn struct_hash(&self) -> Hash32 {
        hash_words(&[
            &keccak256(self.kind.eip712_type().as_bytes()),
            &keccak256(self.network.chain_name().as_bytes()),
            &keccak256(self.destination.as_bytes()),
            &keccak256(self.amount.as_bytes()),
            &u256_word(self.time),
        ])
    }

    pub fn digest(&self) -> Hash32 {
        let domain = domain_separator("HyperliquidSignTransaction", "1", USER_SIGNED_CHAIN_ID);
        eip712_digest(&domain, &self.struct_hash())
    }

    pub fn sign(&self, key: &PrivateKey) -> Result<Signature, SigningError> {
        key.sign_digest(&self.digest())
    }

    /// The `action` object of the /exchange request.
    pub fn to_action_json(&self) -> serde_json::Value {
        serde_json::json!({
            "type": self.kind.wire_type(),
            "signatureChainId": format!("{USER_SIGNED_CHAIN_ID:#x}"),
            "hyperliquidChain": self.network.chain_name(),
            "destination": self.destination,
            "amount": self.amount,
            "time": self.time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SDK_TEST_KEY: &str =
        "0x0123456789012345678901234567890123456789012345678901234567890123";

    fn h32(s: &str) -> Hash32 {
        parse_u256_hex(s).unwrap()
    }

    #[test]
    fn address_from_the_sdk_test_key() {
        let key = PrivateKey::from_hex(SDK_TEST_KEY).unwrap();
        assert_eq!(
            key.address().to_checksum(),
            "0x14791697260E4c9A71f18484C9f997B308e59325"
        );
        assert_eq!(
            key.address().to_string(),
            "0x14791697260e4c9a71f18484c9f997b308e59325"
        );
        let parsed: Address = "0x14791697260E4c9A71f18484C9f997B308e59325"
            .parse()
            .unwrap();
        assert_eq!(parsed, key.address());
    }

    #[test]
    fn private_key_never_prints() {
        let key = PrivateKey::from_hex(SDK_TEST_KEY).unwrap();
        assert_eq!(format!("{key}"), "***");
        assert_eq!(format!("{key:?}"), "***");
        assert!(!format!("{:?}", Some(&key)).contains("0123"));
    }

    #[test]
    fn malformed_keys_are_errors() {
        assert!(matches!(
            PrivateKey::from_hex("0x1234"),
            Err(SigningError::BadPrivateKeyFormat)
        ));
        assert!(matches!(
            PrivateKey::from_hex("zz"),
            Err(SigningError::BadPrivateKeyFormat)
        ));
        let zero = format!("0x{}", "0".repeat(64));
        assert!(matches!(
            PrivateKey::from_hex(&zero),
            Err(SigningError::BadPrivateKeyValue)
        ));
        let over = format!("0x{}", "f".repeat(64));
        assert!(matches!(
            PrivateKey::from_hex(&over),
            Err(SigningError::BadPrivateKeyValue)
        ));
        // A trailing newline from an env file is fine.
        PrivateKey::from_hex(&format!("{SDK_TEST_KEY}\n")).unwrap();
    }

    /// Constants recorded from the SDK (user_signed_and_float_to_wire.txt).
    #[test]
    fn eip712_constants_match_the_sdk() {
        assert_eq!(
            hex::encode(keccak256(EIP712_DOMAIN_TYPE.as_bytes())),
            "8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f"
        );
        assert_eq!(
            hex::encode(agent_type_hash()),
            "26f05c2f7239b6983075e58321292d77b3aa173d19b27257ac96ab362570f508"
        );
        assert_eq!(
            hex::encode(l1_domain_separator()),
            "d79297fcdf2ffcd4ae223d01edaa2ba214ff8f401d7c9300d995d17c82aa4040"
        );
        assert_eq!(
            hex::encode(keccak256(
                UserTransferKind::UsdSend.eip712_type().as_bytes()
            )),
            "c7410964737e2180e258d649f23f74a49460432fecbd94688103ecc63fb66b4c"
        );
        assert_eq!(
            hex::encode(domain_separator(
                "HyperliquidSignTransaction",
                "1",
                USER_SIGNED_CHAIN_ID
            )),
            "feb1393ca4412a4ca577bd51d04f0a77033514c602f4d0a11490fb95f7428df6"
        );
    }

    /// The SDK's usdSend and withdraw vectors: destination 0x5e9e…a13a, amount "1",
    /// time 1687816341423, Testnet.
    #[test]
    fn user_signed_transfers_match_the_sdk() {
        let key = PrivateKey::from_hex(SDK_TEST_KEY).unwrap();
        let cases = [
            (
                UserTransferKind::UsdSend,
                "e81f1691f350bb9a59d2b40b3d16c9526a8f93407dd72bcb9ea95e291a5de6da",
                "cacf7585cc49ca60c6c5fb3001e226c0ca03c46252c893eea574c78907b7cebe",
                "0x637b37dd731507cdd24f46532ca8ba6eec616952c56218baeff04144e4a77073",
                "0x11a6a24900e6e314136d2592e2f8d502cd89b7c15b198e1bee043c9589f9fad7",
                27,
            ),
            (
                UserTransferKind::Withdraw,
                "bb36a2adff957df448a8f3da0bcb708a2687fdc0644784bce37a1fd28e251a3c",
                "8080d06f566813165cec60d85300445133b3439e9c92e10b93ed510372608899",
                "0x8363524c799e90ce9bc41022f7c39b4e9bdba786e5f9c72b20e43e1462c37cf9",
                "0x58b1411a775938b83e29182e8ef74975f9054c8e97ebf5ec2dc8d51bfc893881",
                28,
            ),
        ];
        for (kind, struct_hash, digest, r, s, v) in cases {
            let t = UserTransfer {
                kind,
                network: Network::Testnet,
                destination: "0x5e9ee1089755c3435139848e47e6635505d5a13a".into(),
                amount: "1".into(),
                time: 1687816341423,
            };
            assert_eq!(
                hex::encode(t.struct_hash()),
                struct_hash,
                "{kind:?} structHash"
            );
            assert_eq!(hex::encode(t.digest()), digest, "{kind:?} digest");
            let sig = t.sign(&key).unwrap();
            assert_eq!(
                sig,
                Signature {
                    r: h32(r),
                    s: h32(s),
                    v
                },
                "{kind:?} signature"
            );
            assert_eq!(sig.recover(&t.digest()).unwrap(), key.address());
            let action = t.to_action_json();
            assert_eq!(action["signatureChainId"], "0x66eee");
            assert_eq!(action["hyperliquidChain"], "Testnet");
        }
    }

    #[test]
    fn signature_serialises_as_hex_r_s_and_v() {
        let sig = Signature {
            r: h32("0x53749d5b30552aeb2fca34b530185976545bb22d0b3ce6f62e31be961a59298"),
            s: h32("0x755c40ba9bf05223521753995abb2f73ab3229be8ec921f350cb447e384d8ed8"),
            v: 27,
        };
        let json = serde_json::to_value(sig).unwrap();
        assert_eq!(
            json["r"],
            "0x053749d5b30552aeb2fca34b530185976545bb22d0b3ce6f62e31be961a59298"
        );
        assert_eq!(json["v"], 27);
        // The SDK's short form (leading zero dropped) reads back to the same value.
        let short: Signature = serde_json::from_value(serde_json::json!({
            "r": "0x53749d5b30552aeb2fca34b530185976545bb22d0b3ce6f62e31be961a59298",
            "s": "0x755c40ba9bf05223521753995abb2f73ab3229be8ec921f350cb447e384d8ed8",
            "v": 27
        }))
        .unwrap();
        assert_eq!(short, sig);
    }

    #[test]
    fn bad_v_is_an_error_not_a_panic() {
        let sig = Signature {
            r: [1; 32],
            s: [1; 32],
            v: 30,
        };
        assert!(matches!(
            sig.recover(&[0; 32]),
            Err(SigningError::BadSignature { .. })
        ));
        let zero = Signature {
            r: [0; 32],
            s: [0; 32],
            v: 27,
        };
        assert!(matches!(
            zero.recover(&[0; 32]),
            Err(SigningError::BadSignature { .. })
        ));
    }
}
