//! How agents reach the model router: by the `Ask` message only, through a resolver that
//! finds the router's current address (it changes when the router is restarted).

use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;

use super::types::{Ask, ModelError, ModelRequest, ModelResponse};

/// Grace beyond a request's own timeout before the caller gives up on the router itself;
/// the router answers a deadline error first in every normal case.
const ROUTER_GRACE: Duration = Duration::from_millis(250);

type Resolve = Arc<dyn Fn() -> Option<Recipient<Ask>> + Send + Sync>;

/// A cloneable handle to "whatever currently serves `Ask`".
#[derive(Clone)]
pub struct ModelClient {
    resolve: Resolve,
}

impl std::fmt::Debug for ModelClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModelClient")
    }
}

impl ModelClient {
    pub fn new(resolve: impl Fn() -> Option<Recipient<Ask>> + Send + Sync + 'static) -> Self {
        Self {
            resolve: Arc::new(resolve),
        }
    }

    /// Sends one request; always returns within the request's timeout plus a small grace.
    pub async fn ask(&self, request: ModelRequest) -> Result<ModelResponse, ModelError> {
        let model = request.model.clone();
        let timeout = request.timeout;
        let router = (self.resolve)().ok_or(ModelError::ShuttingDown)?;
        match tokio::time::timeout(timeout + ROUTER_GRACE, router.send(Ask(request))).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(ModelError::ShuttingDown),
            Err(_) => Err(ModelError::DeadlineExceeded { model, timeout }),
        }
    }
}
