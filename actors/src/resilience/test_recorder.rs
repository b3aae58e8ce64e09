//! A metrics recorder for tests: installed thread-locally, it keeps counter totals, the
//! last gauge value and histogram sample counts by `name{label=value,...}`.

use std::collections::HashMap;
use std::sync::Arc;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use parking_lot::Mutex;

type Values = Arc<Mutex<HashMap<String, f64>>>;

#[derive(Default)]
pub struct TestRecorder {
    values: Values,
}

impl TestRecorder {
    /// The value under `name{labels}`, labels written `k=v` joined by commas in the
    /// order the code passes them.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.lock().get(key).copied()
    }

    fn cell(&self, key: &Key) -> Arc<Cell> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        Arc::new(Cell {
            key: format!("{}{{{}}}", key.name(), labels.join(",")),
            values: self.values.clone(),
        })
    }
}

struct Cell {
    key: String,
    values: Values,
}

impl Cell {
    fn update(&self, f: impl FnOnce(&mut f64)) {
        f(self.values.lock().entry(self.key.clone()).or_default());
    }
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.update(|v| *v += value as f64);
    }
    fn absolute(&self, value: u64) {
        self.update(|v| *v = value as f64);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        self.update(|v| *v += value);
    }
    fn decrement(&self, value: f64) {
        self.update(|v| *v -= value);
    }
    fn set(&self, value: f64) {
        self.update(|v| *v = value);
    }
}

impl HistogramFn for Cell {
    fn record(&self, _value: f64) {
        self.update(|v| *v += 1.0);
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}
