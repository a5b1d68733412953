//! `--screenshot PATH --frames N`: after N frames, save the window as a PNG and exit (with an error exit if the
//! image cannot be saved or never arrives). The frames run on a fixed clock of [`SCREENSHOT_FRAME`] each, and
//! the envs pause at frame N, so the same command shows the same step however fast the machine draws. With
//! `--train`, the N frames start when training has ended: the picture shows the trained agent and its whole
//! curves, not whatever the trainer had sent when frame N came.

use std::path::PathBuf;
use std::time::Duration;

use bevy::diagnostic::FrameCount;
use bevy::image::TextureFormatPixelInfo;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::time::TimeUpdateStrategy;

use super::stepping::SimClock;

/// The time each frame of a screenshot run stands for: at 1x speed and the built-in tasks' 20 Hz control, two
/// control steps a frame.
pub const SCREENSHOT_FRAME: Duration = Duration::from_millis(100);

/// Frames to wait for a requested screenshot before giving up.
const PATIENCE_FRAMES: u32 = 600;
/// Further frames to try while captures show an empty 3D view (the first frames, before the render pipelines are
/// compiled, show only the clear colour there).
const BLANK_RETRIES: u32 = 240;

/// Why the screenshot run failed, for the command's one error line (see [`failure`]).
static FAILURE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Ends the app with an error, `why` being the command's error line.
fn fail(exit: &mut MessageWriter<AppExit>, why: String) {
    *FAILURE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
    exit.write(AppExit::error());
}

/// Why a screenshot run ended with an error, if it did.
pub fn failure() -> Option<String> {
    FAILURE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

/// Saves one screenshot of the primary window, then exits.
pub struct ScreenshotPlugin {
    /// Where the PNG goes.
    pub path: PathBuf,
    /// Frames rendered before it.
    pub frames: u32,
}

/// Set while training (`--train`) runs: the frames do not count towards `--frames` yet, and the envs wait.
#[derive(Resource, Debug, Default)]
pub struct ScreenshotWait(pub bool);

/// The screenshot to take, and how far it got.
#[derive(Resource, Debug, Clone)]
struct ScreenshotRequest {
    path: PathBuf,
    /// Frames to render before it, counted from the end of any wait.
    frames: u32,
    /// Frame at which to capture next.
    due: u32,
    /// Whether a capture is on its way.
    in_flight: bool,
    /// Captures that came back with an empty 3D view so far.
    blank: u32,
}

impl Plugin for ScreenshotPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(ScreenshotRequest {
            path: self.path.clone(),
            frames: self.frames,
            due: self.frames,
            in_flight: false,
            blank: 0,
        })
        .insert_resource(TimeUpdateStrategy::ManualDuration(SCREENSHOT_FRAME))
        .init_resource::<ScreenshotWait>()
        .add_systems(Startup, exact_clock)
        .add_systems(Last, take_screenshot);
    }
}

/// Every frame runs the steps its fixed time owes, however long they take.
fn exact_clock(mut clock: ResMut<SimClock>) {
    clock.exact = true;
}

/// Requests the screenshot at the due frame (pausing the envs there, so that frames spent waiting for the render
/// pipelines change nothing); exits with an error if it has not arrived long after.
fn take_screenshot(
    mut commands: Commands,
    frame: Res<FrameCount>,
    mut request: ResMut<ScreenshotRequest>,
    mut clock: ResMut<SimClock>,
    wait: Res<ScreenshotWait>,
    mut exit: MessageWriter<AppExit>,
) {
    if wait.0 {
        request.due = frame.0.saturating_add(request.frames);
        return;
    }
    if frame.0 >= request.due && !request.in_flight {
        request.in_flight = true;
        clock.paused = true;
        commands
            .spawn(Screenshot::primary_window())
            .observe(on_captured);
    } else if frame.0 == request.due.saturating_add(PATIENCE_FRAMES) {
        fail(
            &mut exit,
            format!("no screenshot arrived {PATIENCE_FRAMES} frames after it was requested"),
        );
    }
}

/// Saves a capture and exits, or asks for the next frame's while the 3D view is still empty.
fn on_captured(
    captured: On<ScreenshotCaptured>,
    frame: Res<FrameCount>,
    mut request: ResMut<ScreenshotRequest>,
    policy: Option<Res<super::policy::ActingPolicy>>,
    mut exit: MessageWriter<AppExit>,
) {
    request.in_flight = false;
    if is_blank(&captured.image) {
        if request.blank < BLANK_RETRIES {
            request.blank += 1;
            request.due = frame.0 + 1;
            return;
        }
        qamlab_headless::stderr_line!(
            "warning: the 3D view was still a single colour {BLANK_RETRIES} frames after the screenshot was due; \
             saving it anyway"
        );
    }
    // Saved once: no further captures, and no patience check.
    request.due = u32::MAX;
    let path = &request.path;
    match save_png(&captured.image, path) {
        // A policy that stopped on an error (a diverged agent) fails the command, as `eval` does: a script
        // checking a run must not take the picture of its message for success.
        Ok(()) => match policy.as_ref().and_then(|p| p.error.as_ref()) {
            Some(err) => fail(
                &mut exit,
                format!(
                    "the envs stopped before the screenshot ({} shows them stopped): {err}",
                    path.display()
                ),
            ),
            None => {
                qamlab_headless::stderr_line!("view: screenshot saved to {}", path.display());
                exit.write(AppExit::Success);
            }
        },
        Err(err) => {
            fail(
                &mut exit,
                format!("saving the screenshot to {}: {err:#}", path.display()),
            );
        }
    }
}

/// Whether the 3D view of the capture (the window right of the panel) is a single colour: nothing drawn yet.
fn is_blank(image: &Image) -> bool {
    let Some(data) = image.data.as_deref() else {
        return true;
    };
    let size = image.texture_descriptor.format.pixel_size().unwrap_or(4);
    let width = image.width() as usize;
    // The panel takes about a quarter of the default 1280-pixel window.
    let from = width * 3 / 10;
    let mut pixels = data
        .chunks_exact(width * size)
        .flat_map(|row| row[from * size..].chunks_exact(size));
    pixels.next().is_none_or(|first| pixels.all(|p| p == first))
}

/// Writes the captured image as an RGB PNG (atomically: a crash leaves no half-written file under the name).
fn save_png(image: &Image, path: &std::path::Path) -> anyhow::Result<()> {
    let rgb = image
        .clone()
        .try_into_dynamic()
        .map_err(|e| anyhow::anyhow!("converting the capture: {e}"))?
        .to_rgb8();
    let mut png = std::io::Cursor::new(Vec::new());
    rgb.write_to(
        &mut png,
        bevy::image::ImageFormat::Png
            .as_image_crate_format()
            .expect("png is enabled"),
    )?;
    qamlab_headless::files::write_bytes_atomically(path, png.get_ref())
}
