//! The GIF of a video: one 256-colour palette for the whole video (NeuQuant on sampled pixels), a lookup of the
//! nearest palette entry, and each frame after the first encoded as only the rectangle that changed.

use std::path::Path;

use anyhow::Context;

use super::{EXACT_COLOURS, VideoFrame};

/// Writes an animated GIF: one palette for the whole video (so still parts stay still) and, after the first
/// frame, only the rectangle that changed (the table and the floor are encoded once).
pub(super) fn write_gif(path: &Path, frames: &[VideoFrame]) -> anyhow::Result<()> {
    let (w, h) = frames[0].image.dimensions();
    let (gw, gh) = (
        u16::try_from(w).context("frame too wide for a GIF")?,
        u16::try_from(h).context("frame too tall for a GIF")?,
    );
    let palette = video_palette(frames);
    let lookup = nearest_colour_table(&palette);
    let index = |image: &image::RgbImage| -> Vec<u8> {
        image
            .pixels()
            .map(|p| lookup[colour_key(p.0)])
            .collect::<Vec<u8>>()
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = frames.len().div_ceil(threads);
    let indexed: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let handles: Vec<_> = frames
            .chunks(per_thread)
            .map(|chunk| scope.spawn(|| chunk.iter().map(|f| index(&f.image)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("indexing threads do not panic"))
            .collect()
    });

    qamlab_headless::files::write_atomically(path, |file| {
        encode_gif(file, (gw, gh), &palette, &indexed, frames)
    })
}

/// Encodes the palette-indexed frames as an endlessly repeating GIF, each frame only the rectangle that changed.
fn encode_gif(
    file: &mut std::fs::File,
    (gw, gh): (u16, u16),
    palette: &[u8],
    indexed: &[Vec<u8>],
    frames: &[VideoFrame],
) -> anyhow::Result<()> {
    let (w, h) = (u32::from(gw), u32::from(gh));
    let mut encoder = gif::Encoder::new(std::io::BufWriter::new(file), gw, gh, palette)?;
    encoder.set_repeat(gif::Repeat::Infinite)?;
    let (wu, hu) = (w as usize, h as usize);
    for (i, (pixels, source)) in indexed.iter().zip(frames).enumerate() {
        // The rectangle differing from the previous frame (all of the first; one pixel if nothing moved).
        let (x0, y0, x1, y1) = match i.checked_sub(1).map(|j| &indexed[j]) {
            None => (0, 0, wu, hu),
            Some(previous) => {
                let (mut x0, mut y0, mut x1, mut y1) = (wu, hu, 0, 0);
                for y in 0..hu {
                    let row = y * wu;
                    for x in 0..wu {
                        if pixels[row + x] != previous[row + x] {
                            x0 = x0.min(x);
                            y0 = y0.min(y);
                            x1 = x1.max(x + 1);
                            y1 = y1.max(y + 1);
                        }
                    }
                }
                if x1 == 0 {
                    (0, 0, 1, 1)
                } else {
                    (x0, y0, x1, y1)
                }
            }
        };
        let mut buffer = Vec::with_capacity((x1 - x0) * (y1 - y0));
        for y in y0..y1 {
            buffer.extend_from_slice(&pixels[y * wu + x0..y * wu + x1]);
        }
        let frame = gif::Frame {
            delay: source.delay,
            dispose: gif::DisposalMethod::Keep,
            left: x0 as u16,
            top: y0 as u16,
            width: (x1 - x0) as u16,
            height: (y1 - y0) as u16,
            buffer: std::borrow::Cow::Owned(buffer),
            ..gif::Frame::default()
        };
        encoder.write_frame(&frame)?;
    }
    let mut writer = encoder.into_inner()?;
    std::io::Write::flush(&mut writer)?;
    Ok(())
}

/// A 256-colour palette (RGB triples) for the whole video: NeuQuant on pixels sampled from every frame, with the
/// colours that must be exact (the borders, the caption's) weighted in so that each draws an entry to it, which is
/// then set to it exactly.
fn video_palette(frames: &[VideoFrame]) -> Vec<u8> {
    const SAMPLE_PIXELS: usize = 1 << 19;
    // NeuQuant learns in proportion to its sample: a short video's pixels are repeated up to this many.
    const MIN_SAMPLE_PIXELS: usize = 1 << 16;
    const ROW: usize = 512;
    let total: usize = frames.iter().map(|f| f.image.as_raw().len() / 3).sum();
    let stride = total.div_ceil(SAMPLE_PIXELS).max(1);
    let mut sample: Vec<u8> = Vec::with_capacity(3 * 2 * SAMPLE_PIXELS);
    let mut k = 0usize;
    for frame in frames {
        for p in frame.image.as_raw().chunks_exact(3) {
            if k.is_multiple_of(stride) {
                sample.extend_from_slice(p);
            }
            k += 1;
        }
    }
    let picture = sample.len();
    while picture > 0 && sample.len() < 3 * MIN_SAMPLE_PIXELS {
        sample.extend_from_within(..picture);
    }
    // Whole rows, so that the exact colours' rows below are whole too.
    sample.truncate(sample.len() / (3 * ROW) * 3 * ROW);
    // A row of each per 32 of the picture's, 8 at most (3% of the sample): enough to draw an entry to each, too
    // few to take many from the picture.
    let exact_rows = (sample.len() / (3 * ROW) / 32).clamp(1, 8);
    for colour in EXACT_COLOURS {
        for _ in 0..ROW * exact_rows {
            sample.extend_from_slice(&colour);
        }
    }
    let rows = sample.len() / (3 * ROW);
    let frame = gif::Frame::from_rgb_speed(ROW as u16, rows as u16, &sample, 10);
    let mut palette = frame.palette.unwrap_or_default();
    palette.resize(256 * 3, 0);
    set_exact_colours(&mut palette);
    palette
}

/// Sets the entry nearest each of [`EXACT_COLOURS`] (one not already set) to that colour exactly.
fn set_exact_colours(palette: &mut [u8]) {
    let mut taken = [false; 256];
    for colour in EXACT_COLOURS {
        let distance = |entry: &[u8]| {
            (0..3)
                .map(|c| (i32::from(entry[c]) - i32::from(colour[c])).pow(2))
                .sum::<i32>()
        };
        let nearest = palette
            .chunks_exact(3)
            .enumerate()
            .filter(|(i, _)| !taken[*i])
            .min_by_key(|(_, entry)| distance(entry))
            .map(|(i, _)| i);
        if let Some(i) = nearest {
            taken[i] = true;
            palette[3 * i..3 * i + 3].copy_from_slice(&colour);
        }
    }
}

/// Index of a colour in [`nearest_colour_table`]: 5 bits per channel.
fn colour_key([r, g, b]: [u8; 3]) -> usize {
    (usize::from(r >> 3) << 10) | (usize::from(g >> 3) << 5) | usize::from(b >> 3)
}

/// The nearest palette entry of every 15-bit colour; the bins of [`EXACT_COLOURS`] go to their own entries.
fn nearest_colour_table(palette: &[u8]) -> Vec<u8> {
    let entries: Vec<[i32; 3]> = palette
        .chunks_exact(3)
        .map(|c| [i32::from(c[0]), i32::from(c[1]), i32::from(c[2])])
        .collect();
    let mut table: Vec<u8> = (0..1usize << 15)
        .map(|key| {
            let centre = [
                ((key >> 10) as i32) << 3 | 4,
                (((key >> 5) & 31) as i32) << 3 | 4,
                ((key & 31) as i32) << 3 | 4,
            ];
            let distance = |c: &[i32; 3]| {
                (0..3)
                    .map(|i| (c[i] - centre[i]) * (c[i] - centre[i]))
                    .sum::<i32>()
            };
            entries
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| distance(c))
                .map_or(0, |(i, _)| i as u8)
        })
        .collect();
    // Measured from its bin's centre another entry may be nearer: the colour itself is what counts.
    for colour in EXACT_COLOURS {
        if let Some(i) = palette.chunks_exact(3).position(|entry| entry == colour) {
            table[colour_key(colour)] = i as u8;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::super::caption::{draw_caption, strip_height};
    use super::super::tests::picture;
    use super::super::{HOLD_CENTISECONDS, Video, VideoOutput, draw_border};
    use super::*;

    /// A frame of the round trip: the picture with its square at `x`, captioned, and the last one bordered.
    fn captioned(x: u32) -> image::RgbImage {
        let mut image = picture(x);
        let text = if x == 30 {
            "success at 3"
        } else {
            "step 1/200"
        };
        draw_caption(&mut image, text, None).unwrap();
        if x == 30 {
            draw_border(&mut image, true);
        }
        image
    }

    #[test]
    fn a_gif_round_trips_close_to_its_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.gif");
        let mut frames: Vec<VideoFrame> = [4, 12, 12, 30]
            .into_iter()
            .map(|x| VideoFrame {
                image: captioned(x),
                delay: 5,
            })
            .collect();
        frames[3].delay = HOLD_CENTISECONDS;
        VideoOutput::Gif(path.clone())
            .write(&Video {
                frames,
                successes: vec![true],
            })
            .unwrap();

        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::RGBA);
        let mut decoder = options
            .read_info(std::fs::File::open(&path).unwrap())
            .unwrap();
        assert_eq!((decoder.width(), decoder.height()), (64, 48));
        let mut canvas = vec![0u8; 64 * 48 * 4];
        let mut decoded = Vec::new();
        while let Some(frame) = decoder.read_next_frame().unwrap() {
            let (l, t, w) = (
                frame.left as usize,
                frame.top as usize,
                frame.width as usize,
            );
            for (i, px) in frame.buffer.chunks_exact(4).enumerate() {
                let at = ((t + i / w) * 64 + l + i % w) * 4;
                canvas[at..at + 4].copy_from_slice(px);
            }
            decoded.push((canvas.clone(), frame.delay, frame.width));
        }
        assert_eq!(decoded.len(), 4);
        assert_eq!(decoded[2].2, 1, "an unchanged frame is one pixel");
        assert_eq!(decoded[3].1, HOLD_CENTISECONDS);
        let mut exact = 0;
        for ((pixels, _, _), x) in decoded.iter().zip([4, 12, 12, 30]) {
            let expected = captioned(x);
            for ((got, want), y) in pixels
                .chunks_exact(4)
                .zip(expected.pixels())
                .zip((0..).map(|i| i / 64))
            {
                // The border's and the caption's colours come back exactly, the picture nearly; the text's
                // anti-aliased edges may come back a little off.
                if EXACT_COLOURS.contains(&want.0) {
                    assert_eq!(got[..3], want.0, "frame with the square at {x}");
                    exact += 1;
                } else if y < strip_height(48) {
                    continue;
                }
                for c in 0..3 {
                    assert!(
                        got[c].abs_diff(want.0[c]) <= 24,
                        "frame with the square at {x}: {got:?} for {want:?}"
                    );
                }
            }
        }
        assert!(exact > 64 * 10, "only {exact} pixels of the exact colours");
    }
}
