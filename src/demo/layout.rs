//! One synthetic web ad: a scene drawn at random from a seeded RNG (a banded-gradient background,
//! headline and body text bars, a product, a price tag, a call-to-action button, then the decoys
//! and violation marks of `marks`), rendered frame by frame.
//!
//! Nothing here is red: every hue keeps clear of it (`SAFE_HUES`), so the violation's red is the
//! one cue. Animated ads move the product and change the button colour from frame to frame, and
//! can show the violation in some frames only.

use image::{Rgb, RgbImage};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::draw::{self, Bar, GradientDir, Point};
use super::marks::{self, Anchors, Decoy, Mark, ViolationKind};

/// Shortest and longest image side, in pixels.
const SIDE_PX: std::ops::RangeInclusive<u32> = 96..=160;
/// Hues (degrees) used for everything that is not a violation: clear of red on both sides.
const SAFE_HUES: std::ops::Range<f32> = 45.0..315.0;

#[derive(Debug, Clone, Copy)]
enum ProductShape {
    /// A box with a lid band.
    Box,
    /// A round fruit-like product with a highlight.
    Round,
    /// A bottle: body, neck and cap.
    Bottle,
    /// A triangular gadget.
    Wedge,
}

#[derive(Debug, Clone, Copy)]
struct Product {
    shape: ProductShape,
    centre: Point,
    size: f32,
    body: Rgb<u8>,
    accent: Rgb<u8>,
}

impl Product {
    /// A product of random shape and colours, centred at `x` and 45–60 % down the ad.
    fn random(rng: &mut ChaCha8Rng, x: f32, w: f32, h: f32) -> Product {
        let shape = match rng.random_range(0..4) {
            0 => ProductShape::Box,
            1 => ProductShape::Round,
            2 => ProductShape::Bottle,
            _ => ProductShape::Wedge,
        };
        Product {
            shape,
            centre: (x, rng.random_range(0.45..0.6) * h),
            size: rng.random_range(0.2..0.3) * w.min(h),
            body: safe_color(rng, 0.45..0.9, 0.45..0.95),
            accent: safe_color(rng, 0.2..0.6, 0.75..1.0),
        }
    }
}

/// A drawn-at-random ad, ready to render any of its frames.
#[derive(Debug, Clone)]
pub struct AdScene {
    pub width: u32,
    pub height: u32,
    background: (Rgb<u8>, Rgb<u8>, GradientDir, u32),
    headline: Vec<Bar>,
    body: Vec<Bar>,
    product: Product,
    /// Horizontal product shift per frame (pixels), for animated ads.
    product_step: i32,
    price: Bar,
    price_digits: Vec<Bar>,
    button: Bar,
    /// Button colour on odd frames.
    button_alt: Rgb<u8>,
    button_label: Bar,
    decoys: Vec<Decoy>,
    marks: Vec<Mark>,
}

impl AdScene {
    /// Draw a scene at random; `violation` says which marks (if any) it carries.
    pub fn random(rng: &mut ChaCha8Rng, violation: Option<ViolationKind>) -> AdScene {
        let width = rng.random_range(SIDE_PX);
        let height = rng.random_range(SIDE_PX);
        let (w, h) = (width as f32, height as f32);
        let background = random_background(rng);
        let light_bg = luma(background.0) + luma(background.1) > 2.0 * 140.0;
        let ink =
            if light_bg { draw::hsv(0.0, 0.0, rng.random_range(0.1..0.3)) } else { Rgb([245, 245, 240]) };

        // Product on one side; body text, price and button on the other.
        let product_left = rng.random_bool(0.5);
        let (product_x, text_x) = if product_left { (0.28 * w, 0.55 * w) } else { (0.72 * w, 0.06 * w) };
        let product = Product::random(rng, product_x, w, h);
        let headline = text_bars(rng, (0.06 * w, 0.07 * h), 0.85 * w, (0.06 * h).max(5.0), 1..=2, ink);
        let body = text_bars(rng, (text_x, 0.3 * h), 0.39 * w, (0.035 * h).max(3.0), 2..=3, ink);
        let price = random_price_tag(rng, text_x, w, h);
        let price_digits = digit_bars(rng, &price);
        let (button, button_label) = random_button(rng, text_x, w, h);
        let mut scene = AdScene {
            width,
            height,
            background,
            headline,
            body,
            product,
            product_step: rng.random_range(-3..=3),
            price,
            price_digits,
            button,
            button_alt: safe_color(rng, 0.6..0.9, 0.5..0.85),
            button_label,
            decoys: Vec::new(),
            marks: Vec::new(),
        };
        let anchors = Anchors { width: w, height: h, price, text_x };
        scene.decoys = marks::random_decoys(rng, &anchors);
        if let Some(kind) = violation {
            scene.marks = marks::random_violation(rng, kind, &anchors);
        }
        scene
    }

    /// Render frame `frame`; the violation is drawn only when `show_violation` is set.
    pub fn render(&self, frame: usize, show_violation: bool) -> RgbImage {
        let mut img = RgbImage::new(self.width, self.height);
        let (from, to, dir, bands) = self.background;
        draw::fill_banded_gradient(&mut img, from, to, dir, bands);
        for bar in self.headline.iter().chain(&self.body) {
            bar.draw(&mut img);
        }
        self.draw_product(&mut img, self.product_step * frame as i32);
        self.price.draw(&mut img);
        for digit in &self.price_digits {
            digit.draw(&mut img);
        }
        let button_color = if frame % 2 == 1 { self.button_alt } else { self.button.color };
        Bar { color: button_color, ..self.button }.draw(&mut img);
        self.button_label.draw(&mut img);
        for decoy in &self.decoys {
            decoy.draw(&mut img);
        }
        if show_violation {
            for mark in &self.marks {
                mark.draw(&mut img);
            }
        }
        img
    }

    fn draw_product(&self, img: &mut RgbImage, dx: i32) {
        let Product { shape, centre, size, body, accent } = self.product;
        let (cx, cy) = (centre.0 + dx as f32, centre.1);
        let s = size;
        match shape {
            ProductShape::Box => {
                let (x, y) = ((cx - s) as i32, (cy - 0.8 * s) as i32);
                draw::fill_rect(img, x, y, (2.0 * s) as i32, (1.6 * s) as i32, body);
                draw::fill_rect(img, x, y, (2.0 * s) as i32, (0.35 * s) as i32, accent);
            }
            ProductShape::Round => {
                draw::fill_circle(img, (cx, cy), s, body);
                draw::fill_circle(img, (cx - 0.35 * s, cy - 0.35 * s), 0.25 * s, accent);
            }
            ProductShape::Bottle => {
                draw::fill_rect(
                    img,
                    (cx - 0.5 * s) as i32,
                    (cy - 0.4 * s) as i32,
                    s as i32,
                    (1.4 * s) as i32,
                    body,
                );
                draw::fill_rect(
                    img,
                    (cx - 0.2 * s) as i32,
                    (cy - s) as i32,
                    (0.4 * s) as i32,
                    (0.6 * s) as i32,
                    body,
                );
                draw::fill_rect(
                    img,
                    (cx - 0.25 * s) as i32,
                    (cy - 1.2 * s) as i32,
                    (0.5 * s) as i32,
                    (0.25 * s) as i32,
                    accent,
                );
            }
            ProductShape::Wedge => {
                let tri = [(cx, cy - s), (cx + s, cy + 0.8 * s), (cx - s, cy + 0.8 * s)];
                draw::fill_polygon(img, &tri, body);
                draw::fill_circle(img, (cx, cy + 0.2 * s), 0.3 * s, accent);
            }
        }
    }
}

/// The white or pale yellow price tag, just over half-way down the text side.
fn random_price_tag(rng: &mut ChaCha8Rng, text_x: f32, w: f32, h: f32) -> Bar {
    Bar {
        x: (text_x + rng.random_range(0.0..0.08) * w) as i32,
        y: (rng.random_range(0.52..0.62) * h) as i32,
        w: (rng.random_range(0.28..0.36) * w) as i32,
        h: (rng.random_range(0.14..0.18) * h) as i32,
        color: if rng.random_bool(0.5) { Rgb([250, 250, 245]) } else { draw::hsv(52.0, 0.35, 1.0) },
    }
}

/// The call-to-action button near the bottom, and its white label bar.
fn random_button(rng: &mut ChaCha8Rng, text_x: f32, w: f32, h: f32) -> (Bar, Bar) {
    let button = Bar {
        x: (text_x + rng.random_range(0.0..0.05) * w) as i32,
        y: (0.82 * h) as i32,
        w: (rng.random_range(0.3..0.38) * w) as i32,
        h: (0.11 * h) as i32,
        color: safe_color(rng, 0.6..0.9, 0.5..0.85),
    };
    let label = Bar {
        x: button.x + button.w / 4,
        y: button.y + button.h * 2 / 5,
        w: button.w / 2,
        h: (button.h / 4).max(2),
        color: Rgb([250, 250, 250]),
    };
    (button, label)
}

fn random_background(rng: &mut ChaCha8Rng) -> (Rgb<u8>, Rgb<u8>, GradientDir, u32) {
    let hue = rng.random_range(SAFE_HUES);
    let from = draw::hsv(hue, rng.random_range(0.05..0.45), rng.random_range(0.35..0.97));
    let to_hue = (hue + rng.random_range(-40.0..40.0)).clamp(SAFE_HUES.start, SAFE_HUES.end);
    let to = draw::hsv(to_hue, rng.random_range(0.05..0.45), rng.random_range(0.35..0.97));
    let dir = match rng.random_range(0..3) {
        0 => GradientDir::TopToBottom,
        1 => GradientDir::LeftToRight,
        _ => GradientDir::Diagonal,
    };
    (from, to, dir, rng.random_range(6..=20))
}

/// A colour whose hue keeps clear of red.
fn safe_color(rng: &mut ChaCha8Rng, sat: std::ops::Range<f32>, val: std::ops::Range<f32>) -> Rgb<u8> {
    draw::hsv(rng.random_range(SAFE_HUES), rng.random_range(sat), rng.random_range(val))
}

fn luma(c: Rgb<u8>) -> f32 {
    0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32
}

/// A few left-aligned text bars of random lengths, one under the other.
fn text_bars(
    rng: &mut ChaCha8Rng,
    (x, y): Point,
    max_w: f32,
    bar_h: f32,
    lines: std::ops::RangeInclusive<u32>,
    color: Rgb<u8>,
) -> Vec<Bar> {
    let n = rng.random_range(lines);
    (0..n)
        .map(|i| Bar {
            x: x as i32,
            y: (y + i as f32 * bar_h * 1.8) as i32,
            w: (max_w * rng.random_range(0.45..1.0)) as i32,
            h: bar_h as i32,
            color,
        })
        .collect()
}

/// Two or three dark digit groups inside the price tag.
fn digit_bars(rng: &mut ChaCha8Rng, price: &Bar) -> Vec<Bar> {
    let n = rng.random_range(2..=3);
    let gap = (price.w / 12).max(2);
    let group_w = (price.w - gap * (n + 1)) / n;
    let ink = draw::hsv(rng.random_range(SAFE_HUES), rng.random_range(0.0..0.6), rng.random_range(0.05..0.3));
    (0..n)
        .map(|i| Bar {
            x: price.x + gap + i * (group_w + gap),
            y: price.y + price.h / 4,
            w: group_w,
            h: price.h / 2,
            color: ink,
        })
        .collect()
}
