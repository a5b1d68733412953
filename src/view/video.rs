//! `qamlab eval --video`: episodes of an agent rendered offscreen (no window, no display) to an animated GIF or to
//! numbered PNG frames.
//!
//! The envs run the window's plugins: the same [`SimPlugin`](qamlab_sim::SimPlugin) systems, the same stepping, policy driving, render
//! sync and camera; only the camera's target differs (an image instead of a window) and the clock is driven one
//! control step per frame. Each episode runs until its goal holds (the frame shows the goal marker green and the
//! frame gets a green border) or the time limit (red border); the last frame of each episode is held for a second
//! (a GIF frame shown that long; in a directory, a second's worth of copies, so frames assembled at [`FPS`] hold
//! it too).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bevy::app::PluginsState;
use bevy::camera::RenderTarget;
use bevy::image::Image;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::render_resource::TextureFormat;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::ExitCondition;
use qamlab_agent::Agent;
use qamlab_sim::StepOutput;

use super::policy::ActingPolicy;
use super::stepping::{PendingRebuild, SimClock};
use super::{ActingEnvsPlugins, CameraPlugin, RenderSyncPlugin, Speed, SteppingPlugin, ViewTask};

/// Frames per second of the GIF (one control step a frame at `every = 1`: real time for the built-in tasks).
pub const FPS: u16 = 20;
/// How long one control step's frame shows, in hundredths of a second.
const FRAME_CENTISECONDS: u16 = 100 / FPS;
/// How long the last frame of an episode stays on screen.
const HOLD_CENTISECONDS: u16 = 100;
/// Frames rendered before the first one kept: pipelines, lookup tables and meshes settle.
const WARM_UP_FRAMES: u32 = 4;
/// Frames to wait for requested captures after the last episode before giving up.
const PATIENCE_FRAMES: u32 = 600;
/// Width of the border that says how an episode ended, in pixels.
const BORDER: u32 = 6;

/// What to record.
#[derive(Debug, Clone)]
pub struct VideoOptions {
    /// Episodes recorded one after another.
    pub episodes: usize,
    /// Keep every k-th control step (and always the first and last frame of an episode).
    pub every: u32,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Episode `i` starts from env seed `first_seed + i`.
    pub first_seed: u64,
}

/// One kept frame.
pub struct VideoFrame {
    /// The picture.
    pub image: image::RgbImage,
    /// How long it shows, in hundredths of a second.
    pub delay: u16,
}

impl VideoFrame {
    /// How many frames at [`FPS`] show it as long as its delay: 1, or a held frame's second's worth.
    fn copies(&self) -> usize {
        usize::from((self.delay / FRAME_CENTISECONDS).max(1))
    }
}

/// A recorded video.
pub struct Video {
    /// Frames in order.
    pub frames: Vec<VideoFrame>,
    /// Whether each episode succeeded.
    pub successes: Vec<bool>,
}

impl Video {
    /// How long the video plays, in seconds.
    pub fn seconds(&self) -> f64 {
        self.frames.iter().map(|f| f64::from(f.delay)).sum::<f64>() / 100.0
    }
}

/// What the recorder knows of one requested capture.
#[derive(Debug, Clone, Copy)]
struct FrameMeta {
    /// Part of the video.
    keep: bool,
    /// The last frame of an episode: whether it succeeded.
    last_of: Option<bool>,
}

/// Renders `options.episodes` episodes of `agent` on the task `task` (loaded by [`qamlab_tasks::load_task`]).
pub fn record(
    task: &qamlab_tasks::Task,
    agent: Agent,
    options: &VideoOptions,
) -> anyhow::Result<Video> {
    anyhow::ensure!(options.episodes > 0, "a video needs at least one episode");
    anyhow::ensure!(options.every > 0, "--video-every must be at least 1");
    let (o, a) = (agent.obs_dim(), agent.action_dim());
    let spec = qamlab_sim::EnvSpec::of(&task.scene);
    anyhow::ensure!(
        (o, a) == (spec.obs_dim, spec.action_dim),
        "the agent takes {o} observations and {a} actions; task {} has {} and {}",
        task.name,
        spec.obs_dim,
        spec.action_dim
    );

    let mut app = offscreen_app(task, agent, options);
    wait_for_renderer(&mut app)?;
    let mut recorder = Recorder::new(options, spec.episode_length);
    while !recorder.finished()? {
        recorder.frame(&mut app)?;
    }
    Ok(recorder.assemble_frames())
}

/// The window's envs, policy, render sync and camera, with no window: the camera renders into an image.
fn offscreen_app(task: &qamlab_tasks::Task, agent: Agent, options: &VideoOptions) -> App {
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: None,
                exit_condition: ExitCondition::DontExit,
                close_when_requested: false,
                ..default()
            })
            .set(RenderPlugin {
                // Every pipeline ready at its first draw: no frame misses a mesh still compiling.
                synchronous_pipeline_compilation: true,
                ..default()
            })
            .disable::<bevy::winit::WinitPlugin>()
            .disable::<bevy::log::LogPlugin>(),
    )
    .insert_resource(ViewTask {
        name: task.name.clone(),
        scene: task.scene.clone(),
        watch: None,
    })
    .insert_resource(ActingPolicy::agent_only(agent, 1, "checkpoint".into()))
    .insert_resource(TargetSize(UVec2::new(options.width, options.height)))
    // Shadow maps to suit the small picture (software renderers pay for every texel).
    .insert_resource(bevy::light::DirectionalLightShadowMap { size: 1024 })
    .add_plugins(ActingEnvsPlugins(SteppingPlugin {
        num_envs: 1,
        seed: options.first_seed,
        speed: Speed::X1,
        end_on_success: false,
    }))
    .add_plugins((RenderSyncPlugin { grid: false }, CameraPlugin))
    .add_systems(Startup, create_target)
    .add_systems(PostStartup, aim_cameras_at_target);
    app
}

/// Waits (two minutes at most) until the renderer's plugins are ready, then finishes building the app.
fn wait_for_renderer(app: &mut App) -> anyhow::Result<()> {
    let start = Instant::now();
    while app.plugins_state() == PluginsState::Adding {
        bevy::tasks::tick_global_task_pools_on_main_thread();
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(120),
            "the renderer did not start within two minutes"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    app.finish();
    app.cleanup();
    Ok(())
}

/// The capture state machine: which frames step the env, which are rendered and kept, and how episodes end.
struct Recorder {
    /// Keep every k-th control step.
    every: u32,
    /// Episodes to record.
    episodes: usize,
    /// Control steps of an episode before the time limit.
    episode_length: u32,
    /// Captured pictures, by index into `meta`, in the order the renderer returns them.
    captured: Arc<Mutex<Vec<(usize, image::RgbImage)>>>,
    /// Why a capture could not be converted.
    failed: Arc<Mutex<Option<String>>>,
    /// One entry per requested capture.
    meta: Vec<FrameMeta>,
    /// How each finished episode ended.
    successes: Vec<bool>,
    /// The episode's initial state is on screen, no step taken yet.
    fresh: bool,
    /// The last step reached the goal on a frame that was not rendered: render it without stepping.
    show_success: bool,
    /// Control steps taken in this episode.
    t: u32,
    /// Frames left to render before recording.
    warm_up: u32,
    /// Frames waited for captures after the last episode.
    waited: u32,
}

impl Recorder {
    /// A recorder before its first frame.
    fn new(options: &VideoOptions, episode_length: u32) -> Self {
        Self {
            every: options.every,
            episodes: options.episodes,
            episode_length,
            captured: Arc::default(),
            failed: Arc::default(),
            meta: Vec::new(),
            successes: Vec::new(),
            fresh: true,
            show_success: false,
            t: 0,
            warm_up: WARM_UP_FRAMES,
            waited: 0,
        }
    }

    /// Whether every episode has ended and every capture has come back; an error after too long a wait.
    fn finished(&mut self) -> anyhow::Result<bool> {
        if self.successes.len() < self.episodes {
            return Ok(false);
        }
        if self.captured.lock().expect("never poisoned").len() == self.meta.len() {
            return Ok(true);
        }
        self.waited += 1;
        anyhow::ensure!(
            self.waited < PATIENCE_FRAMES,
            "{} of {} frames never came back from the renderer",
            self.meta.len() - self.captured.lock().expect("never poisoned").len(),
            self.meta.len()
        );
        Ok(false)
    }

    /// Runs one frame: a control step or none, rendered or not, and notes whether it ended the episode.
    fn frame(&mut self, app: &mut App) -> anyhow::Result<()> {
        let done = self.successes.len() == self.episodes;
        let recording = !done && self.warm_up == 0;
        let step = recording && !self.fresh && !self.show_success;
        let t_after = self.t + u32::from(step);
        // Rendered: the kept steps, the first frame, the success, and the last state before the time limit
        // (the step after it resets the env).
        let capture = recording
            && (!step || t_after.is_multiple_of(self.every) || t_after + 1 == self.episode_length);
        // Frames not kept are not rendered at all.
        set_up_frame(app, step, capture || self.warm_up > 0);
        if capture {
            self.request_capture(app);
        }
        app.update();
        self.check_update(app)?;
        if !recording {
            self.warm_up = self.warm_up.saturating_sub(1);
            return Ok(());
        }
        let ended = if step {
            self.t = t_after;
            self.stepped(app, capture)
        } else if self.show_success {
            self.meta.last_mut().expect("captured").last_of = Some(true);
            self.show_success = false;
            Some(true)
        } else {
            self.fresh = false;
            None
        };
        if let Some(success) = ended {
            self.end_episode(app, success);
        }
        Ok(())
    }

    /// Asks the renderer for this frame's picture, delivered to `captured` by index.
    fn request_capture(&mut self, app: &mut App) {
        let index = self.meta.len();
        let target = app.world().resource::<VideoTarget>().0.clone();
        let (frames, failed) = (self.captured.clone(), self.failed.clone());
        app.world_mut().spawn(Screenshot::image(target)).observe(
            move |shot: On<ScreenshotCaptured>| match shot.image.clone().try_into_dynamic() {
                Ok(image) => frames
                    .lock()
                    .expect("never poisoned")
                    .push((index, image.to_rgb8())),
                Err(err) => {
                    *failed.lock().expect("never poisoned") =
                        Some(format!("converting a captured frame: {err}"));
                }
            },
        );
        self.meta.push(FrameMeta {
            keep: true,
            last_of: None,
        });
    }

    /// An error if the update stopped the app, a capture failed, or the agent could not act.
    fn check_update(&self, app: &App) -> anyhow::Result<()> {
        if let Some(exit) = app.should_exit() {
            anyhow::bail!("the renderer stopped early ({exit:?})");
        }
        if let Some(err) = self.failed.lock().expect("never poisoned").take() {
            anyhow::bail!(err);
        }
        let policy = app.world().resource::<ActingPolicy>();
        if let Some(err) = policy.error.as_ref().or(policy.fallback.as_ref()) {
            anyhow::bail!("the agent cannot act: {err}");
        }
        Ok(())
    }

    /// After a control step: whether it ended the episode, and with a success.
    fn stepped(&mut self, app: &App, capture: bool) -> Option<bool> {
        let out = app.world().resource::<StepOutput>();
        let (success, truncated) = (out.success[0], out.truncated[0]);
        if truncated {
            // The env has already started its next episode: the frame before this step was the last.
            if capture {
                self.meta.last_mut().expect("captured").keep = false;
            }
            if let Some(last) = self.meta.iter_mut().rev().find(|m| m.keep) {
                last.last_of = Some(false);
            }
            Some(false)
        } else if success && capture {
            self.meta.last_mut().expect("captured").last_of = Some(true);
            Some(true)
        } else {
            self.show_success = success;
            None
        }
    }

    /// Notes the episode's outcome and, unless it was the last, starts the next one.
    fn end_episode(&mut self, app: &mut App, success: bool) {
        self.successes.push(success);
        self.t = 0;
        self.fresh = true;
        if self.successes.len() < self.episodes {
            app.world_mut().resource_mut::<PendingRebuild>().0 = true;
        }
    }

    /// The kept frames in order, each episode's last one bordered and held, and the episodes' outcomes.
    fn assemble_frames(self) -> Video {
        let mut shots = std::mem::take(&mut *self.captured.lock().expect("never poisoned"));
        shots.sort_by_key(|(index, _)| *index);
        let meta = self.meta;
        let frames = shots
            .into_iter()
            .filter(|(index, _)| meta[*index].keep)
            .map(|(index, mut image)| {
                let delay = match meta[index].last_of {
                    Some(success) => {
                        draw_border(&mut image, success);
                        HOLD_CENTISECONDS
                    }
                    None => FRAME_CENTISECONDS,
                };
                VideoFrame { image, delay }
            })
            .collect();
        Video {
            frames,
            successes: self.successes,
        }
    }
}

/// Pauses the clock for `step` single control steps on the next update, and turns the cameras on if `render`.
fn set_up_frame(app: &mut App, step: bool, render: bool) {
    {
        let mut clock = app.world_mut().resource_mut::<SimClock>();
        clock.paused = true;
        clock.single_steps = u32::from(step);
    }
    let mut cameras = app.world_mut().query::<&mut Camera>();
    for mut camera in cameras.iter_mut(app.world_mut()) {
        camera.is_active = render;
    }
}

/// Size of the offscreen picture.
#[derive(Resource, Debug, Clone, Copy)]
struct TargetSize(UVec2);

/// The image the camera renders into.
#[derive(Resource, Debug, Clone)]
struct VideoTarget(Handle<Image>);

fn create_target(mut commands: Commands, size: Res<TargetSize>, mut images: ResMut<Assets<Image>>) {
    let image = Image::new_target_texture(size.0.x, size.0.y, TextureFormat::Rgba8UnormSrgb, None);
    commands.insert_resource(VideoTarget(images.add(image)));
}

/// Points the view's camera at the offscreen image.
fn aim_cameras_at_target(
    mut commands: Commands,
    target: Res<VideoTarget>,
    cameras: Query<Entity, With<Camera3d>>,
) {
    for camera in &cameras {
        commands
            .entity(camera)
            .insert(RenderTarget::Image(target.0.clone().into()));
    }
}

/// A border saying how the episode ended: green for success, red for failure.
fn draw_border(image: &mut image::RgbImage, success: bool) {
    let colour = if success {
        BORDER_COLOURS[0]
    } else {
        BORDER_COLOURS[1]
    };
    let (w, h) = image.dimensions();
    for y in 0..h {
        for x in 0..w {
            if x < BORDER || y < BORDER || x + BORDER >= w || y + BORDER >= h {
                image.put_pixel(x, y, image::Rgb(colour));
            }
        }
    }
}

/// Where a video goes: an animated GIF, or numbered PNG frames in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoOutput {
    /// One animated GIF.
    Gif(PathBuf),
    /// `frame-0000.png`, ... in this directory.
    Frames(PathBuf),
}

impl VideoOutput {
    /// A path ending in `.gif` is a GIF; an existing directory, or a path ending in `/`, holds PNG frames.
    pub fn from_path(path: &Path) -> anyhow::Result<Self> {
        let out = Self::from_path_unchecked(path)?;
        // The first file the video writes shows whether it can be written at all.
        let first = match &out {
            Self::Gif(file) => file.clone(),
            Self::Frames(dir) => dir.join("frame-0000.png"),
        };
        qamlab_headless::files::check_writable(&first, "--video")?;
        Ok(out)
    }

    fn from_path_unchecked(path: &Path) -> anyhow::Result<Self> {
        let text = path.to_string_lossy();
        if path.is_dir() || text.ends_with('/') {
            // Frames replace an earlier video's; anything else there is someone's and stays untouched.
            if let Ok(entries) = std::fs::read_dir(path) {
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let name_text = name.to_string_lossy();
                    // What a killed write left behind is ours too: removed here.
                    if clear_staged(&entry) {
                        continue;
                    }
                    if frame_index(&name_text).is_none() {
                        anyhow::bail!(
                            "--video {}: the directory holds {}, which is not a frame of an earlier video; give an \
                             empty or new directory for the PNG frames",
                            path.display(),
                            name.to_string_lossy()
                        );
                    }
                }
            }
            Ok(Self::Frames(path.to_path_buf()))
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gif"))
        {
            Ok(Self::Gif(path.to_path_buf()))
        } else {
            anyhow::bail!(
                "--video {}: give a `.gif` file, or a directory (ending in `/` if it does not exist yet) \
                 for numbered PNG frames",
                path.display()
            )
        }
    }

    /// The path given.
    pub fn path(&self) -> &Path {
        match self {
            Self::Gif(p) | Self::Frames(p) => p,
        }
    }

    /// How many frames [`write`](Self::write) writes of `video`: a directory gets each held frame repeated.
    pub fn frame_count(&self, video: &Video) -> usize {
        match self {
            Self::Gif(_) => video.frames.len(),
            Self::Frames(_) => video.frames.iter().map(VideoFrame::copies).sum(),
        }
    }

    /// Writes the video (a GIF through a temporary file, renamed when complete).
    pub fn write(&self, video: &Video) -> anyhow::Result<()> {
        anyhow::ensure!(!video.frames.is_empty(), "the video has no frames");
        match self {
            Self::Gif(path) => write_gif(path, &video.frames),
            Self::Frames(dir) => write_pngs(dir, &video.frames),
        }
    }
}

/// Colours that must be in the GIF's palette exactly: the borders.
const BORDER_COLOURS: [[u8; 3]; 2] = [[40, 220, 90], [220, 50, 40]];

/// Writes an animated GIF: one palette for the whole video (so still parts stay still) and, after the first
/// frame, only the rectangle that changed (the table and the floor are encoded once).
fn write_gif(path: &Path, frames: &[VideoFrame]) -> anyhow::Result<()> {
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
/// border colours weighted in so that they come out exact enough.
fn video_palette(frames: &[VideoFrame]) -> Vec<u8> {
    const SAMPLE_PIXELS: usize = 1 << 19;
    const ROW: usize = 512;
    let total: usize = frames.iter().map(|f| f.image.as_raw().len() / 3).sum();
    let stride = total.div_ceil(SAMPLE_PIXELS).max(1);
    let mut sample: Vec<u8> = Vec::with_capacity(3 * (SAMPLE_PIXELS + 2 * ROW * 16));
    let mut k = 0usize;
    for frame in frames {
        for p in frame.image.as_raw().chunks_exact(3) {
            if k.is_multiple_of(stride) {
                sample.extend_from_slice(p);
            }
            k += 1;
        }
    }
    for colour in BORDER_COLOURS {
        for _ in 0..ROW * 16 {
            sample.extend_from_slice(&colour);
        }
    }
    let rows = sample.len() / (3 * ROW);
    sample.truncate(rows * ROW * 3);
    let frame = gif::Frame::from_rgb_speed(ROW as u16, rows as u16, &sample, 10);
    let mut palette = frame.palette.unwrap_or_default();
    palette.resize(256 * 3, 0);
    palette
}

/// Index of a colour in [`nearest_colour_table`]: 5 bits per channel.
fn colour_key([r, g, b]: [u8; 3]) -> usize {
    (usize::from(r >> 3) << 10) | (usize::from(g >> 3) << 5) | usize::from(b >> 3)
}

/// The nearest palette entry of every 15-bit colour.
fn nearest_colour_table(palette: &[u8]) -> Vec<u8> {
    let entries: Vec<[i32; 3]> = palette
        .chunks_exact(3)
        .map(|c| [i32::from(c[0]), i32::from(c[1]), i32::from(c[2])])
        .collect();
    (0..1usize << 15)
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
        .collect()
}

/// The number in a frame's file name, `frame-0012.png` -> 12.
fn frame_index(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("frame-")?.strip_suffix(".png")?;
    // `parse` alone would take `+12`; it refuses an empty string itself.
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())
        .flatten()
}

/// Prefix of the folder inside the frames' directory where a video's frames are written before they are renamed
/// to their names.
const STAGING_DIR: &str = ".tmp-frames-";
/// Prefix of a frame that earlier versions staged beside its name (`.frame-0003.png.tmp-XXXX`).
const LEGACY_STAGED_FRAME: &str = ".frame-";

/// Removes `entry` if a killed write of frames left it behind (a staging folder or a staged frame); whether it did.
fn clear_staged(entry: &std::fs::DirEntry) -> bool {
    let name = entry.file_name();
    let name = name.to_string_lossy();
    let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
    if is_dir && name.starts_with(STAGING_DIR) {
        let _ = std::fs::remove_dir_all(entry.path());
        return true;
    }
    if !is_dir && name.starts_with(LEGACY_STAGED_FRAME) && name.contains(".png.tmp-") {
        let _ = std::fs::remove_file(entry.path());
        return true;
    }
    false
}

/// The name of frame `i`: `frame-0012.png`.
fn frame_name(i: usize) -> String {
    format!("frame-{i:04}.png")
}

/// Writes the frames into `dir` (the folder itself is kept: its permissions, a symlink or a mount point), each
/// held frame as a second's worth of copies: every frame first into a staging folder inside `dir`, then each
/// renamed into place, then the earlier video's extra frames removed. A kill, an error or a full disk while
/// writing leaves the earlier video whole; only the renames, which take milliseconds, could part the two.
fn write_pngs(dir: &Path, frames: &[VideoFrame]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Removed when dropped: an error on the way leaves none of the new frames.
    let staging = tempfile::Builder::new()
        .prefix(STAGING_DIR)
        .tempdir_in(dir)
        .with_context(|| format!("creating a temporary folder in {}", dir.display()))?;
    let mut count = 0;
    for frame in frames {
        let mut png = std::io::Cursor::new(Vec::new());
        frame
            .image
            .write_to(&mut png, image::ImageFormat::Png)
            .with_context(|| format!("encoding {}", dir.join(frame_name(count)).display()))?;
        for _ in 0..frame.copies() {
            // As every other file is written: synced, with ordinary permissions; and closed at once, where
            // staging each beside its name would hold one file open per frame.
            qamlab_headless::files::write_bytes_atomically(
                &staging.path().join(frame_name(count)),
                png.get_ref(),
            )
            .with_context(|| format!("writing {}", dir.join(frame_name(count)).display()))?;
            count += 1;
        }
    }
    for i in 0..count {
        let path = dir.join(frame_name(i));
        std::fs::rename(staging.path().join(frame_name(i)), &path)
            .with_context(|| format!("putting {} in place", path.display()))?;
    }
    // A longer earlier video's last frames would otherwise run on after this one's.
    for entry in std::fs::read_dir(dir)?.flatten() {
        if frame_index(&entry.file_name().to_string_lossy()).is_some_and(|i| i >= count) {
            std::fs::remove_file(entry.path()).with_context(|| {
                format!("removing the earlier frame {}", entry.path().display())
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_is_a_gif_or_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let gif = dir.path().join("a.GIF");
        assert_eq!(VideoOutput::from_path(&gif).unwrap(), VideoOutput::Gif(gif));
        assert_eq!(
            VideoOutput::from_path(dir.path()).unwrap(),
            VideoOutput::Frames(dir.path().to_path_buf())
        );
        let new_dir = PathBuf::from("frames/");
        assert_eq!(
            VideoOutput::from_path(&new_dir).unwrap(),
            VideoOutput::Frames(new_dir)
        );
        let err = VideoOutput::from_path(Path::new("clip.mp4")).unwrap_err();
        assert!(err.to_string().contains("`.gif`"), "{err}");
        // Under a file, checked before any episode is rendered.
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "").unwrap();
        for under in [file.join("v.gif"), file.join("frames/")] {
            let err = VideoOutput::from_path(&under).unwrap_err().to_string();
            assert!(err.contains("notes.txt is a file"), "{err}");
        }
    }

    #[test]
    fn frames_replace_an_earlier_video_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let frames = |n: u32| -> Vec<VideoFrame> {
            (0..n)
                .map(|x| VideoFrame {
                    image: picture(x),
                    delay: 5,
                })
                .collect()
        };
        let video = |n: u32| Video {
            frames: frames(n),
            successes: Vec::new(),
        };
        let names = |path: &Path| {
            let mut names: Vec<String> = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let frames_dir = dir.path().join("frames");
        let out = VideoOutput::from_path(&frames_dir.join("")).unwrap();
        out.write(&video(5)).unwrap();
        assert_eq!(names(&frames_dir).len(), 5);
        // A shorter video leaves no frame of the longer one behind, and nothing is left beside the folder.
        VideoOutput::from_path(&frames_dir)
            .unwrap()
            .write(&video(3))
            .unwrap();
        assert_eq!(
            names(&frames_dir),
            ["frame-0000.png", "frame-0001.png", "frame-0002.png"]
        );
        assert_eq!(names(dir.path()), ["frames"]);
        // Frames are ordinary files, as the GIF and the checkpoints are, not the temporary files' owner-only ones.
        use std::os::unix::fs::PermissionsExt;
        for name in names(&frames_dir) {
            let mode = std::fs::metadata(frames_dir.join(&name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "{name}");
        }
        // The folder is kept, with its permissions; what a killed write left behind is cleared, not refused.
        std::fs::set_permissions(&frames_dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        std::fs::write(frames_dir.join(".frame-0001.png.tmp-abc123"), "cut short").unwrap();
        std::fs::create_dir(frames_dir.join(".tmp-frames-abc123")).unwrap();
        std::fs::write(
            frames_dir.join(".tmp-frames-abc123/frame-0000.png"),
            "cut short",
        )
        .unwrap();
        VideoOutput::from_path(&frames_dir)
            .unwrap()
            .write(&video(2))
            .unwrap();
        assert_eq!(names(&frames_dir), ["frame-0000.png", "frame-0001.png"]);
        let mode = std::fs::metadata(&frames_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o750);
        // A directory holding other files (a run's checkpoints, say) is refused.
        std::fs::write(frames_dir.join("latest"), "step-20").unwrap();
        let err = VideoOutput::from_path(&frames_dir).unwrap_err().to_string();
        assert!(
            err.contains("latest") && err.contains("empty or new"),
            "{err}"
        );
    }

    #[test]
    fn a_directory_holds_the_last_frame_for_a_second_of_frames() {
        let dir = tempfile::tempdir().unwrap();
        let frame = |x: u32, delay: u16| VideoFrame {
            image: picture(x),
            delay,
        };
        let video = Video {
            frames: vec![frame(4, 5), frame(12, 5), frame(30, HOLD_CENTISECONDS)],
            successes: vec![true],
        };
        assert!((video.seconds() - 1.1).abs() < 1e-9, "{}", video.seconds());
        let out = VideoOutput::Frames(dir.path().to_path_buf());
        assert_eq!(out.frame_count(&video), 22);
        assert_eq!(
            VideoOutput::Gif(dir.path().join("v.gif")).frame_count(&video),
            3
        );
        out.write(&video).unwrap();
        let read = |i: usize| std::fs::read(dir.path().join(frame_name(i))).unwrap();
        // At 20 frames a second the held frame shows for a second, as in the GIF.
        assert_ne!(read(1), read(2));
        assert!((2..22).all(|i| read(i) == read(2)));
        assert!(!dir.path().join(frame_name(22)).exists());
    }

    /// A picture with a gradient background and a square at `x`.
    fn picture(x: u32) -> image::RgbImage {
        image::RgbImage::from_fn(64, 48, |px, py| {
            if (x..x + 8).contains(&px) && (20..28).contains(&py) {
                image::Rgb([240, 110, 20])
            } else {
                image::Rgb([(px * 3) as u8, (py * 4) as u8, 90])
            }
        })
    }

    #[test]
    fn a_gif_round_trips_close_to_its_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.gif");
        let mut frames: Vec<VideoFrame> = [4, 12, 12, 30]
            .into_iter()
            .map(|x| VideoFrame {
                image: picture(x),
                delay: 5,
            })
            .collect();
        draw_border(&mut frames[3].image, true);
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
        for ((pixels, _, _), x) in decoded.iter().zip([4, 12, 12, 30]) {
            let mut expected = picture(x);
            if x == 30 {
                draw_border(&mut expected, true);
            }
            for (got, want) in pixels.chunks_exact(4).zip(expected.pixels()) {
                for c in 0..3 {
                    assert!(
                        got[c].abs_diff(want.0[c]) <= 24,
                        "frame with the square at {x}: {got:?} for {want:?}"
                    );
                }
            }
        }
    }
}
