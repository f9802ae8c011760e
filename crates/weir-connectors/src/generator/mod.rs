//! The shop-events generator: an endless, seeded stream of JSON lines in the format, distributions
//! and defect mix of `shared/bench/SPEC.md` ("shop events — spec v1"), produced one line at a time.
//!
//! [`ShopEvents`] owns the line bytes only; the source half — config ([`GeneratorConfig`]) and the
//! loop that appends lines to a topic at a rate ([`run_generator`]) — lives in `config.rs` and
//! `runner.rs`.
//!
//! Differences from the reference `gen_events.py`, which draws everything up front for a known N:
//! here every defect, shift and duplicate is a per-line probability (1 % invalid, 0.5 % duplicates,
//! 5 % out of order, 0.1 % late, as fractions of all lines), so counts vary by a few σ around the
//! SPEC's exact figures, memory stays constant however long the stream runs, and the bytes differ
//! from the Python file for the same seed — the expected results in `shared/bench/expected/` apply
//! to the Python file only. Everything else (fields, key order, number and time formats, the
//! popularity skew, per-product category and price, the defect kinds) follows the SPEC.
//!
//! Memory: the catalog (~1.5 MB of tables, fixed) plus a ring of the last 65 536 lines' compact
//! field values (2 MB). A duplicate re-renders an earlier clean line from the ring; rendering is a
//! pure function of those values, so the copy is byte-identical without keeping the text.

mod catalog;
mod config;
mod render;
mod runner;
#[cfg(test)]
mod tests;

pub use config::GeneratorConfig;
pub use runner::run_generator;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use catalog::{CATEGORIES, Catalog};
use render::{TsWriter, push_cents, push_fixed, push_hex48};

/// Nominal event time of line 0 in the SPEC: 2026-01-15T00:00:00.000Z, in Unix milliseconds.
pub const SPEC_START_MS: i64 = 1_768_435_200_000;

// Per-line probabilities, as fractions of all lines (the SPEC's round(p·N) counts, in expectation).
const DUPLICATE_P: f64 = 0.005;
const INVALID_P: f64 = 0.01;
const OUT_OF_ORDER_P: f64 = 0.05;
const LATE_P: f64 = 0.001;
/// Shifts apply to non-duplicate lines only, so their conditional probability is scaled up to make
/// the fraction of all lines come out at the SPEC's 5 % and 0.1 %.
const NON_DUPLICATE_P: f64 = 1.0 - DUPLICATE_P;

const OUT_OF_ORDER_MAX_MS: i64 = 30_000;
const LATE_MIN_MS: i64 = 120_000;
const LATE_MAX_MS: i64 = 600_000;
/// A duplicate copies a clean line 1..=60 000 lines (60 s of nominal time) earlier.
const DUPLICATE_MAX_BACK: u64 = 60_000;
const RING_LEN: usize = 1 << 16;
const _: () = assert!(RING_LEN as u64 > DUPLICATE_MAX_BACK);

const EVENT_TYPES: [&str; 4] = ["view", "add_to_cart", "purchase", "refund"];
/// Cumulative P of view, add_to_cart, purchase (refund takes the rest).
const EVENT_TYPE_CUM: [f64; 3] = [0.70, 0.88, 0.98];
/// Cumulative P of quantity 1..=4 (5 takes the rest).
const QUANTITY_CUM: [f64; 4] = [0.55, 0.75, 0.87, 0.95];
const PURCHASE: u8 = 2;
const LOCATIONS: [&str; 20] = [
    "New York",
    "London",
    "Paris",
    "Berlin",
    "São Paulo",
    "Zürich",
    "München",
    "Kraków",
    "Montréal",
    "Reykjavík",
    "Málaga",
    "Göteborg",
    "Tokyo",
    "Mumbai",
    "Lagos",
    "Sydney",
    "Toronto",
    "Singapore",
    "Mexico City",
    "Düsseldorf",
];
const BAD_EVENT_TYPES: [&str; 6] = [
    "click",
    "wishlist",
    "checkout",
    "Purchase",
    "VIEW",
    "page_view",
];
const BAD_TS: [&str; 6] = [
    "not-a-timestamp",
    "",
    "2026-01-15T25:61:00.000Z",
    "2026-02-30T10:00:00.000Z",
    "15/01/2026 10:30:00",
    "2026-13-01T00:00:00.000Z",
];

/// `p` as a threshold on a uniform `u32`.
const fn threshold32(p: f64) -> u32 {
    (p * 4_294_967_296.0) as u32
}

/// `p` as a threshold on a uniform 21-bit integer (three categorical draws share one `u64`).
const fn threshold21(p: f64) -> u32 {
    (p * 2_097_152.0) as u32
}

const DUPLICATE_T: u32 = threshold32(DUPLICATE_P);
const INVALID_T: u32 = threshold32(DUPLICATE_P + INVALID_P);
const LATE_T: u32 = threshold32(LATE_P / NON_DUPLICATE_P);
const OUT_OF_ORDER_T: u32 = threshold32((LATE_P + OUT_OF_ORDER_P) / NON_DUPLICATE_P);
const EVENT_TYPE_T: [u32; 3] = [
    threshold21(EVENT_TYPE_CUM[0]),
    threshold21(EVENT_TYPE_CUM[1]),
    threshold21(EVENT_TYPE_CUM[2]),
];
const QUANTITY_T: [u32; 4] = [
    threshold21(QUANTITY_CUM[0]),
    threshold21(QUANTITY_CUM[1]),
    threshold21(QUANTITY_CUM[2]),
    threshold21(QUANTITY_CUM[3]),
];

/// The field values of one line, compact enough to keep the last 65 536 of them.
#[derive(Clone, Copy, Default)]
struct Event {
    /// 48-bit event number, written as 12 hex digits.
    id: u64,
    ts_ms: i64,
    customer: u32,
    product: u16,
    /// index into EVENT_TYPES
    event_type: u8,
    quantity: u8,
    /// index into LOCATIONS
    location: u8,
    /// Valid and not itself a duplicate: a later duplicate may copy it.
    clean: bool,
}

/// The one defect of an invalid line (SPEC "Defects"); the other fields stay normal.
#[derive(Clone, Copy)]
enum Defect {
    None,
    MissingCustomer {
        null: bool,
    },
    NegativeAmount,
    UnknownEventType(u8),
    UnparseableTs(u8),
    /// Keep this fraction (in [0, 1)) of the text before the quantity value, at least one byte.
    Malformed(f64),
}

/// An endless, reproducible stream of shop-events lines. See the module docs for how it relates to
/// the SPEC and to `gen_events.py`.
pub struct ShopEvents {
    rng: ChaCha8Rng,
    catalog: Catalog,
    id_keys: [u64; 3],
    start_ms: i64,
    produced: u64,
    /// Line `i` lives at `i % RING_LEN`.
    recent: Box<[Event]>,
    ts: TsWriter,
}

impl ShopEvents {
    /// A generator whose line `i` has nominal event time `start_ms + i` ms (the SPEC's start is
    /// [`SPEC_START_MS`]). The same seed gives the same sequence of lines.
    pub fn new(seed: u64, start_ms: i64) -> Self {
        // The catalog and the per-line draws use separate ChaCha streams of the same key, so the
        // catalog does not depend on how many draws its construction happens to make.
        let mut catalog_rng = ChaCha8Rng::seed_from_u64(seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        let mut key_state = seed;
        let id_keys = std::array::from_fn(|_| splitmix64(&mut key_state) & MASK48);
        Self {
            catalog: Catalog::new(&mut catalog_rng),
            rng,
            id_keys,
            start_ms,
            produced: 0,
            recent: vec![Event::default(); RING_LEN].into_boxed_slice(),
            ts: TsWriter::new(),
        }
    }

    /// Appends the next line to `out` — one JSON object, no trailing newline, possibly one of the
    /// SPEC's invalid or truncated forms — and returns its line index (0 for the first line).
    pub fn next_line(&mut self, out: &mut Vec<u8>) -> u64 {
        let (i, event, defect) = self.step();
        render(&self.catalog, &mut self.ts, &event, defect, out);
        i
    }

    /// Advances past `n` lines without writing them: the same state as `n` calls of
    /// [`next_line`](Self::next_line), about twice as fast. For resuming a stream at a line count.
    pub fn skip(&mut self, n: u64) {
        for _ in 0..n {
            self.step();
        }
    }

    /// Lines produced so far.
    pub fn lines(&self) -> u64 {
        self.produced
    }

    /// Draws line `i`'s values and records them in the ring; everything but the bytes.
    fn step(&mut self) -> (u64, Event, Defect) {
        let i = self.produced;
        self.produced += 1;
        let draw = self.rng.next_u64();
        let class = draw as u32;
        let shift_draw = (draw >> 32) as u32;

        // Line 0 is always clean.
        if i > 0
            && class < DUPLICATE_T
            && let Some(original) = self.pick_original(i)
        {
            let event = self.recent[original];
            self.recent[ring_slot(i)] = Event {
                clean: false,
                ..event
            };
            return (i, event, Defect::None);
        }
        // A duplicate with no clean line within reach falls through and becomes a normal line.
        let defect = if i > 0 && (DUPLICATE_T..INVALID_T).contains(&class) {
            self.draw_defect()
        } else {
            Defect::None
        };

        let shift = if shift_draw < LATE_T {
            self.rng.gen_range(LATE_MIN_MS..=LATE_MAX_MS)
        } else if shift_draw < OUT_OF_ORDER_T {
            self.rng.gen_range(1..=OUT_OF_ORDER_MAX_MS)
        } else {
            0
        };
        let nominal = self.start_ms.saturating_add(i as i64);
        let ts_ms = nominal.saturating_sub(shift).max(self.start_ms);

        let customer_u = unit_f64(self.rng.next_u64());
        let product_u = unit_f64(self.rng.next_u64());
        let small = self.rng.next_u64();
        let customer_rank = self.catalog.customer_zipf.sample(customer_u);
        let product_rank = self.catalog.product_zipf.sample(product_u);
        let event = Event {
            id: event_number(i, &self.id_keys),
            ts_ms,
            customer: self.catalog.customer_of_rank[customer_rank],
            product: self.catalog.product_of_rank[product_rank],
            event_type: bucket((small & 0x1f_ffff) as u32, &EVENT_TYPE_T),
            quantity: 1 + bucket(((small >> 21) & 0x1f_ffff) as u32, &QUANTITY_T),
            location: (((small >> 42) * LOCATIONS.len() as u64) >> 22) as u8,
            clean: matches!(defect, Defect::None),
        };
        self.recent[ring_slot(i)] = event;
        (i, event, defect)
    }

    /// Ring slot of a clean line 1..=60 000 lines before `i`: the first clean one at or after a
    /// uniformly drawn distance back, else the nearest clean one before it.
    fn pick_original(&mut self, i: u64) -> Option<usize> {
        let back = self.rng.gen_range(1..=i.min(DUPLICATE_MAX_BACK));
        let target = i - back;
        let lowest = i.saturating_sub(DUPLICATE_MAX_BACK);
        (target..i)
            .chain((lowest..target).rev())
            .map(ring_slot)
            .find(|&slot| self.recent[slot].clean)
    }

    fn draw_defect(&mut self) -> Defect {
        let d = self.rng.next_u64();
        let detail = (d >> 32) as u32;
        match (u64::from(d as u32) * 5) >> 32 {
            0 => Defect::MissingCustomer {
                null: detail >= 1 << 31,
            },
            1 => Defect::NegativeAmount,
            2 => Defect::UnknownEventType(((u64::from(detail) * 6) >> 32) as u8),
            3 => Defect::UnparseableTs(((u64::from(detail) * 6) >> 32) as u8),
            _ => Defect::Malformed(f64::from(detail) / 4_294_967_296.0),
        }
    }
}

impl std::fmt::Debug for ShopEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopEvents")
            .field("start_ms", &self.start_ms)
            .field("lines", &self.produced)
            .finish_non_exhaustive()
    }
}

fn ring_slot(i: u64) -> usize {
    (i % RING_LEN as u64) as usize
}

/// Index of the first threshold above `x` (or `thresholds.len()`).
#[inline]
fn bucket(x: u32, thresholds: &[u32]) -> u8 {
    thresholds.iter().take_while(|&&t| x >= t).count() as u8
}

/// Uniform in [0, 1) from the top 53 bits.
#[inline]
fn unit_f64(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

const MASK48: u64 = (1 << 48) - 1;

/// A keyed bijection on 48 bits, so distinct line indices below 2^48 get distinct event ids that
/// look random. Every step is invertible modulo 2^48: xor with a key, multiplication by an odd
/// constant, `x ^= x >> k`, and rotation.
fn event_number(i: u64, keys: &[u64; 3]) -> u64 {
    let mut x = (i ^ keys[0]) & MASK48;
    x = x.wrapping_mul(0x2545_f491_4f6c_dd1d) & MASK48;
    x ^= x >> 24;
    x ^= keys[1];
    x = x.wrapping_mul(0x9e37_79b9_7f4b) & MASK48;
    x ^= x >> 21;
    x = ((x << 13) | (x >> 35)) & MASK48;
    x ^= keys[2];
    x = x.wrapping_mul(0xb492_b66f_be99) & MASK48;
    x ^ (x >> 26)
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Writes one line. Pure in (`catalog`, `event`, `defect`), which is what makes a duplicate's
/// re-rendering byte-identical to its original.
fn render(catalog: &Catalog, ts: &mut TsWriter, event: &Event, defect: Defect, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(br#"{"event_id":"e"#);
    push_hex48(out, event.id);
    out.extend_from_slice(br#"","ts":""#);
    match defect {
        Defect::UnparseableTs(k) => out.extend_from_slice(BAD_TS[usize::from(k)].as_bytes()),
        _ => ts.push(out, event.ts_ms),
    }
    out.push(b'"');
    match defect {
        Defect::MissingCustomer { null: false } => {}
        Defect::MissingCustomer { null: true } => out.extend_from_slice(br#","customer_id":null"#),
        _ => {
            out.extend_from_slice(br#","customer_id":"cust_"#);
            push_fixed(out, u64::from(event.customer), 6);
            out.push(b'"');
        }
    }
    out.extend_from_slice(br#","event_type":""#);
    let event_type = match defect {
        Defect::UnknownEventType(k) => BAD_EVENT_TYPES[usize::from(k)],
        _ => EVENT_TYPES[usize::from(event.event_type)],
    };
    out.extend_from_slice(event_type.as_bytes());
    let product = usize::from(event.product);
    out.extend_from_slice(br#"","product_category":""#);
    out.extend_from_slice(CATEGORIES[usize::from(catalog.category[product])].as_bytes());
    out.extend_from_slice(br#"","product_id":"prod_"#);
    push_fixed(out, product as u64, 5);
    out.extend_from_slice(br#"","amount":"#);
    let gross = i64::from(catalog.price_cents[product]) * i64::from(event.quantity);
    let cents = match defect {
        Defect::NegativeAmount => -gross,
        _ if event.event_type >= PURCHASE => gross,
        _ => 0,
    };
    push_cents(out, cents);
    out.extend_from_slice(br#","quantity":"#);
    if let Defect::Malformed(fraction) = defect {
        let span = out.len() - start;
        let mut keep = 1 + ((fraction * span as f64) as usize).min(span - 1);
        // Never cut inside a UTF-8 sequence (everything up to here is ASCII today; this keeps it
        // true if a field before the quantity ever is not).
        while keep > 1 && start + keep < out.len() && (out[start + keep] & 0xc0) == 0x80 {
            keep -= 1;
        }
        out.truncate(start + keep);
        return;
    }
    push_fixed(out, u64::from(event.quantity), 1);
    out.extend_from_slice(br#","location":""#);
    out.extend_from_slice(LOCATIONS[usize::from(event.location)].as_bytes());
    out.extend_from_slice(br#""}"#);
}
