//! The run's configuration and its copy of the task scene: writing `config.toml` and reading it (whole, with the
//! task the run holds), recording the CPU threads of a run that started without, writing the scene copy with its
//! CRC-32 in `run.json`, and refusing a copy edited since.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};

use super::{RunDir, warn_once};
use crate::TrainConfig;
use crate::files::{
    is_not_found, read_regular_text, read_stored_file, read_stored_text, write_bytes_atomically,
};

/// The first line of the `config.toml` a run writes (since 2026-12-07), up to its format number: the file holds every
/// key of that format, an unset optional one as a `# key: unset` comment, so one missing is damage. A file without
/// it, an older run's, may lack the keys added since its version (`cuda_graphs`, `tf32`, `split_update`,
/// `cpu_threads`, …), which take their defaults.
const WHOLE_CONFIG_MARKER: &str = "# qamlab run config, format ";

/// The format of the `config.toml` a run writes, in its first line.
const CONFIG_FORMAT: u32 = 2;

/// Keys added to the configuration after format 1, each with the first format that writes it: a run of an earlier
/// format lacks them, and they take their defaults there. A key added to [`TrainConfig`] goes here with
/// `CONFIG_FORMAT + 1`, and [`CONFIG_FORMAT`] moves on to that (the test of format 1's keys says so).
const KEYS_SINCE_FORMAT_1: &[(&str, u32)] = &[("keep_checkpoints", 2)];

/// The first line of the `config.toml` a run writes now.
fn whole_config_line() -> String {
    format!("{WHOLE_CONFIG_MARKER}{CONFIG_FORMAT}: every key written (unset ones as comments)")
}

/// The format `text`'s first line names ([`WHOLE_CONFIG_MARKER`]), if it has one.
fn whole_config_format(text: &str) -> Option<u32> {
    let line = text.lines().next()?.strip_prefix(WHOLE_CONFIG_MARKER)?;
    line.split(':').next()?.trim().parse().ok()
}

/// What a run records of itself when it starts, beside its config (`run.json`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct RunRecord {
    /// CRC-32 of the run's copy of its task scene, as copied (absent for a built-in task).
    #[serde(default)]
    task_scene_crc32: Option<u32>,
}

impl RunDir {
    /// What the run recorded of itself when it started (see [`RunRecord`]).
    fn record(&self) -> PathBuf {
        self.root.join("run.json")
    }

    /// Writes `cfg` as a new run's `config.toml`, atomically, headed by the line that says it holds every key
    /// and its format (`whole_config_line`): a key deleted from it is then refused as damage.
    pub fn write_config(&self, cfg: &TrainConfig) -> anyhow::Result<()> {
        let text = format!("{}\n{}", whole_config_line(), cfg.to_toml()?);
        write_bytes_atomically(&self.config(), text.as_bytes())
    }

    /// Records `cpu_threads = threads` in the run's `config.toml`, which sets none (the run started on a GPU, or
    /// before qamlab recorded the count): the count the run's first CPU leg takes, which later resumes keep, as
    /// sums over many values depend on it. The key takes the place of the `# cpu_threads: unset` comment, or
    /// follows the file's last top-level key; the rest of the file stays as it is. Written atomically.
    pub fn record_cpu_threads(&self, threads: usize) -> anyhow::Result<()> {
        let path = self.config();
        let text = read_regular_text(
            &path,
            "the config file",
            Some(crate::limits::MAX_CONFIG_BYTES),
        )?;
        let before = TrainConfig::from_toml_str(&text, &path.display().to_string())?;
        ensure!(
            before.cpu_threads.is_none(),
            "{} already records cpu_threads",
            path.display()
        );
        let key =
            format!("cpu_threads = {threads}  # recorded when the run first trained on the CPU");
        let recorded = with_top_level_line(&text, "# cpu_threads: unset", &key);
        // Another key changed, or the line read otherwise than as the key (an odd layout): left to the user.
        let after = TrainConfig::from_toml_str(&recorded, &path.display().to_string()).ok();
        let expected = TrainConfig {
            cpu_threads: Some(threads),
            ..before
        };
        ensure!(
            after.as_ref() == Some(&expected),
            "{}: could not add `cpu_threads = {threads}` to it without changing its other keys; add the line among \
             its top-level keys (before [agent]) by hand, so that the run keeps the count it trains with",
            path.display()
        );
        write_bytes_atomically(&path, recorded.as_bytes())
    }

    /// Writes the run's copy of its task's scene file, and its CRC-32 into `run.json`, by which
    /// [`read_config`](Self::read_config) refuses a copy edited since.
    pub fn write_task_scene(&self, text: &[u8]) -> anyhow::Result<()> {
        write_bytes_atomically(&self.task_scene(), text)?;
        let record = RunRecord {
            task_scene_crc32: Some(crc32fast::hash(text)),
        };
        write_bytes_atomically(
            &self.record(),
            serde_json::to_string_pretty(&record)?.as_bytes(),
        )
    }

    /// The scene file the run's task was first read from, where it now differs from the run's copy (edited since
    /// the run started): the run goes on with its copy, which a user editing the file may not expect. `None` for a
    /// built-in task, a run without a copy, or an original that is gone or unchanged.
    pub fn edited_original_scene(&self) -> Option<PathBuf> {
        // A built-in task has no copy (and no record of one) to compare.
        if !self.task_scene().is_file() {
            return None;
        }
        // Where the copy itself was edited, that is what differs, and reading the config refuses it.
        self.check_task_scene().ok()?;
        let scene_bytes = qamlab_sim::scene::MAX_SCENE_BYTES;
        let copy =
            read_stored_file(&self.task_scene(), "the run's task scene", scene_bytes).ok()?;
        let config_bytes = crate::limits::MAX_CONFIG_BYTES;
        let text = read_stored_text(&self.config(), "the config file", config_bytes).ok()?;
        let original = PathBuf::from(TrainConfig::from_toml_str(&text, "").ok()?.task);
        // The user's file, wherever it is: a named pipe or a device there is not read (nor waited for).
        let now = read_stored_file(&original, "the task's scene", scene_bytes).ok()?;
        (now != copy).then_some(original)
    }

    /// The configuration the run started with; a task given as a scene file is read from the run's copy, which
    /// must be as the run started (the run's checkpoints were trained on that task).
    pub fn read_config(&self) -> anyhow::Result<TrainConfig> {
        let cfg = self.read_config_unverified()?;
        if self.task_scene().is_file() {
            self.check_task_scene()?;
        }
        Ok(cfg)
    }

    /// Refuses the run's copy of its task scene if it differs from the copy the run started with (runs from
    /// before the record was kept have none to compare).
    fn check_task_scene(&self) -> anyhow::Result<()> {
        let record_path = self.record();
        // `{"task_scene_crc32": N}`: a few bytes.
        const MAX_RECORD_BYTES: u64 = 64 << 10;
        let recorded = match read_stored_text(&record_path, "the run's record", MAX_RECORD_BYTES) {
            Ok(text) => serde_json::from_str::<RunRecord>(&text).with_context(|| {
                format!(
                    "{}: expected the run's record, {{\"task_scene_crc32\": N}}",
                    record_path.display()
                )
            })?,
            Err(e) if is_not_found(&e) => {
                // A run from before the record was kept has none; a deleted one leaves the copy unchecked.
                warn_once(
                    &record_path,
                    &format!(
                        "{} is missing, so {} cannot be checked against the copy the run started with (runs from \
                         before qamlab kept this record have none); if it was deleted, an edited copy goes unnoticed",
                        record_path.display(),
                        self.task_scene().display()
                    ),
                );
                RunRecord::default()
            }
            Err(e) => return Err(e),
        };
        let Some(then) = recorded.task_scene_crc32 else {
            return Ok(());
        };
        let scene = self.task_scene();
        let now = crc32fast::hash(&read_stored_file(
            &scene,
            "the run's task scene",
            qamlab_sim::scene::MAX_SCENE_BYTES,
        )?);
        ensure!(
            now == then,
            "{} was edited after the run started (its CRC-32 is {now:08x}; {} recorded {then:08x}): the run's \
             checkpoints were trained on the task as it was. Restore the file, or start a new run with the edited \
             task (copy it out of the run and give it to `qamlab train --task`)",
            scene.display(),
            record_path.display()
        );
        Ok(())
    }

    /// The configuration the run started with, as [`read_config`](Self::read_config) reads it but without
    /// checking the run's copy of its task scene: for reporting what the run did (its curves), not for acting
    /// on its task.
    pub fn read_config_unverified(&self) -> anyhow::Result<TrainConfig> {
        if self.root.is_file() {
            bail!(
                "{} is a file, not a run directory{}",
                self.root.display(),
                what_file_it_is(&self.root)
            );
        }
        if std::fs::metadata(&self.root).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
            bail!(
                "run directory {} does not exist (a run is the folder `qamlab train --out` made)",
                self.root.display()
            );
        }
        let path = self.config();
        let text = read_regular_text(
            &path,
            "the config file",
            Some(crate::limits::MAX_CONFIG_BYTES),
        )
        .with_context(|| {
            // A folder inside a run (`RUN/checkpoints/step-N`): the run is named.
            let inside = self
                .root
                .ancestors()
                .skip(1)
                .find(|dir| dir.join("config.toml").is_file() && dir.join("checkpoints").is_dir())
                .map_or_else(String::new, |run| {
                    format!(
                        " (it is inside the run {}: give that; eval, collect --run and --resume take its latest \
                         checkpoint)",
                        run.display()
                    )
                });
            format!("{} is not a run directory{inside}", self.root.display())
        })?;
        let mut cfg = TrainConfig::from_toml_str(&text, &path.display().to_string())?;
        check_config_is_whole(&text, &path)?;
        let scene = self.task_scene();
        let builtin = qamlab_tasks::builtin_names().contains(&cfg.task.as_str());
        if scene.is_file() {
            cfg.task = scene.display().to_string();
        } else if scene.exists() {
            bail!(
                "{} is not a file: the run's copy of its task scene",
                scene.display()
            );
        } else if !builtin && !cfg.task.ends_with(".ron") {
            bail!(
                "{}: task = {:?} is not a built-in task ({}) and the run holds no scene file",
                self.config().display(),
                cfg.task,
                qamlab_tasks::builtin_names().join(", ")
            );
        } else if !builtin && !self.record().exists() {
            // No copy and no record of one: the run never held a scene, so its config names a task it did not train.
            bail!(
                "{}: task = {:?} names a scene file, but the run holds no copy of one ({} and {} are absent, as for \
                 a run of a built-in task): if the task key was edited, set it back to the task the run trained on",
                self.config().display(),
                cfg.task,
                scene.display(),
                self.record().display()
            );
        } else if !builtin {
            // The original file may have changed since: loading it would quietly evaluate another task.
            bail!(
                "{} is missing: the run's copy of its task scene (first read from {}), which --resume and eval load",
                scene.display(),
                cfg.task
            );
        }
        Ok(cfg)
    }
}

/// What a file given where a run directory belongs looks like, by its first bytes, to follow "is a file, not a run
/// directory": a dataset or a checkpoint given in its place is named as such.
fn what_file_it_is(path: &Path) -> String {
    use crate::files::FileKind;
    match crate::files::sniff_file(path) {
        Some(FileKind::Safetensors) => {
            ": it looks like a safetensors file (a checkpoint's); give the run directory, \
                                        the folder that holds checkpoints/"
                .into()
        }
        Some(kind) => format!(
            ": it is {}; give the directory `qamlab train --out` wrote",
            kind.described()
        ),
        // `RUN/checkpoints/latest`, the pointer to the newest checkpoint.
        None if path.file_name().is_some_and(|n| n == "latest")
            && path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "checkpoints") =>
        {
            format!(
                ": it names a run's newest checkpoint; give the run, {}",
                path.parent()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new("."))
                    .display()
            )
        }
        None => ": give the directory `qamlab train --out` wrote".into(),
    }
}

/// `text` with `line` in place of its top-level line starting with `replaced`, or where there is none, after its
/// last top-level key (before its first table), each other line as it was.
fn with_top_level_line(text: &str, replaced: &str, line: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let top = lines
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .unwrap_or(lines.len());
    let is_key = |l: &&str| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with('#')
    };
    let (at, replace) = match lines[..top]
        .iter()
        .position(|l| l.trim_start().starts_with(replaced))
    {
        Some(at) => (at, true),
        None => (
            lines[..top].iter().rposition(is_key).map_or(0, |i| i + 1),
            false,
        ),
    };
    let ending = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(text.len() + line.len() + 2);
    for (i, l) in lines.iter().enumerate() {
        if i == at {
            out.push_str(line);
            out.push_str(ending);
            if replace {
                continue;
            }
        }
        out.push_str(l);
    }
    if at == lines.len() {
        // After the file's last line, which may have no ending.
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(ending);
        }
        out.push_str(line);
        out.push_str(ending);
    }
    out
}

/// A run writes every key of its configuration, so one missing is damage (a cut or emptied file, a deleted key),
/// which reading with defaults would silently turn into another run. A file without [`WHOLE_CONFIG_MARKER`], an
/// older run's, may lack the keys added to qamlab since its first runs: their defaults are what those runs did.
fn check_config_is_whole(text: &str, path: &Path) -> anyhow::Result<()> {
    const LATER_KEYS: [&str; 6] = [
        "cuda_graphs",
        "tf32",
        "split_update",
        "sparse",
        "balanced_sampling",
        "keep_checkpoints",
    ];
    let written: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    let format = whole_config_format(text);
    let whole = format.is_some();
    // Every key a run may write: the optional ones are those a default config leaves unset.
    let every_key: toml::Table = every_key_set().to_toml()?.parse()?;
    let default: toml::Table = TrainConfig::default().to_toml()?.parse()?;
    let unset = unset_comments(text);
    let required = |name: &str, in_default: bool| {
        if let Some(format) = format {
            // An unset optional key is written as a comment; a key of a later format is not in the file.
            let in_format = KEYS_SINCE_FORMAT_1
                .iter()
                .all(|&(key, since)| key != name || since <= format);
            in_format && (in_default || !unset.iter().any(|u| u == name))
        } else {
            in_default && !LATER_KEYS.contains(&name)
        }
    };
    let missing = |have: &toml::Table, want: &toml::Table, default: &toml::Table, table: &str| {
        want.keys()
            .filter(|k| !have.contains_key(*k))
            .map(|k| (format!("{table}{k}"), default.contains_key(k)))
            .filter(|(name, in_default)| required(name, *in_default))
            .map(|(name, _)| name)
            .collect::<Vec<String>>()
    };
    let mut absent = missing(&written, &every_key, &default, "");
    if let (
        Some(toml::Value::Table(have)),
        Some(toml::Value::Table(want)),
        Some(toml::Value::Table(d)),
    ) = (
        written.get("agent"),
        every_key.get("agent"),
        default.get("agent"),
    ) {
        absent.extend(missing(have, want, d, "agent."));
    }
    let why = if whole {
        "a run writes every key of its configuration (an unset one as a `# key: unset` comment), as its first line \
         says, so the file is damaged (cut or emptied) or the keys were deleted: put them back with the values the \
         run had (a key left out would take its default, and the run would go on as another)"
    } else {
        "a run writes every key of its configuration, so the file is damaged (cut or emptied)"
    };
    anyhow::ensure!(
        absent.is_empty(),
        "{} lacks {}: {why}",
        path.display(),
        absent.join(", ")
    );
    Ok(())
}

/// A configuration with every optional key set: with [`TrainConfig::default`]'s keys, every key a run may write.
fn every_key_set() -> TrainConfig {
    let mut cfg = TrainConfig {
        dataset: Some("data.npz".into()),
        cpu_threads: Some(1),
        ..TrainConfig::default()
    };
    cfg.agent.edit_target_entropy = Some(0.0);
    cfg.agent.clip_grad = Some(true);
    cfg
}

/// The keys `text` names in `# key: unset` comments (as [`TrainConfig::to_toml`] writes an unset optional key), as
/// `key` or `table.key` by the table they stand in.
fn unset_comments(text: &str) -> Vec<String> {
    let mut table = String::new();
    let mut names = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[') {
            table = format!("{}.", header.trim_end_matches(']').trim());
        } else if let Some((key, _)) = line
            .strip_prefix("# ")
            .and_then(|comment| comment.split_once(": unset"))
        {
            names.push(format!("{table}{key}"));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::temp_run;

    #[test]
    fn a_scene_file_run_without_its_copy_is_refused() {
        let (_dir, run) = temp_run();
        let cfg = TrainConfig {
            task: "/elsewhere/my-task.scn.ron".into(),
            ..TrainConfig::default()
        };
        std::fs::write(run.config(), cfg.to_toml().unwrap()).unwrap();
        // No copy and no record of one: a run of a built-in task whose task key was edited to a file.
        let err = format!("{:#}", run.read_config().unwrap_err());
        assert!(
            err.contains("config.toml: task = \"/elsewhere/my-task.scn.ron\" names a scene file, but the run holds no copy")
                && err.contains("set it back to the task the run trained on"),
            "{err}"
        );
        // A copy that was made and then deleted: the original may have been edited since; only the run's copy is
        // the run's task.
        run.write_task_scene(b"(copy)").unwrap();
        std::fs::remove_file(run.task_scene()).unwrap();
        let err = format!("{:#}", run.read_config().unwrap_err());
        assert!(
            err.contains("task.scn.ron is missing") && err.contains("my-task.scn.ron"),
            "{err}"
        );
        run.write_task_scene(b"(copy)").unwrap();
        assert_eq!(
            run.read_config().unwrap().task,
            run.task_scene().display().to_string()
        );
        // A built-in task needs no copy.
        let builtin = TrainConfig::default();
        std::fs::write(run.config(), builtin.to_toml().unwrap()).unwrap();
        std::fs::remove_file(run.task_scene()).unwrap();
        assert_eq!(run.read_config().unwrap().task, builtin.task);
    }

    #[test]
    fn a_file_given_as_a_run_directory_is_named_as_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let read = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            format!("{:#}", RunDir::new(&path).read_config().unwrap_err())
        };
        let err = read("data.npz", b"PK\x03\x04\x14\x00 a zip");
        assert!(
            err.ends_with(
                "data.npz is a file, not a run directory: it is a zip archive, as a dataset (.npz) is; give the \
                 directory `qamlab train --out` wrote"
            ),
            "{err}"
        );
        let err = read("agent.safetensors", b"\x02\x00\x00\x00\x00\x00\x00\x00{}");
        assert!(err.contains("it looks like a safetensors file"), "{err}");
        // A checkpoint's folder inside a run: the run is named.
        let run = dir.path().join("run");
        let step = run.join("checkpoints/step-20");
        std::fs::create_dir_all(&step).unwrap();
        std::fs::write(run.join("config.toml"), "").unwrap();
        let err = format!("{:#}", RunDir::new(&step).read_config().unwrap_err());
        assert!(
            err.starts_with(&format!(
                "{} is not a run directory (it is inside the run {}: give that; eval, collect --run and --resume take its latest \
                 checkpoint)",
                step.display(),
                run.display()
            )),
            "{err}"
        );
        // A folder that is not there is said to be missing, not to lack a config file.
        let missing = dir.path().join("no-such-run");
        let err = format!("{:#}", RunDir::new(&missing).read_config().unwrap_err());
        assert_eq!(
            err,
            format!(
                "run directory {} does not exist (a run is the folder `qamlab train --out` made)",
                missing.display()
            )
        );
    }

    #[test]
    fn a_damaged_config_or_an_unknown_task_is_named() {
        let (_dir, run) = temp_run();
        let whole = TrainConfig::default().to_toml().unwrap();
        // Cut in the [agent] table: read with defaults, it would be another run.
        let cut = &whole[..whole.find("num_qs").unwrap()];
        std::fs::write(run.config(), cut).unwrap();
        let err = format!("{:#}", run.read_config().unwrap_err());
        assert!(
            err.contains("config.toml lacks agent.")
                && err.contains("agent.num_qs")
                && err.contains("damaged"),
            "{err}"
        );
        std::fs::write(run.config(), "").unwrap();
        let err = format!("{:#}", run.read_config().unwrap_err());
        assert!(
            err.contains("lacks agent, ") && err.contains(", task, "),
            "{err}"
        );
        // A run from before the later keys existed reads with their defaults.
        let older: String = whole
            .lines()
            .filter(|l| !l.starts_with("sparse") && !l.starts_with("balanced_sampling"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(run.config(), &older).unwrap();
        run.read_config().unwrap();
        std::fs::write(run.config(), older.replace("cube-single", "cube-zzz")).unwrap();
        let err = format!("{:#}", run.read_config().unwrap_err());
        assert!(
            err.contains("task = \"cube-zzz\" is not a built-in task (cube-single, cube-double, antmaze-umaze)"),
            "{err}"
        );
    }

    #[test]
    fn a_key_deleted_from_a_config_written_whole_is_refused_but_an_older_run_lacking_it_loads() {
        let (_dir, run) = temp_run();
        let without = |text: &str, key: &str| -> String {
            text.split_inclusive('\n')
                .filter(|l| !l.starts_with(key))
                .collect()
        };
        // A CPU run's (cpu_threads recorded) and a GPU run's (cpu_threads unset, said in a comment).
        for cpu_threads in [Some(2), None] {
            let cfg = TrainConfig {
                cpu_threads,
                ..TrainConfig::default()
            };
            run.write_config(&cfg).unwrap();
            let written = std::fs::read_to_string(run.config()).unwrap();
            assert!(written.starts_with(&whole_config_line()), "{written}");
            assert_eq!(whole_config_format(&written), Some(CONFIG_FORMAT));
            assert_eq!(run.read_config().unwrap(), cfg);
            let deleted = if cpu_threads.is_some() {
                "cpu_threads = "
            } else {
                "# cpu_threads: unset"
            };
            for (line, key) in [
                ("cuda_graphs = ", "cuda_graphs"),
                ("tf32 = ", "tf32"),
                ("split_update = ", "split_update"),
                (deleted, "cpu_threads"),
            ] {
                let damaged = without(&written, line);
                assert_ne!(damaged, written, "{line}");
                std::fs::write(run.config(), &damaged).unwrap();
                let err = format!("{:#}", run.read_config().unwrap_err());
                assert!(
                    err.starts_with(&format!("{} lacks {key}: ", run.config().display()))
                        && err.contains("the keys were deleted: put them back"),
                    "{err}"
                );
                // An older run's file (no first line saying it is whole) lacking the key reads with its default.
                std::fs::write(run.config(), without(&damaged, WHOLE_CONFIG_MARKER)).unwrap();
                assert_eq!(
                    whole_config_format(&without(&damaged, WHOLE_CONFIG_MARKER)),
                    None
                );
                run.read_config().unwrap();
            }
        }
    }

    #[test]
    fn the_keys_of_format_1_are_those_a_run_writes_or_a_later_format_names() {
        // A run of format 1 must still read when a key is added: the new key goes into KEYS_SINCE_FORMAT_1 with
        // the format that first writes it (and CONFIG_FORMAT moves on), or every run written since would be refused
        // as lacking it.
        const FORMAT_1: &[&str] = &[
            "task",
            "dataset",
            "offline_steps",
            "online_steps",
            "envs",
            "start_training",
            "utd_ratio",
            "sparse",
            "balanced_sampling",
            "eval_interval",
            "eval_episodes",
            "eval_envs",
            "checkpoint_interval",
            "log_interval",
            "seed",
            "device",
            "cuda_graphs",
            "tf32",
            "split_update",
            "cpu_threads",
            "agent.edit_target_entropy",
            "agent.clip_grad",
            "agent.kind",
            "agent.lr",
            "agent.batch_size",
            "agent.actor_hidden_dims",
            "agent.actor_layer_norm",
            "agent.value_hidden_dims",
            "agent.value_layer_norm",
            "agent.action_chunking",
            "agent.horizon_length",
            "agent.num_qs",
            "agent.rho",
            "agent.discount",
            "agent.tau",
            "agent.flow_steps",
            "agent.best_of_n",
            "agent.inv_temp",
            "agent.fql_alpha",
            "agent.edit_scale",
            "agent.edit_target_entropy_multiplier",
            "agent.alpha",
        ];
        let every: toml::Table = every_key_set().to_toml().unwrap().parse().unwrap();
        let agent = every["agent"].as_table().unwrap();
        let names = every
            .keys()
            .filter(|k| *k != "agent")
            .cloned()
            .chain(agent.keys().map(|k| format!("agent.{k}")));
        let later: Vec<String> = names
            .filter(|k| !FORMAT_1.contains(&k.as_str()))
            .filter(|k| !KEYS_SINCE_FORMAT_1.iter().any(|(key, _)| key == k))
            .collect();
        assert!(
            later.is_empty(),
            "keys neither of format 1 nor in KEYS_SINCE_FORMAT_1: {later:?}: add them there with CONFIG_FORMAT + 1, \
             and move CONFIG_FORMAT on"
        );
        // The format is read from the first line, whatever its number.
        assert_eq!(
            whole_config_format("# qamlab run config, format 7: every key\nseed = 0\n"),
            Some(7)
        );
    }

    #[test]
    fn cpu_threads_are_recorded_in_a_config_that_set_none_keeping_the_rest() {
        let (_dir, run) = temp_run();
        let line = "cpu_threads = 3  # recorded when the run first trained on the CPU\n";
        // A GPU run's: the key takes the place of the comment that says it is unset, and the file stays whole.
        run.write_config(&TrainConfig::default()).unwrap();
        let gpu = std::fs::read_to_string(run.config()).unwrap();
        run.record_cpu_threads(3).unwrap();
        let recorded = std::fs::read_to_string(run.config()).unwrap();
        let comment = gpu
            .lines()
            .find(|l| l.starts_with("# cpu_threads: unset"))
            .unwrap();
        assert_eq!(recorded, gpu.replace(&format!("{comment}\n"), line));
        assert_eq!(run.read_config().unwrap().cpu_threads, Some(3));
        let err = format!("{:#}", run.record_cpu_threads(4).unwrap_err());
        assert!(
            err.ends_with("config.toml already records cpu_threads"),
            "{err}"
        );
        // An older run's, without the key or the comment, hand-edited: after its last top-level key, its comments
        // and layout kept.
        let older = "# my run\ntask = \"cube-single\"\noffline_steps = 0 # none\n\n[agent]\nkind = \"qam\"\n";
        std::fs::write(run.config(), older).unwrap();
        let expected = older.replace("# none\n", &format!("# none\n{line}"));
        run.record_cpu_threads(3).unwrap();
        assert_eq!(std::fs::read_to_string(run.config()).unwrap(), expected);
        // One of top-level keys alone, without a last line ending.
        assert_eq!(
            with_top_level_line("envs = 2", "# cpu_threads: unset", "cpu_threads = 3"),
            "envs = 2\ncpu_threads = 3\n"
        );
    }

    #[test]
    fn an_edited_copy_of_the_task_scene_is_refused() {
        let (_dir, run) = temp_run();
        let cfg = TrainConfig {
            task: "/elsewhere/my-task.scn.ron".into(),
            ..TrainConfig::default()
        };
        std::fs::write(run.config(), cfg.to_toml().unwrap()).unwrap();
        let scene = "(goals: [(tolerance: 0.1)])";
        run.write_task_scene(scene.as_bytes()).unwrap();
        run.read_config().unwrap();
        std::fs::write(run.task_scene(), scene.replace("0.1", "5.0")).unwrap();
        let err = format!("{:#}", run.read_config().unwrap_err());
        assert!(
            err.starts_with(&format!(
                "{} was edited after the run started (its CRC-32 is ",
                run.task_scene().display()
            )) && err.contains("Restore the file, or start a new run with the edited task"),
            "{err}"
        );
        // What the run did can still be reported.
        run.read_config_unverified().unwrap();
        // A run from before the record was kept loads as before.
        std::fs::remove_file(run.record()).unwrap();
        run.read_config().unwrap();
        assert!(run.foreign_entries().unwrap().is_empty());
        // The videos `eval` writes are the run's too; a GIF of another name is not.
        for name in [
            "eval.gif",
            "eval-step-120.gif",
            "eval-step-.gif",
            "mine.gif",
        ] {
            std::fs::write(run.root().join(name), "").unwrap();
        }
        assert_eq!(
            run.foreign_entries().unwrap(),
            ["eval-step-.gif", "mine.gif"]
        );
    }

    #[test]
    fn an_original_scene_edited_since_the_run_started_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("run"));
        std::fs::create_dir_all(run.root()).unwrap();
        let original = dir.path().join("my-task.scn.ron");
        std::fs::write(&original, "(a)").unwrap();
        let cfg = TrainConfig {
            task: original.display().to_string(),
            ..TrainConfig::default()
        };
        std::fs::write(run.config(), cfg.to_toml().unwrap()).unwrap();
        run.write_task_scene(b"(a)").unwrap();
        assert_eq!(run.edited_original_scene(), None);
        std::fs::write(&original, "(b)").unwrap();
        assert_eq!(run.edited_original_scene(), Some(original.clone()));
        std::fs::remove_file(&original).unwrap();
        assert_eq!(run.edited_original_scene(), None);
    }
}
