//! Test support shared by the crate's tests and the process crate's end-to-end tests
//! (feature `testkit`): a loopback HTTP server that replays what a provider or venue sends
//! and injects the faults real servers produce. Never compiled into a release build.

mod chat_sinks;
mod http_mock;
mod redis_server;

pub use chat_sinks::{
    discord_receiver, slack_receiver, telegram_receiver, webhook_receiver, DISCORD_CONTENT_MAX,
    TELEGRAM_TEXT_MAX,
};
pub use http_mock::{refused_addr, Deferred, MockServer, RecordedRequest, Reply, StreamEnd};
pub use redis_server::RedisServer;
