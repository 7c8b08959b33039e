//! Drawing the test picture: a moving gradient, colour bars, a sliding box
//! and the frame number in large digits, straight into an I420 buffer.

/// 3x5 pixel digits, one row per byte, most significant of 3 bits on the left.
const DIGITS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b010, 0b010, 0b010],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

pub struct Pattern {
    width: usize,
    height: usize,
    /// A luma ramp longer than a row, copied at a moving offset.
    ramp: Vec<u8>,
    buf: Vec<u8>,
}

impl Pattern {
    pub fn new(width: u32, height: u32) -> Self {
        let (width, height) = (width as usize, height as usize);
        let ramp = (0..width + 512)
            .map(|i| {
                let p = (i % 512) as i32;
                (16 + (if p < 256 { p } else { 511 - p }) * 219 / 255) as u8
            })
            .collect();
        let mut buf = vec![0u8; width * height * 3 / 2];
        // Colour bars in the chroma planes never move.
        let (cw, ch) = (width / 2, height / 2);
        let bars: [(u8, u8); 8] = [
            (128, 128),
            (16, 146),
            (166, 16),
            (54, 34),
            (202, 222),
            (90, 240),
            (240, 110),
            (128, 128),
        ];
        for y in 0..ch {
            for x in 0..cw {
                let (u, v) = bars[x * 8 / cw.max(1)];
                buf[width * height + y * cw + x] = u;
                buf[width * height + cw * ch + y * cw + x] = v;
            }
        }
        Self {
            width,
            height,
            ramp,
            buf,
        }
    }

    /// Draws frame number `n` and returns the I420 picture.
    pub fn draw(&mut self, n: u64) -> &[u8] {
        let (w, h) = (self.width, self.height);
        let shift = (n as usize * 4) % 512;
        for y in 0..h {
            let start = (shift + y / 2) % 512;
            self.buf[y * w..(y + 1) * w].copy_from_slice(&self.ramp[start..start + w]);
        }
        // A box that slides across the lower third.
        let bw = (w / 10).max(4);
        let bx = (n as usize * 8) % (w - bw + 1);
        let by = h * 2 / 3;
        for y in by..(by + bw).min(h) {
            self.buf[y * w + bx..y * w + bx + bw].fill(235);
        }
        self.draw_number(n);
        &self.buf[..]
    }

    fn draw_number(&mut self, n: u64) {
        let w = self.width;
        let scale = (self.height / 40).max(1);
        let text = format!("{n:08}");
        let (x0, y0) = (scale * 2, scale * 2);
        let box_w = (text.len() * 4 + 1) * scale;
        let box_h = 7 * scale;
        for y in y0 - scale..(y0 - scale + box_h).min(self.height) {
            let end = (x0 - scale + box_w).min(w);
            self.buf[y * w + x0 - scale..y * w + end].fill(16);
        }
        for (i, ch) in text.bytes().enumerate() {
            let glyph = DIGITS[(ch - b'0') as usize];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..3 {
                    if bits & (0b100 >> col) == 0 {
                        continue;
                    }
                    let px = x0 + (i * 4 + col) * scale;
                    let py = y0 + row * scale;
                    for dy in 0..scale {
                        let y = py + dy;
                        if y >= self.height || px + scale > w {
                            continue;
                        }
                        self.buf[y * w + px..y * w + px + scale].fill(235);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_differ_from_frame_to_frame_and_fit_small_sizes() {
        let mut p = Pattern::new(64, 48);
        let a = p.draw(1).to_vec();
        let b = p.draw(2).to_vec();
        assert_eq!(a.len(), 64 * 48 * 3 / 2);
        assert_ne!(a, b);
        let mut tiny = Pattern::new(16, 16);
        tiny.draw(12345678);
    }
}
