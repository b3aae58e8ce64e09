//! A valid spec as a streaming [`Strategy`].
//!
//! Every operand is resolved once, at compile time, to a slot: a number, a price field, or
//! one output of one indicator instance. Each bar updates every instance, keeps this bar's
//! and the previous bar's values of every slot, evaluates the conditions over them and hands
//! the four signals to the built-ins' `Signals::apply`. Nothing is looked up by name per bar.

use crate::signals::{Direction, Signal, SignalKind};
use crate::strategies::api::{Actions, Bar, PositionView, Side, Size, Strategy};
use crate::strategies::builtin::{SameSide, Signals};
use crate::strategies::indicators::{
    Atr, Band, Bollinger, Donchian, Ema, IndicatorError, Macd, Rsi, Sma,
};

use super::{Condition, ExitRule, IndicatorSpec, Operand, PriceField, StrategySpec};

/// One indicator instance's streaming state.
#[derive(Debug, Clone)]
enum Instance {
    Sma(Sma, PriceField),
    Ema(Ema, PriceField),
    Rsi(Rsi, PriceField),
    Bollinger(Bollinger, PriceField),
    Macd(Macd, PriceField),
    /// The channel up to the previous bar is this bar's value ("the N bars before").
    Donchian(Donchian, Option<Band>),
    Atr(Atr),
}

/// Values an instance produces: up to three outputs, NaN while warming up.
type Outputs = [f64; 3];
const NONE: Outputs = [f64::NAN; 3];

fn band(b: Option<Band>) -> Outputs {
    b.map_or(NONE, |b| [b.upper, b.middle, b.lower])
}

fn price(bar: &Bar, field: PriceField) -> f64 {
    match field {
        PriceField::Open => bar.open,
        PriceField::High => bar.high,
        PriceField::Low => bar.low,
        PriceField::Close => bar.close,
        PriceField::Volume => bar.volume,
    }
}

impl Instance {
    /// Builds from a checked spec (whose periods are positive, so this only fails on a spec
    /// that skipped [`StrategySpec::check`]).
    fn new(spec: &IndicatorSpec) -> Result<Self, IndicatorError> {
        // A negative period becomes 0, which every constructor refuses by name.
        let n = |p: i64| usize::try_from(p).unwrap_or(0);
        Ok(match *spec {
            IndicatorSpec::Sma { period, source } => Instance::Sma(Sma::new(n(period))?, source),
            IndicatorSpec::Ema { period, source } => Instance::Ema(Ema::new(n(period))?, source),
            IndicatorSpec::Rsi { period, source } => Instance::Rsi(Rsi::new(n(period))?, source),
            IndicatorSpec::Bollinger { period, k, source } => {
                Instance::Bollinger(Bollinger::new(n(period), k)?, source)
            }
            IndicatorSpec::Macd {
                fast,
                slow,
                signal,
                source,
            } => Instance::Macd(Macd::new(n(fast), n(slow), n(signal))?, source),
            IndicatorSpec::Donchian { period } => {
                Instance::Donchian(Donchian::new(n(period))?, None)
            }
            IndicatorSpec::Atr { period } => Instance::Atr(Atr::new(n(period))?),
        })
    }

    fn update(&mut self, bar: &Bar) -> Outputs {
        let one = |v: Option<f64>| v.map_or(NONE, |v| [v, f64::NAN, f64::NAN]);
        match self {
            Instance::Sma(i, f) => one(i.update(price(bar, *f))),
            Instance::Ema(i, f) => one(i.update(price(bar, *f))),
            Instance::Rsi(i, f) => one(i.update(price(bar, *f))),
            Instance::Bollinger(i, f) => band(i.update(price(bar, *f))),
            Instance::Macd(i, f) => i
                .update(price(bar, *f))
                .map_or(NONE, |m| [m.macd, m.signal, m.histogram]),
            Instance::Donchian(i, prior) => {
                let out = band(*prior);
                *prior = i.update(bar.high, bar.low);
                out
            }
            Instance::Atr(i) => one(i.update(bar.high, bar.low, bar.close)),
        }
    }
}

/// Where an operand's value comes from.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Number(f64),
    Price(PriceField),
    /// (instance index, output index)
    Output(usize, usize),
}

#[derive(Debug, Clone)]
enum Cond {
    Above(Slot, Slot),
    Below(Slot, Slot),
    CrossesAbove(Slot, Slot),
    CrossesBelow(Slot, Slot),
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Signal {
        kind: SignalKind,
        direction: Option<Direction>,
        min_confidence: f64,
    },
}

#[derive(Debug, Clone, Copy)]
enum Exit {
    Pct(f64),
    /// ATR instance index and multiple.
    Atr(usize, f64),
}

/// This bar's and the previous bar's values, as conditions read them.
struct Frame<'a> {
    bar: &'a Bar,
    prev_bar: &'a Bar,
    now: &'a [Outputs],
    prev: &'a [Outputs],
    /// Signals heard so far and not expired before this bar opened.
    signals: &'a [Signal],
}

impl Frame<'_> {
    fn now(&self, s: Slot) -> f64 {
        match s {
            Slot::Number(n) => n,
            Slot::Price(f) => price(self.bar, f),
            Slot::Output(i, o) => self.now[i][o],
        }
    }
    fn prev(&self, s: Slot) -> f64 {
        match s {
            Slot::Number(n) => n,
            Slot::Price(f) => price(self.prev_bar, f),
            Slot::Output(i, o) => self.prev[i][o],
        }
    }
    /// NaN (an output not warm yet) compares false, so a cold operand never triggers.
    fn holds(&self, c: &Cond) -> bool {
        match c {
            Cond::Above(a, b) => self.now(*a) > self.now(*b),
            Cond::Below(a, b) => self.now(*a) < self.now(*b),
            Cond::CrossesAbove(a, b) => {
                self.prev(*a) < self.prev(*b) && self.now(*a) > self.now(*b)
            }
            Cond::CrossesBelow(a, b) => {
                self.prev(*a) > self.prev(*b) && self.now(*a) < self.now(*b)
            }
            Cond::All(list) => list.iter().all(|c| self.holds(c)),
            Cond::Any(list) => list.iter().any(|c| self.holds(c)),
            Cond::Signal {
                kind,
                direction,
                min_confidence,
            } => self.signals.iter().any(|s| {
                s.kind == *kind
                    && direction.is_none_or(|d| s.direction == d)
                    && s.confidence >= *min_confidence
                    && !s.is_expired(self.bar.time_ms)
            }),
        }
    }
}

/// A compiled spec: runs like a built-in.
#[derive(Debug, Clone)]
pub struct SpecStrategy {
    name: String,
    warmup: usize,
    instances: Vec<Instance>,
    now: Vec<Outputs>,
    prev: Vec<Outputs>,
    prev_bar: Option<Bar>,
    seen: usize,
    /// Signals heard (`on_signal`), oldest first; the expired ones are dropped per bar.
    signals: Vec<Signal>,
    /// Whether each entry condition held on the previous decision bar: entries fire on the
    /// bar their condition becomes true.
    held: (bool, bool),
    enter_long: Option<Cond>,
    exit_long: Option<Cond>,
    enter_short: Option<Cond>,
    exit_short: Option<Cond>,
    size: Size,
    stop_loss: Option<Exit>,
    take_profit: Option<Exit>,
}

impl SpecStrategy {
    /// Compiles a spec that passed [`StrategySpec::check`] (use [`StrategySpec::compile`]).
    pub(super) fn new(spec: &StrategySpec) -> Result<Self, IndicatorError> {
        let names: Vec<&String> = spec.indicators.keys().collect();
        let instances = spec
            .indicators
            .values()
            .map(Instance::new)
            .collect::<Result<Vec<_>, _>>()?;
        let slot = |op: &Operand| -> Slot {
            match op {
                Operand::Number(n) => Slot::Number(*n),
                Operand::Name(name) => {
                    if let Some(f) = PriceField::parse(name) {
                        return Slot::Price(f);
                    }
                    let (base, output) = name.split_once('.').unwrap_or((name, ""));
                    let idx = names.iter().position(|n| n.as_str() == base);
                    let out = spec.indicators.get(base).map_or(0, |ind| {
                        ind.outputs().iter().position(|o| *o == output).unwrap_or(0)
                    });
                    // A checked spec resolves every name; NaN never holds otherwise.
                    idx.map_or(Slot::Number(f64::NAN), |i| Slot::Output(i, out))
                }
            }
        };
        fn compile(c: &Condition, slot: &dyn Fn(&Operand) -> Slot) -> Cond {
            match c {
                Condition::Above(a, b) => Cond::Above(slot(a), slot(b)),
                Condition::Below(a, b) => Cond::Below(slot(a), slot(b)),
                Condition::CrossesAbove(a, b) => Cond::CrossesAbove(slot(a), slot(b)),
                Condition::CrossesBelow(a, b) => Cond::CrossesBelow(slot(a), slot(b)),
                Condition::All(l) => Cond::All(l.iter().map(|c| compile(c, slot)).collect()),
                Condition::Any(l) => Cond::Any(l.iter().map(|c| compile(c, slot)).collect()),
                // A checked spec parses; anything else never holds (`Other("")` matches no
                // signal the bus accepts).
                Condition::Signal(sc) => Cond::Signal {
                    kind: sc.kind.parse().unwrap_or(SignalKind::Other(String::new())),
                    direction: sc.direction.as_deref().and_then(|d| d.parse().ok()),
                    min_confidence: sc.min_confidence.unwrap_or(0.0),
                },
            }
        }
        let exit = |r: &ExitRule| match r {
            ExitRule::Pct(p) => Exit::Pct(*p),
            ExitRule::Atr {
                indicator,
                multiple,
            } => Exit::Atr(
                names
                    .iter()
                    .position(|n| *n == indicator)
                    .unwrap_or(usize::MAX),
                *multiple,
            ),
        };
        let side = |s: &Option<super::SideRules>| {
            (
                s.as_ref().map(|r| compile(&r.entry, &slot)),
                s.as_ref()
                    .and_then(|r| r.exit.as_ref())
                    .map(|c| compile(c, &slot)),
            )
        };
        let (enter_long, exit_long) = side(&spec.long);
        let (enter_short, exit_short) = side(&spec.short);
        let n = instances.len();
        Ok(Self {
            name: spec.name.clone(),
            warmup: spec.warmup_bars(),
            instances,
            now: vec![NONE; n],
            prev: vec![NONE; n],
            prev_bar: None,
            seen: 0,
            signals: Vec::new(),
            held: (false, false),
            enter_long,
            exit_long,
            enter_short,
            exit_short,
            size: spec.sizing,
            stop_loss: spec.stop_loss.as_ref().map(exit),
            take_profit: spec.take_profit.as_ref().map(exit),
        })
    }

    /// The price of a protective exit for an entry on `side` at `close`; `toward` is +1 for
    /// a target (in the trade's favour) and −1 for a stop.
    fn exit_price(&self, rule: Option<Exit>, side: Side, close: f64, toward: f64) -> Option<f64> {
        let distance = match rule? {
            Exit::Pct(p) => close * p / 100.0,
            Exit::Atr(i, m) => self.now.get(i)?[0] * m,
        };
        let price = close + toward * side.sign() * distance;
        (price.is_finite() && price > 0.0).then_some(price)
    }
}

impl Strategy for SpecStrategy {
    fn name(&self) -> &str {
        &self.name
    }

    fn warmup_bars(&self) -> usize {
        self.warmup
    }

    fn on_bar(&mut self, bar: &Bar, position: &PositionView, actions: &mut Actions) {
        let finite = [bar.open, bar.high, bar.low, bar.close, bar.volume]
            .iter()
            .all(|v| v.is_finite());
        if !finite {
            // The indicators would skip it too; deciding on it would compare NaN.
            return;
        }
        std::mem::swap(&mut self.now, &mut self.prev);
        for (slot, inst) in self.now.iter_mut().zip(self.instances.iter_mut()) {
            *slot = inst.update(bar);
        }
        self.seen += 1;
        self.signals.retain(|s| !s.is_expired(bar.time_ms));
        let prev_bar = self.prev_bar.replace(*bar);
        let Some(prev_bar) = prev_bar else {
            return;
        };
        if self.seen < self.warmup {
            return;
        }
        let frame = Frame {
            bar,
            prev_bar: &prev_bar,
            now: &self.now,
            prev: &self.prev,
            signals: &self.signals,
        };
        let holds = |c: &Option<Cond>| c.as_ref().is_some_and(|c| frame.holds(c));
        let (long_now, short_now) = (holds(&self.enter_long), holds(&self.enter_short));
        let signals = Signals {
            enter_long: long_now && !self.held.0,
            exit_long: holds(&self.exit_long),
            enter_short: short_now && !self.held.1,
            exit_short: holds(&self.exit_short),
        };
        self.held = (long_now, short_now);
        let this = &*self;
        signals.apply(
            SameSide::Reopen,
            position,
            bar.close,
            self.size,
            |side, close| {
                (
                    this.exit_price(this.stop_loss, side, close, -1.0),
                    this.exit_price(this.take_profit, side, close, 1.0),
                )
            },
            actions,
        );
    }

    fn on_signal(&mut self, signal: &Signal) {
        if self.signals.len() == MAX_SIGNALS_KEPT {
            self.signals.remove(0);
        }
        self.signals.push(signal.clone());
    }
}

/// Signals a spec strategy keeps (the oldest goes first): far more than any bar has alive.
const MAX_SIGNALS_KEPT: usize = 1024;
