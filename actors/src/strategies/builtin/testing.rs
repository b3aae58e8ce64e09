//! Test helpers: feed closes or bars to a strategy while tracking the position its actions
//! would give (close → flat, buy → +1, sell → −1), as a runner filling at once would.

use crate::strategies::api::{Action, Actions, Bar, PositionView, Side, Strategy};

pub(crate) fn bar(close: f64) -> Bar {
    Bar {
        time_ms: 0,
        open: close,
        high: close,
        low: close,
        close,
        volume: 0.0,
    }
}

pub(crate) fn hlc(high: f64, low: f64, close: f64) -> Bar {
    Bar {
        time_ms: 0,
        open: close,
        high,
        low,
        close,
        volume: 0.0,
    }
}

/// Feeds `bars`; returns `(bar index, actions)` for every bar that produced some.
pub(crate) fn run(s: &mut dyn Strategy, bars: &[Bar]) -> Vec<(usize, Vec<Action>)> {
    let mut position = PositionView::FLAT;
    let mut actions = Actions::new();
    let mut out = Vec::new();
    for (i, b) in bars.iter().enumerate() {
        actions.clear();
        s.on_bar(b, &position, &mut actions);
        for a in actions.as_slice() {
            match a {
                Action::ClosePosition => position = PositionView::FLAT,
                Action::Order(o) => {
                    position.size += o.side.sign();
                    position.entry_price = Some(b.close);
                }
            }
        }
        if !actions.is_empty() {
            out.push((i, actions.as_slice().to_vec()));
        }
    }
    out
}

/// The same, summarised: per acting bar, `'C'` for a close, `'B'` / `'S'` for an order.
pub(crate) fn run_codes(s: &mut dyn Strategy, bars: &[Bar]) -> Vec<(usize, String)> {
    run(s, bars)
        .into_iter()
        .map(|(i, acts)| {
            let code = acts
                .iter()
                .map(|a| match a {
                    Action::ClosePosition => 'C',
                    Action::Order(o) if o.side == Side::Buy => 'B',
                    Action::Order(_) => 'S',
                })
                .collect();
            (i, code)
        })
        .collect()
}

pub(crate) fn closes(values: &[f64]) -> Vec<Bar> {
    values.iter().map(|&c| bar(c)).collect()
}
