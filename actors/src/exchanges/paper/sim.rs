//! The seeded, reproducible price path of one simulated symbol.
//!
//! Owns: the log price at any simulation step `k` (an integer count of `step`s from the
//! market anchor, negative before it). Never: ticks, spreads, candles or clock time.
//!
//! The path is geometric Brownian motion built top-down on four resolutions, so any step
//! can be computed on its own and a coarse question never touches fine steps:
//!
//! - level 0, every 86 400 steps (a day at the default 1 s step): a random walk from the
//!   anchor (k = 0, where the price is the configured initial price) forward and backward;
//! - levels 1, 2, 3, every 3 600, 60 and 1 steps: Brownian bridges between the two
//!   enclosing points of the level above (24, 60 and 60 sub-intervals).
//!
//! A bridge conditioned on its end points is exactly how GBM looks between two known
//! prices, so every level is the same path: the close of a daily candle sampled at level 0
//! equals the 1 s price at that instant. Every normal draw comes from a ChaCha8 stream keyed
//! by (seed, symbol) at a position fixed by (level, index), so a price depends only on the
//! seed, the symbol, the anchor and `k`, never on which prices were asked for before.
//!
//! Memory is bounded: a cache of recently used bridges (cleared when full), a cache of
//! daily points, and one checkpoint per 64 days walked from the anchor.

use std::collections::{BTreeMap, HashMap};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Steps between two points of each level, coarsest first.
pub const SPACING: [i64; 4] = [86_400, 3_600, 60, 1];
/// Sub-intervals of one bridge at levels 1, 2, 3.
const FACTORS: [i64; 3] = [24, 60, 60];
const CHECKPOINT_DAYS: i64 = 64;
const BRIDGE_CACHE_CAP: usize = 256;
const DAY_CACHE_CAP: usize = 1_024;
const MS_PER_YEAR: f64 = 365.25 * 86_400_000.0;

pub struct SimPath {
    key: [u8; 32],
    ln_anchor: f64,
    /// Drift of the log price over one level-0 interval (Itô-corrected).
    day_drift: f64,
    /// Standard deviation of the log price over one step.
    step_sigma: f64,
    checkpoints: BTreeMap<i64, f64>,
    days: HashMap<i64, f64>,
    bridges: HashMap<(usize, i64), Box<[f64]>>,
}

impl SimPath {
    pub fn new(
        seed: u64,
        symbol: &str,
        initial_price: f64,
        volatility_annual: f64,
        drift_annual: f64,
        step_ms: i64,
    ) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(&fnv1a(symbol.as_bytes(), 0xcbf2_9ce4_8422_2325).to_le_bytes());
        key[16..24].copy_from_slice(&fnv1a(symbol.as_bytes(), 0x84_2222_3252_9ce4).to_le_bytes());
        key[24..].copy_from_slice(b"orrery-p");
        let step_years = step_ms as f64 / MS_PER_YEAR;
        let day_years = step_years * SPACING[0] as f64;
        let var = volatility_annual * volatility_annual;
        Self {
            key,
            ln_anchor: initial_price.ln(),
            day_drift: (drift_annual - var / 2.0) * day_years,
            step_sigma: volatility_annual * step_years.sqrt(),
            checkpoints: BTreeMap::new(),
            days: HashMap::new(),
            bridges: HashMap::new(),
        }
    }

    /// Standard deviation of the log price over one step.
    pub fn step_sigma(&self) -> f64 {
        self.step_sigma
    }

    /// Natural log of the price at step `k`.
    pub fn ln_price(&mut self, k: i64) -> f64 {
        let day = k.div_euclid(SPACING[0]);
        let mut rest = k.rem_euclid(SPACING[0]);
        let mut a = self.day_point(day);
        if rest == 0 {
            return a;
        }
        let mut b = self.day_point(day + 1);
        let mut index = day;
        for level in 0..FACTORS.len() {
            let sub = SPACING[level + 1];
            let j = rest / sub;
            rest %= sub;
            let (x, y) = self.bridge_pair(level, index, a, b, j as usize);
            if rest == 0 {
                return x;
            }
            a = x;
            b = y;
            index = index * FACTORS[level] + j;
        }
        // The last spacing is 1, so `rest` is 0 after the last level.
        a
    }

    fn rng_at(&self, stream: u64, index: i64, draws_per_index: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(stream);
        // One normal draw consumes two u64, i.e. four 32-bit words.
        rng.set_word_pos(zigzag(index) as u128 * draws_per_index as u128 * 4);
        rng
    }

    /// Increment of the level-0 log price from day `j - 1` to day `j`.
    fn day_increment(&self, j: i64) -> f64 {
        let mut rng = self.rng_at(0, j, 1);
        let day_sigma = self.step_sigma * (SPACING[0] as f64).sqrt();
        self.day_drift + day_sigma * normal(&mut rng)
    }

    fn walk(&self, from: i64, to: i64, mut v: f64) -> f64 {
        if to >= from {
            for j in from + 1..=to {
                v += self.day_increment(j);
            }
        } else {
            for j in (to + 1..=from).rev() {
                v -= self.day_increment(j);
            }
        }
        v
    }

    fn checkpoint(&mut self, c: i64) -> f64 {
        let dir = c.signum();
        let (mut cur, mut v) = (0, self.ln_anchor);
        while cur != c {
            let next = cur + dir * CHECKPOINT_DAYS;
            v = match self.checkpoints.get(&next) {
                Some(x) => *x,
                None => {
                    let x = self.walk(cur, next, v);
                    self.checkpoints.insert(next, x);
                    x
                }
            };
            cur = next;
        }
        v
    }

    fn day_point(&mut self, day: i64) -> f64 {
        if let Some(v) = self.days.get(&day) {
            return *v;
        }
        // Scans move one day at a time: continue from the neighbour on the anchor's side
        // when it is known, otherwise walk from the checkpoint (multiples of
        // CHECKPOINT_DAYS, toward the anchor). Both perform the very same floating-point
        // operations in the same order as a walk from the anchor, so the value is
        // bit-identical whichever way it was reached.
        let toward_anchor = if day > 0 {
            self.days
                .get(&(day - 1))
                .map(|prev| prev + self.day_increment(day))
        } else {
            self.days
                .get(&(day + 1))
                .map(|next| next - self.day_increment(day + 1))
        };
        let v = if let Some(v) = toward_anchor {
            v
        } else {
            let c = (day / CHECKPOINT_DAYS) * CHECKPOINT_DAYS;
            let base = self.checkpoint(c);
            self.walk(c, day, base)
        };
        if self.days.len() >= DAY_CACHE_CAP {
            self.days.clear();
        }
        self.days.insert(day, v);
        v
    }

    /// Points `j` and `j + 1` of the bridge at `level` between `a` and `b`.
    fn bridge_pair(&mut self, level: usize, index: i64, a: f64, b: f64, j: usize) -> (f64, f64) {
        if let Some(points) = self.bridges.get(&(level, index)) {
            return (points[j], points[j + 1]);
        }
        let n = FACTORS[level];
        let sigma = self.step_sigma * (SPACING[level + 1] as f64).sqrt();
        let mut rng = self.rng_at(level as u64 + 1, index, n as u64);
        let mut walk = Vec::with_capacity(n as usize + 1);
        walk.push(0.0);
        let mut w = 0.0;
        for _ in 0..n {
            w += sigma * normal(&mut rng);
            walk.push(w);
        }
        let gap = w - (b - a);
        let points: Box<[f64]> = walk
            .iter()
            .enumerate()
            .map(|(i, wi)| a + wi - (i as f64 / n as f64) * gap)
            .collect();
        let pair = (points[j], points[j + 1]);
        if self.bridges.len() >= BRIDGE_CACHE_CAP {
            self.bridges.clear();
        }
        self.bridges.insert((level, index), points);
        pair
    }
}

/// Maps ..., -2, -1, 0, 1, 2, ... onto 3, 1, 0, 2, 4, ... so every index has its own
/// stream position.
fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn fnv1a(bytes: &[u8], basis: u64) -> u64 {
    bytes.iter().fold(basis, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// One standard normal draw (Box-Muller, cosine branch).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    let u1 = ((rng.next_u64() >> 11) + 1) as f64 * SCALE; // (0, 1]
    let u2 = (rng.next_u64() >> 11) as f64 * SCALE; // [0, 1)
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(seed: u64) -> SimPath {
        SimPath::new(seed, "BTC", 60_000.0, 0.6, 0.0, 1_000)
    }

    #[test]
    fn anchor_is_initial_price() {
        assert!((path(1).ln_price(0).exp() - 60_000.0).abs() < 1e-6);
    }

    #[test]
    fn any_access_order_gives_the_same_path() {
        let ks: Vec<i64> = vec![-200_000, -1, 1, 59, 60, 3_601, 86_399, 86_400, 1_000_000];
        let mut forward = path(7);
        let a: Vec<f64> = ks.iter().map(|k| forward.ln_price(*k)).collect();
        let mut backward = path(7);
        let mut b: Vec<f64> = ks.iter().rev().map(|k| backward.ln_price(*k)).collect();
        b.reverse();
        assert_eq!(a, b);
        let mut other = path(8);
        assert_ne!(other.ln_price(1_000_000), a[8]);
    }

    #[test]
    fn day_points_are_bit_identical_whatever_the_scan_direction() {
        let ks: Vec<i64> = (-200..200).map(|d| d * SPACING[0] + 3_600).collect();
        let mut up = path(5);
        let a: Vec<f64> = ks.iter().map(|k| up.ln_price(*k)).collect();
        let mut down = path(5);
        let mut b: Vec<f64> = ks.iter().rev().map(|k| down.ln_price(*k)).collect();
        b.reverse();
        let c: Vec<f64> = ks.iter().map(|k| path(5).ln_price(*k)).collect();
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn steps_have_the_configured_volatility() {
        // Over many one-step returns the sample standard deviation matches sigma·sqrt(dt).
        let mut p = path(3);
        let n = 20_000;
        let returns: Vec<f64> = (0..n).map(|k| p.ln_price(k + 1) - p.ln_price(k)).collect();
        let mean = returns.iter().sum::<f64>() / n as f64;
        let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let ratio = var.sqrt() / p.step_sigma();
        assert!((0.95..1.05).contains(&ratio), "ratio {ratio}");
    }
}
