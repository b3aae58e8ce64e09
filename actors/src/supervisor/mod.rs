//! Temporary minimal Slot until the supervisor branch lands (replaced on merge).
use std::sync::Arc;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message};
use parking_lot::RwLock;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SlotError {
    #[error("actor `{0}` is not running")]
    NotRunning(String),
    #[error("actor `{0}` stopped before answering")]
    Closed(String),
}

pub struct Slot<A: Actor> {
    name: Arc<str>,
    addr: Arc<RwLock<Option<Addr<A>>>>,
}
impl<A: Actor> Clone for Slot<A> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            addr: self.addr.clone(),
        }
    }
}
impl<A: Actor> Slot<A> {
    pub fn new(name: &str) -> Self {
        Self {
            name: Arc::from(name),
            addr: Arc::new(RwLock::new(None)),
        }
    }
    pub fn set(&self, addr: Option<Addr<A>>) {
        *self.addr.write() = addr;
    }
    pub fn addr(&self) -> Option<Addr<A>> {
        self.addr.read().clone()
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub async fn send<M>(&self, msg: M) -> Result<M::Result, SlotError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        let addr = self
            .addr()
            .ok_or_else(|| SlotError::NotRunning(self.name.to_string()))?;
        addr.send(msg)
            .await
            .map_err(|_| SlotError::Closed(self.name.to_string()))
    }
}
