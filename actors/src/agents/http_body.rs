//! Reading an HTTP response body with a size bound, for agents that fetch documents (news
//! feeds, research pages) from URLs an operator configured.
//!
//! Owns: the bound — a declared `Content-Length` over it is refused before any byte is
//! read, and the body is read in chunks so one without (or lying about) its length stops
//! at the bound. Never: deadlines (the caller wraps the whole fetch in one) or retries.

/// Why a bounded body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// The body is (or was declared) longer than the bound.
    TooLarge,
    /// The connection failed while reading.
    Transport(reqwest::Error),
}

/// The whole body of `resp`, at most `max_bytes` long.
pub async fn read_bounded(
    resp: &mut reqwest::Response,
    max_bytes: usize,
) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > max_bytes as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > max_bytes {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
