//! The seeded, immutable world the shop-events lines are drawn from: which customer and which product
//! each popularity rank maps to, every product's category and unit price, and the Zipf tables that
//! turn a uniform draw into a rank. Built once per generator; nothing here changes per line.

use rand::seq::SliceRandom;
use rand::{Rng, RngCore};

pub(super) const CUSTOMERS: usize = 100_000;
pub(super) const PRODUCTS: usize = 20_000;
const CUSTOMER_ZIPF_S: f64 = 1.0;
const PRODUCT_ZIPF_S: f64 = 0.8;

pub(super) const CATEGORIES: [&str; 12] = [
    "electronics",
    "books",
    "clothing",
    "home_garden",
    "toys",
    "sports",
    "beauty",
    "grocery",
    "automotive",
    "health",
    "jewelry",
    "music",
];

const PRICE_MEDIAN_CENTS: f64 = 2500.0;
const PRICE_SIGMA: f64 = 1.0;
const PRICE_MIN_CENTS: f64 = 99.0;
const PRICE_MAX_CENTS: f64 = 250_000.0;

/// Inverse-CDF sampler over ranks `0..n` with P(rank r) ∝ 1/(r+1)^s.
///
/// A plain binary search over 100 000 doubles touches ~17 cache lines spread over 800 KB per draw;
/// the guide table narrows each search to the ranks whose CDF interval overlaps one 1/4096 slice of
/// [0, 1), so a draw costs a lookup plus a search over a few hundred neighbouring entries at most.
pub(super) struct ZipfTable {
    cdf: Vec<f64>,
    /// `guide[k]` = first rank whose CDF value exceeds k / GUIDE_BUCKETS.
    guide: Vec<u32>,
}

const GUIDE_BUCKETS: usize = 4096;

impl ZipfTable {
    pub(super) fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0_f64;
        for r in 1..=n {
            acc += (r as f64).powf(-s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        // Division by the total leaves the last entry at exactly 1.0, so every u in [0, 1) finds a rank.
        let guide = (0..=GUIDE_BUCKETS)
            .map(|k| {
                let edge = k as f64 / GUIDE_BUCKETS as f64;
                cdf.partition_point(|&c| c <= edge).min(n - 1) as u32
            })
            .collect();
        Self { cdf, guide }
    }

    /// The rank (0-based) for a uniform `u` in [0, 1): the first rank whose CDF value exceeds `u`.
    #[inline]
    pub(super) fn sample(&self, u: f64) -> usize {
        let k = ((u * GUIDE_BUCKETS as f64) as usize).min(GUIDE_BUCKETS - 1);
        let lo = self.guide[k] as usize;
        let hi = self.guide[k + 1] as usize;
        let found = lo + self.cdf[lo..=hi].partition_point(|&c| c <= u);
        found.min(self.cdf.len() - 1)
    }
}

/// Customers, products and their fixed attributes for one seed.
pub(super) struct Catalog {
    pub(super) customer_zipf: ZipfTable,
    pub(super) product_zipf: ZipfTable,
    /// popularity rank -> customer number (0..100 000)
    pub(super) customer_of_rank: Vec<u32>,
    /// popularity rank -> product number (0..20 000)
    pub(super) product_of_rank: Vec<u16>,
    /// product number -> index into CATEGORIES
    pub(super) category: Vec<u8>,
    /// product number -> unit price in cents
    pub(super) price_cents: Vec<u32>,
}

impl Catalog {
    pub(super) fn new(rng: &mut impl RngCore) -> Self {
        let mut customer_of_rank: Vec<u32> = (0..CUSTOMERS as u32).collect();
        customer_of_rank.shuffle(rng);
        let mut product_of_rank: Vec<u16> = (0..PRODUCTS as u16).collect();
        product_of_rank.shuffle(rng);
        let category = (0..PRODUCTS)
            .map(|_| rng.gen_range(0..CATEGORIES.len() as u8))
            .collect();
        let price_cents = (0..PRODUCTS).map(|_| unit_price_cents(rng)).collect();
        Self {
            customer_zipf: ZipfTable::new(CUSTOMERS, CUSTOMER_ZIPF_S),
            product_zipf: ZipfTable::new(PRODUCTS, PRODUCT_ZIPF_S),
            customer_of_rank,
            product_of_rank,
            category,
            price_cents,
        }
    }
}

/// Lognormal unit price (median 25.00, σ = 1), whole cents, clipped to 0.99..2500.00.
fn unit_price_cents(rng: &mut impl RngCore) -> u32 {
    // Box-Muller; 1 - u1 is in (0, 1], so the logarithm is finite.
    let u1: f64 = rng.r#gen();
    let u2: f64 = rng.r#gen();
    let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (PRICE_MEDIAN_CENTS * (PRICE_SIGMA * z).exp())
        .round()
        .clamp(PRICE_MIN_CENTS, PRICE_MAX_CENTS) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_sample_matches_plain_binary_search() {
        let t = ZipfTable::new(CUSTOMERS, 1.0);
        let plain = |u: f64| t.cdf.partition_point(|&c| c <= u).min(t.cdf.len() - 1);
        let mut u = 0.0;
        while u < 1.0 {
            assert_eq!(t.sample(u), plain(u), "u = {u}");
            u += 0.000_123_7;
        }
        for u in [
            0.0,
            1.0 - f64::EPSILON,
            0.5,
            1.0 / 4096.0,
            t.cdf[0],
            t.cdf[1],
        ] {
            assert_eq!(t.sample(u), plain(u), "u = {u}");
        }
    }

    #[test]
    fn prices_stay_in_range() {
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(7);
        let c = Catalog::new(&mut rng);
        assert!(c.price_cents.iter().all(|&p| (99..=250_000).contains(&p)));
        let mut sorted = c.price_cents.clone();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        assert!((2300..=2700).contains(&median), "median {median}");
    }
}
