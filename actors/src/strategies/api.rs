//! The strategy contract: bars in, order intents out.
//!
//! A [`Strategy`] is fed closed bars one at a time through [`Strategy::on_bar`], sees its
//! own position as a [`PositionView`], and answers by pushing [`Action`]s into an
//! [`Actions`] buffer. The same value runs in the backtester (`crate::backtest`), which
//! fills the actions by its stated execution model, and live in a strategy agent, which
//! turns them into orders through the gateway and its risk gate. Nothing here knows which.
//!
//! Semantics follow backtesting.py's `Strategy` so users' numbers carry over:
//! - an action taken on bar `i` is executed by the runner after that bar closes (the
//!   backtester: at bar `i+1`'s open by default, or at bar `i`'s close with `--fill close`);
//! - actions execute in the order they were pushed, so `close(); buy()` flips a short into
//!   a long, as `self.position.close(); self.buy()` does;
//! - [`Size::Equity`] is a fraction of the equity available for margin, [`Size::Units`] a
//!   quantity of the base asset; the runner rounds units down to what it may trade (whole
//!   units in a default backtest, the instrument's lot live).
//!
//! Numbers are `f64`: a strategy decides on signals, it does not move money. The live runner
//! converts a sized intent into a `Decimal` order at the gateway boundary.
//!
//! Owns: the contract between a strategy and whoever runs it. Never: sizing in money,
//! talking to a venue, or knowing whether a bar is live or historical.

use crate::signals::Signal;

/// One closed OHLCV bar. `time_ms` is the bar's open time (ms since the Unix epoch, UTC).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub time_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// Which way an order trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    /// +1 for a buy, -1 for a sell: the sign of the position change.
    pub fn sign(self) -> f64 {
        match self {
            Side::Buy => 1.0,
            Side::Sell => -1.0,
        }
    }
}

/// How much an order is for.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    /// A fraction in `(0, 1]` of the equity available for margin (backtesting.py's
    /// `0 < size < 1`). `Equity(1.0)` is "all of it", backtesting.py's default `buy()`.
    Equity(f64),
    /// A quantity of the base asset, `> 0` (backtesting.py's `size >= 1`, but fractional
    /// quantities are allowed where the runner trades fractions).
    Units(f64),
}

impl Size {
    /// All available equity: the size of a bare `buy()` / `sell()`.
    pub const ALL: Size = Size::Equity(1.0);

    /// Whether the size is one a runner can execute: a finite fraction in `(0, 1]`, or a
    /// finite positive quantity.
    pub fn is_valid(self) -> bool {
        match self {
            Size::Equity(f) => f.is_finite() && f > 0.0 && f <= 1.0,
            Size::Units(u) => u.is_finite() && u > 0.0,
        }
    }
}

/// A market order with optional protective exits, as a strategy asks for it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrderIntent {
    pub side: Side,
    pub size: Size,
    /// Price at which the position this order opens is closed at a loss (below the entry
    /// for a buy, above it for a sell).
    pub stop_loss: Option<f64>,
    /// Price at which it is closed at a profit.
    pub take_profit: Option<f64>,
}

/// What a strategy asks its runner to do after a bar.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Close the whole position, whichever side it is on (backtesting.py `position.close()`).
    ClosePosition,
    /// Trade: a buy against a short first reduces it, as on a venue (netting, not hedging).
    Order(OrderIntent),
}

/// The buffer a strategy pushes its actions into. The runner clears and reuses it, so a
/// bar costs no allocation.
#[derive(Debug, Default, Clone)]
pub struct Actions {
    list: Vec<Action>,
}

impl Actions {
    pub fn new() -> Self {
        Self::default()
    }
    /// Buy with all available equity.
    pub fn buy(&mut self) {
        self.order(Side::Buy, Size::ALL, None, None);
    }
    /// Sell (go short, or reduce a long) with all available equity.
    pub fn sell(&mut self) {
        self.order(Side::Sell, Size::ALL, None, None);
    }
    pub fn close(&mut self) {
        self.list.push(Action::ClosePosition);
    }
    pub fn order(
        &mut self,
        side: Side,
        size: Size,
        stop_loss: Option<f64>,
        take_profit: Option<f64>,
    ) {
        self.list.push(Action::Order(OrderIntent {
            side,
            size,
            stop_loss,
            take_profit,
        }));
    }
    pub fn as_slice(&self) -> &[Action] {
        &self.list
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    /// Takes the actions out in push order, leaving the buffer empty (its capacity kept).
    pub fn drain(&mut self) -> std::vec::Drain<'_, Action> {
        self.list.drain(..)
    }
    pub fn clear(&mut self) {
        self.list.clear();
    }
}

/// The strategy's position as its runner knows it when the bar closes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PositionView {
    /// Signed quantity of the base asset: > 0 long, < 0 short, 0 flat.
    pub size: f64,
    /// Volume-weighted entry price of the open position; `None` when flat.
    pub entry_price: Option<f64>,
}

impl PositionView {
    pub const FLAT: PositionView = PositionView {
        size: 0.0,
        entry_price: None,
    };
    pub fn is_long(&self) -> bool {
        self.size > 0.0
    }
    pub fn is_short(&self) -> bool {
        self.size < 0.0
    }
    pub fn is_flat(&self) -> bool {
        self.size == 0.0
    }
}

/// A fill of one of the strategy's orders, reported back by its runner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillView {
    pub time_ms: i64,
    pub side: Side,
    /// Quantity filled, > 0.
    pub units: f64,
    pub price: f64,
}

/// A strategy: deterministic given its parameters and the bars (and fills and signals) it
/// was fed, so a backtest and a live run on the same bars take the same decisions.
pub trait Strategy: Send {
    /// The registered name (`sma_cross`) or the library name of a spec.
    fn name(&self) -> &str;

    /// How many bars must be fed before the strategy can take its first decision (the
    /// longest indicator warm-up plus any look-back its rule needs). A live runner feeds at
    /// least this many historical bars before the first live one.
    fn warmup_bars(&self) -> usize;

    /// A bar has closed: update state and push any actions for it.
    fn on_bar(&mut self, bar: &Bar, position: &PositionView, actions: &mut Actions);

    /// One of this strategy's orders filled. Default: nothing to do.
    fn on_fill(&mut self, _fill: &FillView) {}

    /// A signal from the engine's signal bus about this strategy's symbol (live only; a
    /// backtest has no bus). Default: ignored.
    fn on_signal(&mut self, _signal: &Signal) {}
}
