//! What is drawn over an ad: harmless decoys (either class) and the violation (violating ads).
//!
//! The violation is always saturated red, in varied shades: a starburst badge ("No.1!") anywhere
//! on the ad, or a thick diagonal stroke through the price tag. The decoys (a blue/green circle
//! badge, gold rating stars, a grey underline under the price) look like ad furniture, are never
//! red, and are drawn with the same odds in both classes, so they carry no information.

use image::{Rgb, RgbImage};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::draw::{self, Bar, Point};

/// Odds that an ad (of either class) shows each decoy.
const DECOY_ODDS: f64 = 0.45;

/// What makes an ad violating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    /// A red starburst badge, the "No.1!" kind of claim.
    Burst,
    /// A thick red diagonal stroke through the price tag.
    StrikedPrice,
    /// Both of the above.
    Both,
}

impl ViolationKind {
    pub fn name(self) -> &'static str {
        match self {
            ViolationKind::Burst => "burst",
            ViolationKind::StrikedPrice => "striked price",
            ViolationKind::Both => "burst + striked price",
        }
    }
}

/// Where marks go on an ad: its size, its price tag and the left edge of its body text.
#[derive(Debug, Clone, Copy)]
pub struct Anchors {
    pub width: f32,
    pub height: f32,
    pub price: Bar,
    pub text_x: f32,
}

#[derive(Debug, Clone, Copy)]
pub enum Decoy {
    /// A blue/green round badge with a white bar ("NEW").
    CircleBadge { centre: Point, radius: f32, color: Rgb<u8> },
    /// A row of small gold five-point stars (a rating) above the price.
    RatingStars { start: Point, size: f32, count: u32 },
    /// A thin grey line under the price tag.
    Underline(Bar),
}

/// One part of a violation.
#[derive(Debug, Clone, Copy)]
pub enum Mark {
    Burst { centre: Point, outer: f32, inner: f32, tips: u32, rotation: f32, color: Rgb<u8> },
    Strike { from: Point, to: Point, thickness: f32, color: Rgb<u8> },
}

/// Each decoy with `DECOY_ODDS`, independently.
pub fn random_decoys(rng: &mut ChaCha8Rng, at: &Anchors) -> Vec<Decoy> {
    let (w, h) = (at.width, at.height);
    let unit = w.min(h);
    let mut decoys = Vec::new();
    if rng.random_bool(DECOY_ODDS) {
        let radius = rng.random_range(0.1..0.16) * unit;
        decoys.push(Decoy::CircleBadge {
            centre: (rng.random_range(radius..w - radius), rng.random_range(radius..h - radius)),
            radius,
            color: draw::hsv(
                rng.random_range(100.0..250.0),
                rng.random_range(0.6..1.0),
                rng.random_range(0.5..0.95),
            ),
        });
    }
    if rng.random_bool(DECOY_ODDS) {
        let size = rng.random_range(0.035..0.05) * unit;
        decoys.push(Decoy::RatingStars {
            start: (at.text_x + size, at.price.y as f32 - 1.6 * size),
            size,
            count: rng.random_range(3..=5),
        });
    }
    if rng.random_bool(DECOY_ODDS) {
        let p = at.price;
        let color = Rgb([90, 90, 96]);
        decoys.push(Decoy::Underline(Bar { x: p.x, y: p.y + p.h + 2, w: p.w, h: 2, color }));
    }
    decoys
}

/// The marks of a violation of this kind.
pub fn random_violation(rng: &mut ChaCha8Rng, kind: ViolationKind, at: &Anchors) -> Vec<Mark> {
    match kind {
        ViolationKind::Burst => vec![random_burst(rng, at)],
        ViolationKind::StrikedPrice => vec![random_strike(rng, at)],
        ViolationKind::Both => vec![random_burst(rng, at), random_strike(rng, at)],
    }
}

impl Decoy {
    pub fn draw(&self, img: &mut RgbImage) {
        match *self {
            Decoy::CircleBadge { centre, radius, color } => {
                draw::fill_circle(img, centre, radius, color);
                centred_bar(img, centre, 1.1 * radius, 0.3 * radius, Rgb([255, 255, 255]));
            }
            Decoy::RatingStars { start, size, count } => {
                for i in 0..count {
                    let centre = (start.0 + i as f32 * 2.3 * size, start.1);
                    let star = draw::star_points(centre, size, 0.45 * size, 5, -0.25);
                    draw::fill_polygon(img, &star, Rgb([240, 190, 30]));
                }
            }
            Decoy::Underline(bar) => bar.draw(img),
        }
    }
}

impl Mark {
    pub fn draw(&self, img: &mut RgbImage) {
        match *self {
            Mark::Burst { centre, outer, inner, tips, rotation, color } => {
                draw::fill_polygon(img, &draw::star_points(centre, outer, inner, tips, rotation), color);
                // The claim's "text".
                centred_bar(img, centre, inner, 0.28 * inner, Rgb([255, 240, 200]));
            }
            Mark::Strike { from, to, thickness, color } => draw::thick_line(img, from, to, thickness, color),
        }
    }
}

/// A light bar (a word of text) centred on a badge; at least 2 px tall.
fn centred_bar(img: &mut RgbImage, centre: Point, w: f32, h: f32, color: Rgb<u8>) {
    let (w, h) = (w as i32, h.max(2.0) as i32);
    draw::fill_rect(img, centre.0 as i32 - w / 2, centre.1 as i32 - h / 2, w, h, color);
}

/// A saturated red, varied in shade: the colour of every violation.
fn violation_red(rng: &mut ChaCha8Rng) -> Rgb<u8> {
    draw::hsv(rng.random_range(-10.0..8.0), rng.random_range(0.85..1.0), rng.random_range(0.8..1.0))
}

/// A starburst of 9 to 16 tips, 15–24 % of the short side in radius, anywhere on the ad.
fn random_burst(rng: &mut ChaCha8Rng, at: &Anchors) -> Mark {
    let (w, h) = (at.width, at.height);
    let outer = rng.random_range(0.15..0.24) * w.min(h);
    Mark::Burst {
        centre: (rng.random_range(outer..w - outer), rng.random_range(outer..h - outer)),
        outer,
        inner: outer * rng.random_range(0.62..0.78),
        tips: rng.random_range(9..=16),
        rotation: rng.random_range(0.0..1.0),
        color: violation_red(rng),
    }
}

/// A stroke corner to corner across the price tag (rising or falling), overshooting a little.
fn random_strike(rng: &mut ChaCha8Rng, at: &Anchors) -> Mark {
    let p = at.price;
    let over = rng.random_range(0.0..0.15) * p.w as f32;
    let (left, right) = (p.x as f32 - over, (p.x + p.w) as f32 + over);
    let (top, bottom) = (p.y as f32 - over / 2.0, (p.y + p.h) as f32 + over / 2.0);
    let (from, to) =
        if rng.random_bool(0.5) { ((left, bottom), (right, top)) } else { ((left, top), (right, bottom)) };
    Mark::Strike {
        from,
        to,
        thickness: (rng.random_range(0.035..0.055) * at.width.min(at.height)).max(3.5),
        color: violation_red(rng),
    }
}
