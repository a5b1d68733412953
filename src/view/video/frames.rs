//! A video as numbered PNG frames in a directory: the frames' names, writing them through a staging folder, and
//! clearing what a killed write left behind.

use std::path::Path;

use anyhow::Context;

use super::VideoFrame;

/// The number in a frame's file name, `frame-0012.png` -> 12.
pub(super) fn frame_index(name: &str) -> Option<usize> {
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
pub(super) fn clear_staged(entry: &std::fs::DirEntry) -> bool {
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
pub(super) fn write_pngs(dir: &Path, frames: &[VideoFrame]) -> anyhow::Result<()> {
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
    use super::super::tests::picture;
    use super::super::{HOLD_CENTISECONDS, Video, VideoOutput};
    use super::*;

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
}
