//! `qamlab eval --video`: episodes of an agent rendered offscreen (no window, no display) to an animated GIF or to
//! numbered PNG frames.
//!
//! The envs run the window's plugins: the same [`SimPlugin`](qamlab_sim::SimPlugin) systems, the same stepping, policy driving, render
//! sync and camera; only the camera's target differs (an image instead of a window) and the clock is driven one
//! control step per frame. Each episode runs until its goal holds (the frame shows the goal marker green) or the
//! time limit; the last frame of each episode is held for a second (a GIF frame shown that long; in a directory, a
//! second's worth of copies, so frames assembled at [`FPS`] hold it too). Every frame carries a caption, a dark
//! strip at the top: "episode 1/2 · step 37/200" while under way, then "success at step 37" or "time limit (200
//! steps)" on the held frame, with the task and the agent at the right where they fit. The held frame is also
//! framed in a colour-blind-safe pair (Okabe-Ito): blue for a success, orange for the time limit.
//!
//! * this module: the offscreen recording app, the [`Recorder`] that decides which frames are stepped and kept,
//!   and [`VideoOutput`], where the video goes.
//! * [`caption`]: the caption's words and drawing.
//! * [`gif`]: the GIF's palette quantisation and encoding.
//! * [`frames`]: numbered PNG frames in a directory, staged and renamed into place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

mod caption;
mod frames;
mod gif;

use self::caption::{Caption, Moment, draw_caption};
use self::frames::{clear_staged, frame_index, write_pngs};
use self::gif::write_gif;
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
/// The border of a success: Okabe-Ito blue, told apart from [`TIME_LIMIT_COLOUR`] by every common form of colour
/// blindness (green and red are not, under deuteranopia).
const SUCCESS_COLOUR: [u8; 3] = [0, 114, 178];
/// The border of an episode that ran out of time: Okabe-Ito orange.
const TIME_LIMIT_COLOUR: [u8; 3] = [230, 159, 0];

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
    /// The episode it shows, from 0.
    episode: usize,
    /// Control steps taken in the episode when it was rendered.
    step: u32,
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

    // The caption's side field: "cube-single · qam".
    let (name, kind) = (task.name.as_str(), agent.config().kind.as_str());
    let mut app = offscreen_app(task, agent, options);
    wait_for_renderer(&mut app)?;
    let mut recorder = Recorder::new(options, spec.episode_length);
    while !recorder.finished()? {
        recorder.frame(&mut app)?;
    }
    recorder.assemble_frames(name, kind)
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
            .disable::<bevy::log::LogPlugin>()
            // No app loop reads its flag here: Ctrl-C would be swallowed and the rendering go on to the end.
            // Without it the signal ends the renderer, and `qamlab eval` says no video was written.
            .disable::<bevy::app::TerminalCtrlCHandlerPlugin>(),
    )
    .insert_resource(ViewTask {
        name: task.name.clone(),
        scene: task.scene.clone(),
        watch: None,
    })
    .insert_resource(ActingPolicy::agent_only(agent, 1, "checkpoint".into()))
    // Shadow maps to suit the small picture (software renderers pay for every texel).
    .insert_resource(bevy::light::DirectionalLightShadowMap { size: 1024 })
    .add_plugins(ActingEnvsPlugins(SteppingPlugin {
        num_envs: 1,
        seed: options.first_seed,
        speed: Speed::X1,
        end_on_success: false,
    }))
    .add_plugins((RenderSyncPlugin { grid: false }, CameraPlugin))
    .add_plugins(OffscreenTargetPlugin(UVec2::new(
        options.width,
        options.height,
    )));
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
            self.request_capture(app, t_after);
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

    /// Asks the renderer for this frame's picture, delivered to `captured` by index; `step`: control steps the
    /// episode will have taken when it is rendered.
    fn request_capture(&mut self, app: &mut App, step: u32) {
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
            episode: self.successes.len(),
            step,
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

    /// The kept frames in order, each captioned (`task` and `agent` at its right, where they fit), each episode's
    /// last one bordered and held, and the episodes' outcomes.
    fn assemble_frames(self, task: &str, agent: &str) -> anyhow::Result<Video> {
        let mut shots = std::mem::take(&mut *self.captured.lock().expect("never poisoned"));
        shots.sort_by_key(|(index, _)| *index);
        let meta = self.meta;
        // The task and agent on every frame, if they fit beside the widest caption (the last episode's time limit).
        let widest = Caption {
            episode: self.episodes - 1,
            episodes: self.episodes,
            episode_length: self.episode_length,
            moment: Moment::TimeLimit,
        };
        let side = match shots.first() {
            Some((_, image)) => {
                let (w, h) = image.dimensions();
                caption::side_that_fits(w, h, &widest.text(), task, agent)?
            }
            None => None,
        };
        let frames = shots
            .into_iter()
            .filter(|(index, _)| meta[*index].keep)
            .map(|(index, mut image)| {
                let FrameMeta {
                    last_of,
                    episode,
                    step,
                    ..
                } = meta[index];
                let moment = match last_of {
                    None => Moment::Running(step),
                    Some(true) => Moment::Success(step),
                    Some(false) => Moment::TimeLimit,
                };
                let caption = Caption {
                    episode,
                    episodes: self.episodes,
                    episode_length: self.episode_length,
                    moment,
                };
                draw_caption(&mut image, &caption.text(), side.as_deref())?;
                let delay = match last_of {
                    Some(success) => {
                        draw_border(&mut image, success);
                        HOLD_CENTISECONDS
                    }
                    None => FRAME_CENTISECONDS,
                };
                Ok(VideoFrame { image, delay })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Video {
            frames,
            successes: self.successes,
        })
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

/// Renders the view's cameras into an image of this size instead of a window.
struct OffscreenTargetPlugin(UVec2);

impl Plugin for OffscreenTargetPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(TargetSize(self.0))
            .add_systems(Startup, create_target)
            // After the camera plugin's Startup spawned the cameras.
            .add_systems(PostStartup, aim_cameras_at_target);
    }
}

/// Size of the offscreen picture.
#[derive(Resource, Debug, Clone, Copy)]
struct TargetSize(UVec2);

/// The image the camera renders into.
#[derive(Resource, Debug, Clone)]
struct VideoTarget(Handle<Image>);

/// Makes the image the cameras render into.
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

/// A border saying how the episode ended: [`SUCCESS_COLOUR`] (blue) or [`TIME_LIMIT_COLOUR`] (orange).
fn draw_border(image: &mut image::RgbImage, success: bool) {
    let colour = if success {
        SUCCESS_COLOUR
    } else {
        TIME_LIMIT_COLOUR
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
        qamlab_headless::files::check_no_literal_tilde(path, "--video")?;
        Self::writable(path)
    }

    /// A run's own video, `RUN/eval.gif` (`RUN/eval-step-N.gif` for the checkpoint of a step asked for): the run
    /// was found, so a literal `~` in its path names a real folder.
    pub fn in_run(run_dir: &Path, step: Option<u64>) -> anyhow::Result<Self> {
        let gif = qamlab_headless::run_dir::RunDir::new(run_dir).video(step);
        let tilde = gif
            .components()
            .next()
            .is_some_and(|c| c.as_os_str() == "~");
        Self::writable(&if tilde { Path::new(".").join(gif) } else { gif })
    }

    /// [`Self::from_path_unchecked`], checking that the video's first file can be written.
    fn writable(path: &Path) -> anyhow::Result<Self> {
        let out = Self::from_path_unchecked(path)?;
        // The first file the video writes shows whether it can be written at all.
        let first = match &out {
            Self::Gif(file) => file.clone(),
            Self::Frames(dir) => {
                qamlab_headless::files::check_out_dir(dir, "--video")?;
                dir.join("frame-0000.png")
            }
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

/// Colours that must be in the GIF's palette exactly: the borders and the caption's background and text.
const EXACT_COLOURS: [[u8; 3]; 4] = [
    SUCCESS_COLOUR,
    TIME_LIMIT_COLOUR,
    caption::BACKGROUND,
    caption::TEXT,
];

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
        // A `~` the user typed was not expanded; one in a run's path that was found names a folder `~`.
        let err = VideoOutput::from_path(Path::new("~/r/eval.gif")).unwrap_err();
        assert!(err.to_string().contains("literal `~`"), "{err}");
        assert_eq!(
            VideoOutput::in_run(Path::new("~/r"), None).unwrap(),
            VideoOutput::Gif(PathBuf::from("./~/r/eval.gif"))
        );
        assert_eq!(
            VideoOutput::in_run(Path::new("r"), Some(120)).unwrap(),
            VideoOutput::Gif(PathBuf::from("r/eval-step-120.gif"))
        );
    }

    /// Recorded frames as the renderer returns them (out of order), the first episode's ending in a success at
    /// step 37, the second's at the time limit: each captioned, the held ones framed in blue and orange.
    #[test]
    fn assembled_frames_are_captioned_and_the_held_ones_framed_in_blue_or_orange() {
        let options = VideoOptions {
            episodes: 2,
            every: 1,
            width: 480,
            height: 360,
            first_seed: 0,
        };
        let mut recorder = Recorder::new(&options, 200);
        let scene = image::RgbImage::from_fn(480, 360, |x, y| {
            image::Rgb([(x / 2) as u8, (y / 2) as u8, 90])
        });
        for (episode, step, last_of) in [
            (0, 0, None),
            (0, 37, Some(true)),
            (1, 0, None),
            (1, 199, Some(false)),
        ] {
            recorder.meta.push(FrameMeta {
                keep: true,
                last_of,
                episode,
                step,
            });
        }
        for index in [2, 0, 3, 1] {
            recorder
                .captured
                .lock()
                .unwrap()
                .push((index, scene.clone()));
        }
        recorder.successes = vec![true, false];
        let video = recorder.assemble_frames("cube-single", "qam").unwrap();
        let delays: Vec<u16> = video.frames.iter().map(|f| f.delay).collect();
        assert_eq!(
            delays,
            [
                FRAME_CENTISECONDS,
                HOLD_CENTISECONDS,
                FRAME_CENTISECONDS,
                HOLD_CENTISECONDS
            ]
        );
        let corner = |i: usize| video.frames[i].image.get_pixel(0, 0).0;
        assert_eq!(
            corner(0),
            caption::BACKGROUND,
            "a running frame has no border"
        );
        assert_eq!(corner(1), SUCCESS_COLOUR);
        assert_eq!(corner(3), TIME_LIMIT_COLOUR);
        // Every frame's top rows are the caption; below it the scene is untouched (inside a held frame's border).
        let strip = caption::strip_height(360);
        for frame in &video.frames {
            assert_eq!(frame.image.get_pixel(240, strip - 1).0, caption::BACKGROUND);
            assert_eq!(
                frame.image.get_pixel(240, strip + 40),
                scene.get_pixel(240, strip + 40)
            );
        }
        // The task and agent at the right of every frame's caption, the held ones' too.
        for frame in &video.frames {
            let right = (BORDER..strip)
                .flat_map(|y| (380..480 - BORDER).map(move |x| (x, y)))
                .filter(|&(x, y)| frame.image.get_pixel(x, y).0.iter().all(|&c| c > 180))
                .count();
            assert!(right > 30, "{right} text pixels at the right");
        }
        // The two endings differ in the caption (its words), not in the scene.
        let differing = |rows: std::ops::Range<u32>| {
            rows.flat_map(|y| (BORDER..480 - BORDER).map(move |x| (x, y)))
                .filter(|&(x, y)| {
                    video.frames[1].image.get_pixel(x, y) != video.frames[3].image.get_pixel(x, y)
                })
                .count()
        };
        assert!(differing(BORDER..strip) > 50);
        assert_eq!(differing(strip..360 - BORDER), 0);
    }

    /// The two outcomes' colours as a deuteranope sees them (Machado et al. 2009, full severity): one stays blue,
    /// the other turns yellow; green and red became two olives.
    #[test]
    fn the_outcome_colours_stay_apart_under_deuteranopia() {
        let deuteranope = |[r, g, b]: [u8; 3]| {
            let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
            [
                0.367_322 * r + 0.860_646 * g - 0.227_968 * b,
                0.280_085 * r + 0.672_501 * g + 0.047_413 * b,
                -0.011_820 * r + 0.042_940 * g + 0.968_881 * b,
            ]
        };
        let [r, _, b] = deuteranope(SUCCESS_COLOUR);
        assert!(
            b > r + 80.0,
            "success seen as {:?}",
            deuteranope(SUCCESS_COLOUR)
        );
        let [r, _, b] = deuteranope(TIME_LIMIT_COLOUR);
        assert!(
            r > b + 80.0,
            "time limit seen as {:?}",
            deuteranope(TIME_LIMIT_COLOUR)
        );
    }

    /// A picture with a gradient background and a square at `x`.
    pub(super) fn picture(x: u32) -> image::RgbImage {
        image::RgbImage::from_fn(64, 48, |px, py| {
            if (x..x + 8).contains(&px) && (20..28).contains(&py) {
                image::Rgb([240, 110, 20])
            } else {
                image::Rgb([(px * 3) as u8, (py * 4) as u8, 90])
            }
        })
    }
}
