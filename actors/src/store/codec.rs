//! Versioned encoding of stored values: `[version: u16 BE][JSON]`.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Result, StoreError};

/// A value that can live in a store tree.
pub trait Record: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Version written with every value of this type. Bump it when the shape changes in a
    /// way old readers would misread, and teach [`Record::upgrade`] the old shape.
    const VERSION: u16 = 1;

    /// Rebuilds a value stored by an older version of this type. The default reads it as
    /// the current shape, which holds while changes only add optional fields.
    fn upgrade(_from_version: u16, value: serde_json::Value) -> Result<Self, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }
}

pub(super) fn encode<T: Record>(tree: &str, key: &str, value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&T::VERSION.to_be_bytes());
    serde_json::to_writer(&mut out, value).map_err(|e| StoreError::Encode {
        tree: tree.into(),
        key: key.into(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

pub(super) fn decode<T: Record>(tree: &str, key: &str, raw: &[u8]) -> Result<T> {
    let decode_err = |reason: String| StoreError::Decode {
        tree: tree.into(),
        key: key.into(),
        reason,
    };
    if raw.len() < 2 {
        return Err(decode_err(format!(
            "value is {} bytes, too short for a record header",
            raw.len()
        )));
    }
    let version = u16::from_be_bytes([raw[0], raw[1]]);
    let body = &raw[2..];
    if version > T::VERSION {
        return Err(StoreError::NewerRecord {
            tree: tree.into(),
            key: key.into(),
            found: version,
            supported: T::VERSION,
        });
    }
    if version == T::VERSION {
        return serde_json::from_slice(body).map_err(|e| decode_err(e.to_string()));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| decode_err(e.to_string()))?;
    T::upgrade(version, value).map_err(decode_err)
}
