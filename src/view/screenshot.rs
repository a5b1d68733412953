//! `--screenshot PATH --frames N`: after N frames, save the window as a PNG and exit (with an error exit if the
//! image cannot be saved or never arrives).

use std::path::PathBuf;

use bevy::diagnostic::FrameCount;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};

/// Frames to wait for a requested screenshot before giving up.
const PATIENCE_FRAMES: u32 = 600;

/// Saves one screenshot of the primary window, then exits.
pub struct ScreenshotPlugin {
    /// Where the PNG goes.
    pub path: PathBuf,
    /// Frames rendered before it.
    pub frames: u32,
}

/// The screenshot to take.
#[derive(Resource, Debug, Clone)]
struct ScreenshotRequest {
    path: PathBuf,
    frames: u32,
}

impl Plugin for ScreenshotPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(ScreenshotRequest {
            path: self.path.clone(),
            frames: self.frames,
        })
        .add_systems(Last, take_screenshot);
    }
}

/// Requests the screenshot at the chosen frame; exits with an error if it has not arrived long after.
fn take_screenshot(
    mut commands: Commands,
    frame: Res<FrameCount>,
    request: Res<ScreenshotRequest>,
    mut exit: MessageWriter<AppExit>,
) {
    if frame.0 == request.frames {
        let path = request.path.clone();
        commands.spawn(Screenshot::primary_window()).observe(move |captured: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
            match save_png(&captured.image, &path) {
                Ok(()) => {
                    eprintln!("view: screenshot saved to {}", path.display());
                    exit.write(AppExit::Success);
                }
                Err(err) => {
                    eprintln!("error: saving the screenshot to {}: {err:#}", path.display());
                    exit.write(AppExit::error());
                }
            }
        });
    } else if frame.0 == request.frames + PATIENCE_FRAMES {
        eprintln!("error: no screenshot arrived {PATIENCE_FRAMES} frames after it was requested");
        exit.write(AppExit::error());
    }
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
