//! The parsed form of a deployment's request line and headers, kept between requests.
//!
//! Owns: turning a [`WireRequest`]'s URL and headers into a reqwest request builder, and
//! remembering the parsed URL and header values of the last request of each shape (plain
//! or streamed). Every request of one deployment has the same URL and headers (only the
//! body changes), and parsing them again (URL with IDNA host processing, header name and
//! value checks, the auth value formatted) costs as much as the rest of the pool's work.
//! Never: builds the request (the wire formats do) or sends it.
//!
//! The memo is checked against the freshly built request every time (a string compare),
//! so a request whose URL or headers differ is parsed anew and never sent with stale ones.

use parking_lot::Mutex;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Client, RequestBuilder, Url};

use crate::models::providers::{ProviderWireError, WireRequest};

/// One memo slot per request shape: index 0 for whole answers, 1 for streams.
#[derive(Default)]
pub(super) struct Prepared {
    slots: [Mutex<Option<Shape>>; 2],
}

/// A request line and headers as built, and their parsed forms.
struct Shape {
    wire: WireRequest,
    url: Url,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Shape {
    fn matches(&self, wire: &WireRequest) -> bool {
        self.wire.method == wire.method
            && self.wire.url == wire.url
            && self.wire.headers == wire.headers
            && self.wire.auth == wire.auth
    }
}

impl Prepared {
    /// A builder for `wire`'s method, URL and headers (the body is the caller's).
    pub(super) fn request(
        &self,
        client: &Client,
        wire: &WireRequest,
    ) -> Result<RequestBuilder, ProviderWireError> {
        let mut slot = self.slots[usize::from(wire.stream)].lock();
        let shape = match &mut *slot {
            Some(shape) if shape.matches(wire) => shape,
            stale => {
                let headers = wire.header_map()?;
                let Ok(url) = Url::parse(&wire.url) else {
                    // Not remembered: reqwest reports the bad URL when the request is
                    // sent, as it would have without the memo.
                    return Ok(client
                        .request(wire.method.as_reqwest(), &wire.url)
                        .headers(headers));
                };
                stale.insert(Shape {
                    wire: WireRequest {
                        method: wire.method,
                        url: wire.url.clone(),
                        headers: wire.headers.clone(),
                        auth: wire.auth.clone(),
                        body: None,
                        stream: wire.stream,
                    },
                    url,
                    headers: headers
                        .iter()
                        .map(|(name, value)| (name.clone(), value.clone()))
                        .collect(),
                })
            }
        };
        let mut builder = client.request(wire.method.as_reqwest(), shape.url.clone());
        for (name, value) in &shape.headers {
            builder = builder.header(name.clone(), value.clone());
        }
        Ok(builder)
    }
}
