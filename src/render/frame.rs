//! An RGB frame and the few drawing primitives the CartPole view and the episode fades need.

/// An 8-bit RGB image, rows top to bottom, `3 * width * height` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Frame {
    /// A black frame.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            rgb: vec![0; 3 * width as usize * height as usize],
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixels, row-major RGB.
    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }

    /// The pixels, mutable.
    pub fn rgb_mut(&mut self) -> &mut [u8] {
        &mut self.rgb
    }

    /// Fills the frame with one colour.
    pub fn fill(&mut self, color: [u8; 3]) {
        for px in self.rgb.chunks_exact_mut(3) {
            px.copy_from_slice(&color);
        }
    }

    /// Sets one pixel; coordinates outside the frame are ignored.
    pub fn put(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return;
        }
        let i = 3 * (y as usize * self.width as usize + x as usize);
        self.rgb[i..i + 3].copy_from_slice(&color);
    }

    /// Fills the convex polygon `points` (pixel coordinates, y down): a pixel is inside if
    /// its centre is on the inner side of every edge.
    pub fn fill_convex(&mut self, points: &[(f64, f64)], color: [u8; 3]) {
        if points.len() < 3 {
            return;
        }
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in points {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        // Orientation of the polygon, so either winding works.
        let area: f64 = (0..points.len())
            .map(|i| {
                let (a, b) = (points[i], points[(i + 1) % points.len()]);
                a.0 * b.1 - b.0 * a.1
            })
            .sum();
        let sign = if area >= 0.0 { 1.0 } else { -1.0 };
        let ys = (y0.floor().max(0.0) as i64)..=(y1.ceil().min(self.height as f64 - 1.0) as i64);
        for y in ys {
            let xs = (x0.floor().max(0.0) as i64)..=(x1.ceil().min(self.width as f64 - 1.0) as i64);
            for x in xs {
                let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
                let inside = (0..points.len()).all(|i| {
                    let (a, b) = (points[i], points[(i + 1) % points.len()]);
                    sign * ((b.0 - a.0) * (py - a.1) - (b.1 - a.1) * (px - a.0)) >= 0.0
                });
                if inside {
                    self.put(x, y, color);
                }
            }
        }
    }

    /// Fills a disc.
    pub fn fill_circle(&mut self, cx: f64, cy: f64, r: f64, color: [u8; 3]) {
        let ys = (cy - r).floor() as i64..=(cy + r).ceil() as i64;
        for y in ys {
            for x in (cx - r).floor() as i64..=(cx + r).ceil() as i64 {
                let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                if dx * dx + dy * dy <= r * r {
                    self.put(x, y, color);
                }
            }
        }
    }

    /// Multiplies every channel by `factor` (in `[0, 1]`): the episode-boundary fade.
    pub fn darken(&mut self, factor: f64) {
        let f = factor.clamp(0.0, 1.0);
        for c in &mut self.rgb {
            *c = (*c as f64 * f).round() as u8;
        }
    }

    /// Mean of all channels (0 = black, 255 = white).
    pub fn mean(&self) -> f64 {
        self.rgb.iter().map(|&c| c as f64).sum::<f64>() / self.rgb.len().max(1) as f64
    }
}
