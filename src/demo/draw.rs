//! Drawing primitives for the demo ads: filled rectangles, circles, polygons (stars), thick lines
//! and banded gradients over an `RgbImage`, with HSV colours.
//!
//! Geometry uses only IEEE `+ - * / sqrt` (sine and cosine come from a short series here, not the
//! platform's libm), so the same seed gives the same pixels on every machine and the committed
//! dataset can be checked byte for byte. Shapes are hard-edged: a pixel is painted when its centre
//! is inside the shape.

use image::{Rgb, RgbImage};

/// A point in pixel coordinates (x right, y down; pixel centres at `i + 0.5`).
pub type Point = (f32, f32);

/// An sRGB colour from hue (degrees, any value, taken modulo 360), saturation and value in [0, 1].
pub fn hsv(hue_deg: f32, saturation: f32, value: f32) -> Rgb<u8> {
    let h = hue_deg.rem_euclid(360.0) / 60.0;
    let c = value * saturation;
    let x = c * (1.0 - ((h % 2.0) - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = value - c;
    let byte = |v: f32| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    Rgb([byte(r), byte(g), byte(b)])
}

/// Fill the rectangle `[x, x + w) × [y, y + h)`, clipped to the image.
pub fn fill_rect(img: &mut RgbImage, x: i32, y: i32, w: i32, h: i32, color: Rgb<u8>) {
    let (x0, x1) = clip(x, x + w, img.width());
    let (y0, y1) = clip(y, y + h, img.height());
    for py in y0..y1 {
        for px in x0..x1 {
            img.put_pixel(px, py, color);
        }
    }
}

/// Fill the disc of radius `r` around `centre`.
pub fn fill_circle(img: &mut RgbImage, centre: Point, r: f32, color: Rgb<u8>) {
    let (cx, cy) = centre;
    let (x0, x1) = clip((cx - r).floor() as i32, (cx + r).ceil() as i32 + 1, img.width());
    let (y0, y1) = clip((cy - r).floor() as i32, (cy + r).ceil() as i32 + 1, img.height());
    for py in y0..y1 {
        for px in x0..x1 {
            let dx = px as f32 + 0.5 - cx;
            let dy = py as f32 + 0.5 - cy;
            if dx * dx + dy * dy <= r * r {
                img.put_pixel(px, py, color);
            }
        }
    }
}

/// Fill a simple polygon (convex or not) by scanlines through pixel centres, even-odd rule.
pub fn fill_polygon(img: &mut RgbImage, points: &[Point], color: Rgb<u8>) {
    if points.len() < 3 {
        return;
    }
    let y_min = points.iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
    let y_max = points.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
    let (y0, y1) = clip(y_min.floor() as i32, y_max.ceil() as i32 + 1, img.height());
    let mut crossings = Vec::with_capacity(points.len());
    for py in y0..y1 {
        let sy = py as f32 + 0.5;
        crossings.clear();
        for (i, &(ax, ay)) in points.iter().enumerate() {
            let (bx, by) = points[(i + 1) % points.len()];
            // Half-open in y so a vertex on the scanline counts once.
            if (ay <= sy) != (by <= sy) {
                crossings.push(ax + (sy - ay) / (by - ay) * (bx - ax));
            }
        }
        crossings.sort_by(f32::total_cmp);
        for span in crossings.chunks_exact(2) {
            let start = (span[0] - 0.5).ceil() as i32;
            let end = (span[1] - 0.5).floor() as i32 + 1;
            fill_rect(img, start, py as i32, end - start, 1, color);
        }
    }
}

/// Vertices of a star with `points` tips, tip radius `outer` and notch radius `inner`, turned by
/// `rotation` (in turns: 1.0 is a full circle).
pub fn star_points(centre: Point, outer: f32, inner: f32, points: u32, rotation: f32) -> Vec<Point> {
    (0..2 * points)
        .map(|k| {
            let radius = if k % 2 == 0 { outer } else { inner };
            let (sin, cos) = sin_cos_turns(rotation + k as f32 / (2 * points) as f32);
            (centre.0 + radius * cos, centre.1 + radius * sin)
        })
        .collect()
}

/// Fill a straight stroke of the given `thickness` from `a` to `b` (square ends).
pub fn thick_line(img: &mut RgbImage, a: Point, b: Point, thickness: f32, color: Rgb<u8>) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len = (dx * dx + dy * dy).sqrt();
    if len == 0.0 {
        return;
    }
    let (nx, ny) = (-dy / len * thickness / 2.0, dx / len * thickness / 2.0);
    let quad = [(a.0 + nx, a.1 + ny), (b.0 + nx, b.1 + ny), (b.0 - nx, b.1 - ny), (a.0 - nx, a.1 - ny)];
    fill_polygon(img, &quad, color);
}

/// Which way a gradient runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradientDir {
    TopToBottom,
    LeftToRight,
    Diagonal,
}

/// Paint the whole image with `bands` flat stripes blending from `from` to `to`.
pub fn fill_banded_gradient(img: &mut RgbImage, from: Rgb<u8>, to: Rgb<u8>, dir: GradientDir, bands: u32) {
    let (w, h) = (img.width(), img.height());
    let span = match dir {
        GradientDir::TopToBottom => h,
        GradientDir::LeftToRight => w,
        GradientDir::Diagonal => w + h,
    };
    for (x, y, pixel) in img.enumerate_pixels_mut() {
        let along = match dir {
            GradientDir::TopToBottom => y,
            GradientDir::LeftToRight => x,
            GradientDir::Diagonal => x + y,
        };
        let band = along * bands / span;
        let t = band as f32 / (bands - 1).max(1) as f32;
        *pixel = mix(from, to, t);
    }
}

/// Linear blend of two colours: `t = 0` gives `a`, `t = 1` gives `b`.
pub fn mix(a: Rgb<u8>, b: Rgb<u8>, t: f32) -> Rgb<u8> {
    let channel = |i: usize| (a[i] as f32 + (b[i] as f32 - a[i] as f32) * t).round() as u8;
    Rgb([channel(0), channel(1), channel(2)])
}

/// Clip the half-open range `[lo, hi)` to `[0, limit)`.
fn clip(lo: i32, hi: i32, limit: u32) -> (u32, u32) {
    let limit = limit as i32;
    (lo.clamp(0, limit) as u32, hi.clamp(0, limit) as u32)
}

/// Sine and cosine of an angle given in turns, from Taylor series on [-π/4, π/4] after octant
/// reduction: plain arithmetic, hence the same bits on every platform (error below 1e-9).
fn sin_cos_turns(turns: f32) -> (f32, f32) {
    let t = f64::from(turns).rem_euclid(1.0);
    let quarter = (t * 4.0).round();
    let x = (t - quarter / 4.0) * std::f64::consts::TAU;
    let x2 = x * x;
    let (mut sin, mut cos, mut term_s, mut term_c) = (x, 1.0, x, 1.0);
    for n in 1..=8 {
        let n = f64::from(n);
        term_s *= -x2 / ((2.0 * n) * (2.0 * n + 1.0));
        term_c *= -x2 / ((2.0 * n - 1.0) * (2.0 * n));
        sin += term_s;
        cos += term_c;
    }
    let (s, c) = match quarter as i64 % 4 {
        0 => (sin, cos),
        1 => (cos, -sin),
        2 => (-sin, -cos),
        _ => (-cos, sin),
    };
    (s as f32, c as f32)
}

/// A horizontal bar standing in for a line of text (or a digit group).
#[derive(Debug, Clone, Copy)]
pub struct Bar {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
    pub color: Rgb<u8>,
}

impl Bar {
    pub fn draw(&self, img: &mut RgbImage) {
        fill_rect(img, self.x, self.y, self.w, self.h, self.color);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: Rgb<u8> = Rgb([255, 0, 0]);

    fn count(img: &RgbImage, color: Rgb<u8>) -> usize {
        img.pixels().filter(|p| **p == color).count()
    }

    #[test]
    fn hsv_primaries_and_greys() {
        assert_eq!(hsv(0.0, 1.0, 1.0), Rgb([255, 0, 0]));
        assert_eq!(hsv(120.0, 1.0, 1.0), Rgb([0, 255, 0]));
        assert_eq!(hsv(240.0, 1.0, 1.0), Rgb([0, 0, 255]));
        assert_eq!(hsv(-360.0, 1.0, 1.0), Rgb([255, 0, 0]));
        assert_eq!(hsv(60.0, 1.0, 1.0), Rgb([255, 255, 0]));
        assert_eq!(hsv(200.0, 0.0, 0.5), Rgb([128, 128, 128]));
    }

    #[test]
    fn rect_is_clipped_to_the_image() {
        let mut img = RgbImage::new(10, 8);
        fill_rect(&mut img, -3, 6, 5, 10, RED);
        // x in [0, 2), y in [6, 8): 2 × 2 pixels.
        assert_eq!(count(&img, RED), 4);
    }

    #[test]
    fn circle_area_is_close_to_pi_r_squared() {
        let mut img = RgbImage::new(64, 64);
        fill_circle(&mut img, (32.0, 32.0), 20.0, RED);
        let area = std::f32::consts::PI * 400.0;
        assert!((count(&img, RED) as f32 - area).abs() < 0.02 * area, "{}", count(&img, RED));
    }

    #[test]
    fn polygon_fills_a_square_exactly() {
        let mut img = RgbImage::new(10, 10);
        fill_polygon(&mut img, &[(2.0, 2.0), (6.0, 2.0), (6.0, 5.0), (2.0, 5.0)], RED);
        assert_eq!(count(&img, RED), 4 * 3);
        assert_eq!(*img.get_pixel(2, 2), RED);
        assert_eq!(*img.get_pixel(5, 4), RED);
        assert_ne!(*img.get_pixel(6, 4), RED);
    }

    #[test]
    fn star_area_lies_between_its_inner_and_outer_discs() {
        let mut img = RgbImage::new(64, 64);
        fill_polygon(&mut img, &star_points((32.0, 32.0), 24.0, 12.0, 12, 0.1), RED);
        let n = count(&img, RED) as f32;
        assert!(n > std::f32::consts::PI * 144.0 && n < std::f32::consts::PI * 576.0, "{n}");
        assert_eq!(*img.get_pixel(32, 32), RED);
        assert_ne!(*img.get_pixel(2, 2), RED);
    }

    #[test]
    fn series_sine_and_cosine_match_the_library() {
        for i in -40..=40 {
            let turns = i as f32 / 37.0;
            let (s, c) = sin_cos_turns(turns);
            let angle = f64::from(turns) * std::f64::consts::TAU;
            assert!((f64::from(s) - angle.sin()).abs() < 1e-6, "sin at {turns}");
            assert!((f64::from(c) - angle.cos()).abs() < 1e-6, "cos at {turns}");
        }
    }

    #[test]
    fn thick_line_covers_its_length_times_thickness() {
        let mut img = RgbImage::new(40, 40);
        thick_line(&mut img, (5.0, 20.0), (35.0, 20.0), 4.0, RED);
        assert_eq!(count(&img, RED), 30 * 4);
    }

    #[test]
    fn banded_gradient_runs_from_one_colour_to_the_other() {
        let mut img = RgbImage::new(8, 4);
        fill_banded_gradient(&mut img, Rgb([0, 0, 0]), Rgb([255, 255, 255]), GradientDir::LeftToRight, 4);
        assert_eq!(*img.get_pixel(0, 0), Rgb([0, 0, 0]));
        assert_eq!(*img.get_pixel(2, 3), Rgb([85, 85, 85]));
        assert_eq!(*img.get_pixel(7, 1), Rgb([255, 255, 255]));
    }
}
