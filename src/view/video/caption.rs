//! The caption burned into the top of every frame: which episode and step the frame shows and, on an episode's
//! held last frame, how it ended, in words (the border's colour is not the only sign: colour-blind viewers and
//! greyscale prints read the word). Light text on a dark strip, drawn with plotters' text rendering and the
//! built-in font the plots use, so no font library or font file is needed on the machine.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::BORDER;

/// The strip's background: dark, over the scene's dark backdrop at the top of the picture.
pub(super) const BACKGROUND: [u8; 3] = [24, 24, 28];
/// The caption's text.
pub(super) const TEXT: [u8; 3] = [240, 240, 240];
/// The family name the caption's font is registered under with plotters (its own, apart from the plots').
const FONT: &str = "qamlab-video-caption";

/// What a frame shows of its episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Moment {
    /// Under way, after this many control steps.
    Running(u32),
    /// The episode's held last frame: the goal held after this many control steps.
    Success(u32),
    /// The episode's held last frame: time ran out.
    TimeLimit,
}

/// Where a frame stands: its episode (from 0) of how many, and the moment in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Caption {
    /// The episode, counted from 0.
    pub episode: usize,
    /// Episodes in the video.
    pub episodes: usize,
    /// Control steps before the time limit.
    pub episode_length: u32,
    /// Under way, or how it ended.
    pub moment: Moment,
}

impl Caption {
    /// The caption's main field: "episode 1/2 · step 37/200", "episode 1/2 · success at step 37" or
    /// "episode 1/2 · time limit (200 steps)".
    pub(super) fn text(&self) -> String {
        let moment = match self.moment {
            Moment::Running(step) => format!("step {step}/{}", self.episode_length),
            Moment::Success(step) => format!("success at step {step}"),
            Moment::TimeLimit => format!("time limit ({} steps)", self.episode_length),
        };
        format!("episode {}/{} · {moment}", self.episode + 1, self.episodes)
    }
}

/// Height of the caption's strip in a picture `height` pixels tall: a border's width (a held frame's border
/// covers it) above a band for the text.
pub(super) fn strip_height(height: u32) -> u32 {
    (BORDER + band_height(height)).min(height)
}

/// Height of the band the text is centred in.
fn band_height(height: u32) -> u32 {
    font_pixels(height) * 3 / 2
}

/// The font's size: 16 pixels in a 480x360 frame, never below 8.
fn font_pixels(height: u32) -> u32 {
    (height / 22).max(8)
}

/// Where the text is anchored (plotters puts its baseline half the font's size below): capitals (0.63 of the
/// size tall in this font) centred a little below the strip's middle, as far from a held frame's border above as
/// from the scene below.
fn text_top(height: u32) -> i32 {
    let size = font_pixels(height) as i32;
    let middle = (strip_height(height) as i32 + BORDER as i32 / 2) / 2;
    let baseline = middle + size * 63 / 200;
    baseline - size / 2
}

/// Registers the built-in font with plotters, once per process.
fn register_font() -> anyhow::Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = REGISTERED.get_or_init(|| {
        // A monospace font of regular weight: legible light-on-dark at 16 pixels, where a light one blurs.
        plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::HACK_REGULAR)
            .is_ok()
    });
    anyhow::ensure!(*ok, "the video caption's built-in font would not load");
    Ok(())
}

/// The side field, "task · agent", that fits on the line beside `main` in a picture of `width` x `height` pixels:
/// whole, or with the task's name cut short ("a-long-ta… · qam"), keeping at least its first few characters; none
/// where even those do not fit. A video asks once, for its widest caption, so that the side field is on every
/// frame or none.
pub(super) fn side_that_fits(
    width: u32,
    height: u32,
    main: &str,
    task: &str,
    agent: &str,
) -> anyhow::Result<Option<String>> {
    /// The fewest characters of the task's name worth showing.
    const SHORTEST: usize = 4;
    let whole = format!("{task} · {agent}");
    if side_fits(width, height, main, &whole)? {
        return Ok(Some(whole));
    }
    let chars: Vec<char> = task.chars().collect();
    for keep in (SHORTEST..chars.len()).rev() {
        let cut: String = chars[..keep].iter().collect();
        let side = format!("{}… · {agent}", cut.trim_end());
        if side_fits(width, height, main, &side)? {
            return Ok(Some(side));
        }
    }
    Ok(None)
}

/// Whether `side` fits on the line beside `main` in a picture of `width` x `height` pixels.
fn side_fits(width: u32, height: u32, main: &str, side: &str) -> anyhow::Result<bool> {
    register_font()?;
    let font = caption_font(height);
    let text_width = |text: &str| -> anyhow::Result<u32> {
        let ((x0, _), (x1, _)) = font.font.layout_box(text)?;
        Ok(u32::try_from(x1 - x0).unwrap_or(0))
    };
    let used = 2 * padding(height) + text_width(main)? + font_pixels(height) + text_width(side)?;
    Ok(!side.is_empty() && used <= width)
}

/// The caption's text style.
fn caption_font(height: u32) -> TextStyle<'static> {
    let [r, g, b] = TEXT;
    (FONT, f64::from(font_pixels(height)))
        .into_font()
        .color(&RGBColor(r, g, b))
}

/// Space left and right of the text: clear of a held frame's border.
fn padding(height: u32) -> u32 {
    BORDER + font_pixels(height) / 4
}

/// Draws the caption's strip over the top rows of `image`: `main` at the left and `side` (the task and agent),
/// if given, at the right.
pub(super) fn draw_caption(
    image: &mut image::RgbImage,
    main: &str,
    side: Option<&str>,
) -> anyhow::Result<()> {
    register_font()?;
    let (w, h) = image.dimensions();
    let strip = strip_height(h);
    let mut rgb = vec![0u8; w as usize * strip as usize * 3];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, (w, strip)).into_drawing_area();
        let [r, g, b] = BACKGROUND;
        area.fill(&RGBColor(r, g, b))?;
        let font = caption_font(h);
        let (pad, top) = (padding(h) as i32, text_top(h));
        let left = font.pos(Pos::new(HPos::Left, VPos::Top));
        area.draw_text(main, &left, (pad, top))?;
        if let Some(side) = side {
            let right = font.pos(Pos::new(HPos::Right, VPos::Top));
            area.draw_text(side, &right, (w as i32 - pad, top))?;
        }
        area.present()?;
    }
    let row = w as usize * 3;
    image.as_mut()[..row * strip as usize].copy_from_slice(&rgb);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::picture;
    use super::*;

    fn caption(moment: Moment) -> Caption {
        Caption {
            episode: 0,
            episodes: 2,
            episode_length: 200,
            moment,
        }
    }

    #[test]
    fn the_caption_says_the_episode_the_step_and_how_it_ended_in_words() {
        assert_eq!(
            caption(Moment::Running(37)).text(),
            "episode 1/2 · step 37/200"
        );
        assert_eq!(
            caption(Moment::Success(37)).text(),
            "episode 1/2 · success at step 37"
        );
        assert_eq!(
            caption(Moment::TimeLimit).text(),
            "episode 1/2 · time limit (200 steps)"
        );
    }

    /// Pixels of the strip's rows that are the background, and that are bright (text).
    fn strip_pixels(image: &image::RgbImage) -> (usize, usize) {
        let strip = strip_height(image.height());
        let rows = image.enumerate_pixels().filter(|(_, y, _)| *y < strip);
        rows.fold((0, 0), |(bg, text), (_, _, p)| {
            (
                bg + usize::from(p.0 == BACKGROUND),
                text + usize::from(p.0.iter().all(|&c| c > 180)),
            )
        })
    }

    #[test]
    fn a_captioned_frame_has_a_dark_strip_with_light_text_over_the_top_rows_only() {
        let mut image = image::RgbImage::from_pixel(480, 360, image::Rgb([90, 130, 170]));
        draw_caption(
            &mut image,
            &caption(Moment::Running(37)).text(),
            Some("cube-single · qam"),
        )
        .unwrap();
        let strip = strip_height(360);
        assert!((20..=40).contains(&strip), "a strip of {strip} rows");
        let (bg, text) = strip_pixels(&image);
        let area = 480 * strip as usize;
        assert!(
            bg * 10 > area * 7,
            "{bg} of {area} pixels are the background"
        );
        assert!(text > 200, "only {text} text pixels");
        // Text on both sides: the main field at the left, the task and agent at the right.
        let bright_in = |xs: std::ops::Range<u32>| {
            (0..strip)
                .flat_map(|y| xs.clone().map(move |x| (x, y)))
                .filter(|&(x, y)| image.get_pixel(x, y).0.iter().all(|&c| c > 180))
                .count()
        };
        assert!(bright_in(0..120) > 50 && bright_in(360..480) > 50);
        // Below the strip the picture is untouched.
        assert!(
            image
                .enumerate_pixels()
                .filter(|(_, y, _)| *y >= strip)
                .all(|(_, _, p)| p.0 == [90, 130, 170])
        );
    }

    #[test]
    fn the_text_sits_in_the_strip_clear_of_a_held_frames_border() {
        let mut image = image::RgbImage::from_pixel(480, 360, image::Rgb([90, 130, 170]));
        draw_caption(&mut image, "EPISODE 1/2 · HELD", Some("cube-single · qam")).unwrap();
        let inked: Vec<u32> = (0..strip_height(360))
            .filter(|&y| (0..480).any(|x| image.get_pixel(x, y).0 != BACKGROUND))
            .collect();
        let (first, last) = (inked[0], *inked.last().unwrap());
        let strip = strip_height(360);
        eprintln!("ink rows {first}..={last} of a {strip}-row strip");
        assert!(first >= BORDER + 2, "ink from row {first}");
        assert!(last + 3 <= strip, "ink down to row {last} of {strip}");
        // Capitals centred: as much room above them (below the border) as below them.
        let above = first - BORDER;
        let below = strip - 1 - last;
        assert!(
            above.abs_diff(below) <= 3,
            "{above} rows above, {below} below"
        );
    }

    #[test]
    fn the_task_and_agent_are_shown_where_they_fit_beside_the_widest_caption() {
        let widest = caption(Moment::TimeLimit).text();
        assert!(side_fits(480, 360, &widest, "cube-single · qam").unwrap());
        let long = "a task with a very long name indeed · qam";
        assert!(!side_fits(480, 360, &widest, long).unwrap());
        assert!(!side_fits(480, 360, &widest, "").unwrap());
        // A long task name is cut short to fit, the agent kept whole; a frame too narrow for even its start has none.
        let whole = side_that_fits(480, 360, &widest, "cube-single", "qam").unwrap();
        assert_eq!(whole.as_deref(), Some("cube-single · qam"));
        let cut = side_that_fits(
            480,
            360,
            &widest,
            "a task with a very long name indeed",
            "qam",
        )
        .unwrap()
        .expect("the start of the name fits");
        assert!(
            cut.starts_with("a task") && cut.ends_with("… · qam"),
            "{cut}"
        );
        assert!(side_fits(480, 360, &widest, &cut).unwrap());
        assert_eq!(
            side_that_fits(200, 150, &widest, "cube-single", "qam").unwrap(),
            None
        );
        // A small frame still gets its caption, cut at its edge.
        let mut small = picture(10);
        draw_caption(&mut small, &caption(Moment::Running(3)).text(), None).unwrap();
        let (bg, text) = strip_pixels(&small);
        assert!(bg > 0 && text > 0, "{bg} background and {text} text pixels");
    }

    #[test]
    fn the_held_frames_of_a_success_and_a_failure_differ_in_their_caption() {
        let base = image::RgbImage::from_fn(480, 360, |x, y| {
            image::Rgb([(x / 2) as u8, (y / 2) as u8, 90])
        });
        let (mut success, mut failure) = (base.clone(), base.clone());
        draw_caption(&mut success, &caption(Moment::Success(37)).text(), None).unwrap();
        draw_caption(&mut failure, &caption(Moment::TimeLimit).text(), None).unwrap();
        let strip = strip_height(base.height());
        let differing = |a: &image::RgbImage, b: &image::RgbImage, rows: std::ops::Range<u32>| {
            rows.flat_map(|y| (0..a.width()).map(move |x| (x, y)))
                .filter(|&(x, y)| a.get_pixel(x, y) != b.get_pixel(x, y))
                .count()
        };
        assert!(differing(&success, &failure, 0..strip) > 20);
        assert_eq!(differing(&success, &failure, strip..base.height()), 0);
    }
}
