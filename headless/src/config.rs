//! Training configuration: a TOML file (unknown keys rejected by name) whose values flags override.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use qamlab_agent::{AgentConfig, AgentKind};
use serde::{Deserialize, Serialize};

/// Where tensors live: chosen at run time, never at compile time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when libtorch sees a GPU, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA device (an error when there is none).
    Cuda,
}

impl DeviceChoice {
    /// The libtorch device this choice resolves to on this machine.
    pub fn resolve(self) -> anyhow::Result<tch::Device> {
        match self {
            DeviceChoice::Auto => Ok(tch::Device::cuda_if_available()),
            DeviceChoice::Cpu => Ok(tch::Device::Cpu),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
            DeviceChoice::Cuda => bail!(
                "device cuda: libtorch sees no CUDA device here (run `qamlab doctor`); use device cpu or auto"
            ),
        }
    }
}

/// A libtorch device as the flags spell it: `cpu`, `cuda` (device 0) or `cuda:N`.
pub fn device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cpu => "cpu".into(),
        tch::Device::Cuda(0) => "cuda".into(),
        tch::Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            other => Err(format!(
                "unknown device {other:?} (expected auto, cpu or cuda)"
            )),
        }
    }
}

/// The configs that ship in `assets/configs/`, by name (the file name without `.toml`), built into the binary:
/// `--config cpu-small` works from any directory, and from a binary far from its checkout.
pub const SHIPPED_CONFIGS: [(&str, &str); 4] = [
    (
        "cpu-small",
        include_str!("../../assets/configs/cpu-small.toml"),
    ),
    (
        "cuda-paper",
        include_str!("../../assets/configs/cuda-paper.toml"),
    ),
    (
        "antmaze-cpu",
        include_str!("../../assets/configs/antmaze-cpu.toml"),
    ),
    ("paper", include_str!("../../assets/configs/paper.toml")),
];

/// The text of the shipped config `name` (`cpu-small` or `cpu-small.toml`), if one is called that.
pub fn shipped_config_text(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix(".toml").unwrap_or(name);
    SHIPPED_CONFIGS
        .iter()
        .find(|(shipped, _)| *shipped == name)
        .map(|(_, text)| *text)
}

/// The command that trains `task` (as the user named it) online from nothing, without a dataset: on the CPU with
/// the shipped small networks, which work from any directory (the paper's crawl there, at 1-3 updates/s).
pub fn train_from_nothing_command(task: &str) -> String {
    let config = if tch::Cuda::is_available() {
        ""
    } else {
        " --config cpu-small"
    };
    format!(
        "qamlab train --task {}{config} --offline-steps 0",
        crate::shell::quote(task)
    )
}

/// The cores this process may use (its CPU affinity and quota), at least 1.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The intra-op threads a CPU run takes when its config sets none: half the cores this process may use (at least
/// 1), leaving the rest to the envs' physics.
pub fn default_cpu_threads() -> usize {
    (available_cores() / 2).max(1)
}

/// Sets libtorch's intra-op threads for CPU work that shares the machine with the envs' physics:
/// `threads`, or [`default_cpu_threads`] when `None` (at most [`MAX_THREADS`](crate::limits::MAX_THREADS)); returns
/// the number set. libtorch's OpenMP threads spin, so more threads than free cores makes updates many times slower
/// (about 40x measured on the 2-core dev box).
pub fn set_cpu_threads(threads: Option<usize>) -> usize {
    // libtorch takes an i32; the flags keep far below.
    let n = threads
        .unwrap_or_else(default_cpu_threads)
        .clamp(1, crate::limits::MAX_THREADS);
    tch::set_num_threads(n as i32);
    n
}

/// The largest seed: a run's config.toml records it, and a TOML integer is signed 64-bit, so a larger one would be
/// written but not read back (by `eval`, `plot` or `--resume`).
pub const MAX_SEED: u64 = i64::MAX as u64;

/// The `seed` key: a whole number from 0 to [`MAX_SEED`], refused otherwise with the range.
fn deserialize_seed<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct Seed;
    impl serde::de::Visitor<'_> for Seed {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a whole number from 0 to {MAX_SEED}")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            self.visit_i128(v.into())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            self.visit_i128(v.into())
        }
        fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<u64, E> {
            u64::try_from(v)
                .ok()
                .filter(|&seed| seed <= MAX_SEED)
                .ok_or_else(|| E::custom(seed_range_error(v)))
        }
        fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<u64, E> {
            self.visit_i128(i128::try_from(v).unwrap_or(i128::MAX))
        }
    }
    deserializer.deserialize_any(Seed)
}

/// What is wrong with `seed = {seed}`.
fn seed_range_error(seed: impl std::fmt::Display) -> String {
    format!(
        "seed = {seed}: a seed must be from 0 to {MAX_SEED}, the largest integer a run's config.toml can record"
    )
}

/// Everything a training run needs. Defaults follow the reference `main.py` where they apply
/// (utd ratio 1, start_training 5000, 50 evaluation episodes), scaled to a lab-sized run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Built-in task name or path to a task scene file.
    pub task: String,
    /// Offline dataset (OGBench npz layout). Required when `offline_steps > 0`.
    pub dataset: Option<PathBuf>,
    /// Gradient steps on the offline dataset (at most [`MAX_STEPS`](crate::limits::MAX_STEPS), as are the next
    /// two).
    pub offline_steps: u64,
    /// Environment steps of online fine-tuning (summed over the training envs).
    pub online_steps: u64,
    /// Training envs stepping together online (at most [`MAX_ENVS`](crate::limits::MAX_ENVS)).
    pub envs: usize,
    /// Online env steps before updates start (only collection before).
    pub start_training: u64,
    /// Gradient updates per environment step online (at most [`MAX_UTD_RATIO`](crate::limits::MAX_UTD_RATIO)).
    pub utd_ratio: usize,
    /// The reference's `--sparse` (its puzzle and scene domains): every reward that is not 0 becomes -1, in the
    /// dataset and online, so a task rewarding partial progress pays only for complete success.
    pub sparse: bool,
    /// The reference's `--balanced_sampling` (its RLPD runs, with no offline steps): online, half of each batch
    /// comes from the dataset and half from the online transitions, and until `start_training` the envs act
    /// uniformly at random, one action at a time, instead of with the policy.
    pub balanced_sampling: bool,
    /// Evaluate every this many steps (offline gradient steps, then online env steps).
    pub eval_interval: u64,
    /// Evaluation episodes per evaluation (at most [`MAX_EVAL_EPISODES`](crate::limits::MAX_EVAL_EPISODES)).
    pub eval_episodes: usize,
    /// Evaluation envs stepping together (the episodes are split evenly among them; at most
    /// [`MAX_ENVS`](crate::limits::MAX_ENVS)).
    pub eval_envs: usize,
    /// Write a checkpoint every this many steps.
    pub checkpoint_interval: u64,
    /// How many of the newest checkpoints the run keeps (at least 1): the latest, which a resume continues from,
    /// and those before it, each whole, for evaluating an earlier agent (`qamlab eval --step N`).
    pub keep_checkpoints: u64,
    /// Append a metrics row every this many steps.
    pub log_interval: u64,
    /// Seed of everything random in the run (at most [`MAX_SEED`]).
    #[serde(deserialize_with = "deserialize_seed")]
    pub seed: u64,
    /// Device for the agent.
    pub device: DeviceChoice,
    /// On a CUDA device, replay updates and acting from CUDA graphs (each capture is checked
    /// against eager work; on any failure training goes on eagerly with a warning).
    pub cuda_graphs: bool,
    /// On a CUDA device, let float32 matmuls use TF32 tensor cores, as JAX (the reference) does by
    /// default on A100/H100 GPUs; off, they are IEEE fp32. No effect on the CPU.
    pub tf32: bool,
    /// On the CPU, compute each update's critic half on a second thread while the policy half
    /// runs on this one: the same bytes, about 1.3-1.5x the updates/s with two free cores.
    pub split_update: bool,
    /// On the CPU, libtorch's intra-op threads (at most [`MAX_THREADS`](crate::limits::MAX_THREADS)); unset, half
    /// the cores the process may use. Sums over many values depend on the count, so a new CPU run records the
    /// number it takes and a resume keeps it. No effect on CUDA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_threads: Option<usize>,
    /// The agent's hyper-parameters.
    pub agent: AgentConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            task: "cube-single".into(),
            dataset: None,
            offline_steps: 100_000,
            online_steps: 100_000,
            envs: 8,
            start_training: 5_000,
            utd_ratio: 1,
            sparse: false,
            balanced_sampling: false,
            eval_interval: 10_000,
            eval_episodes: 50,
            eval_envs: 10,
            checkpoint_interval: 10_000,
            keep_checkpoints: 1,
            log_interval: 1_000,
            seed: 0,
            device: DeviceChoice::Auto,
            cuda_graphs: true,
            tf32: false,
            split_update: true,
            cpu_threads: None,
            agent: AgentConfig::default(),
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file, or where no file has that name and it is a bare name, the shipped config of that name
    /// (see [`SHIPPED_CONFIGS`]); an unknown key is an error naming the key and the file.
    pub fn from_toml_file(path: &Path) -> anyhow::Result<Self> {
        Self::from_toml_file_as(path, None)
    }

    /// [`from_toml_file`](Self::from_toml_file) for a run of agent `agent` where one is given (`--agent`), whatever
    /// the file's `kind`: the checks that depend on the kind judge the agent that will train.
    pub fn from_toml_file_as(path: &Path, agent: Option<AgentKind>) -> anyhow::Result<Self> {
        // A folder of that name (a run made with `--out cpu-small`) is no file: the shipped config is meant.
        let shipped_name = path.components().count() == 1
            && path.is_dir()
            && path.to_str().and_then(shipped_config_text).is_some();
        if path.components().count() == 1 && (!path.exists() || shipped_name) {
            let Some(text) = path.to_str().and_then(shipped_config_text) else {
                let names: Vec<&str> = SHIPPED_CONFIGS.iter().map(|(name, _)| *name).collect();
                let meant = path
                    .to_str()
                    .and_then(|given| qamlab_sim::scene::closest_name(given, names.iter().copied()))
                    .map_or_else(String::new, |m| format!(": did you mean `{m}`?"));
                bail!(
                    "config file {}: no such file, and no shipped config has that name ({}){meant}",
                    path.display(),
                    names.join(", ")
                );
            };
            return Self::from_toml_str_as(text, &format!("{} (shipped)", path.display()), agent);
        }
        let text = crate::files::read_regular_text(
            path,
            "config file",
            Some(crate::limits::MAX_CONFIG_BYTES),
        );
        // `assets/configs/cpu-small.toml` given away from the checkout: the binary has it.
        let shipped = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .filter(|stem| !path.exists() && shipped_config_text(stem).is_some());
        let text = match (text, shipped) {
            (Err(e), Some(name)) => {
                bail!("{e:#}; the shipped {name} is `--config {name}`, from any directory")
            }
            (text, _) => text?,
        };
        Self::from_toml_str_as(&text, &path.display().to_string(), agent)
    }

    /// Reads TOML text and checks its values' ranges; errors name `source` (the file it came from).
    pub fn from_toml_str(text: &str, source: &str) -> anyhow::Result<Self> {
        Self::from_toml_str_as(text, source, None)
    }

    /// [`from_toml_str`](Self::from_toml_str) for a run of agent `agent` where one is given.
    fn from_toml_str_as(
        text: &str,
        source: &str,
        agent: Option<AgentKind>,
    ) -> anyhow::Result<Self> {
        let cfg: Self = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!(long_lines_cut(&e.to_string())))
            .with_context(|| format!("config file {source}"))?;
        cfg.validate_counts()
            .and_then(|()| cfg.agent.validate_ranges().context("[agent]"))
            .and_then(|()| check_variant_weight_written(text, agent.unwrap_or(cfg.agent.kind)))
            .with_context(|| format!("config file {source}"))?;
        Ok(cfg)
    }

    /// The `[agent]` keys that agent `kind` does not read (weights of other kinds), each with the kinds that do
    /// (`("inv_temp", "qam, qam-f and qam-e")`): a run's `config.toml` marks them `# not used by kind ...`, and
    /// `qamlab plot` leaves them out when it groups seeds (a BC run's `inv_temp` changes nothing it trains).
    pub fn agent_keys_unused_by(kind: AgentKind) -> Vec<(&'static str, String)> {
        let qam: fn(AgentKind) -> bool = AgentKind::is_qam;
        let qam_e: fn(AgentKind) -> bool = |k| k == AgentKind::QamE;
        let critic: fn(AgentKind) -> bool = AgentKind::has_critic;
        [
            ("inv_temp", qam),
            ("alpha", |k| k == AgentKind::Fql),
            ("fql_alpha", |k| k == AgentKind::QamF),
            ("edit_scale", qam_e),
            ("edit_target_entropy", qam_e),
            ("edit_target_entropy_multiplier", qam_e),
            ("num_qs", critic),
            ("rho", critic),
            ("discount", critic),
            ("tau", critic),
            ("value_hidden_dims", critic),
            ("value_layer_norm", critic),
            ("best_of_n", critic),
        ]
        .into_iter()
        .filter(|&(_, used_by)| !used_by(kind))
        .map(|(key, used_by)| (key, AgentKind::names_where(used_by, "and")))
        .collect()
    }

    /// The configuration as TOML, every key with its value (what a run's `config.toml` holds).
    pub fn to_toml(&self) -> anyhow::Result<String> {
        let text = toml::to_string(self).context("writing the configuration as TOML")?;
        // TOML has no null: an unset optional key is named in a comment, so every key shows.
        let unset = [
            (
                self.dataset.is_none(),
                "task = ",
                "# dataset: unset (an .npz file; needed when offline_steps > 0 or balanced_sampling)",
            ),
            (
                self.cpu_threads.is_none(),
                "split_update = ",
                "# cpu_threads: unset (on the CPU, half the cores the process may use; a CPU run records its count)",
            ),
            (
                self.agent.edit_target_entropy.is_none(),
                "[agent]",
                "# edit_target_entropy: unset (-edit_target_entropy_multiplier x the action size)",
            ),
            (
                self.agent.clip_grad.is_none(),
                "[agent]",
                "# clip_grad: unset (the kind's default: on for QAM variants, off for FQL and BC; on clips the \
                 gradient's global norm at 1)",
            ),
        ];
        // Weights another kind reads: a config shared by several agents (`--agent bc` on a QAM config) keeps them,
        // and says so.
        let kind = self.agent.kind;
        let unused = Self::agent_keys_unused_by(kind);
        let mut out = String::with_capacity(text.len() + 256);
        for line in text.lines() {
            out.push_str(line);
            let key_of_line = line.split_once(" = ").map(|(key, _)| key);
            if let Some((_, users)) = unused.iter().find(|(key, _)| key_of_line == Some(*key)) {
                out.push_str(&format!(
                    "  # not used by kind {} (only by {users})",
                    kind.as_str()
                ));
            }
            out.push('\n');
            for (is_unset, after, comment) in unset {
                if is_unset && line.starts_with(after) {
                    out.push_str(comment);
                    out.push('\n');
                }
            }
        }
        Ok(out)
    }

    /// Checks ranges and the dataset requirement, naming the field at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        // Such a run would leave no checkpoint and no metrics: nothing `eval`, `plot` or `--resume` could use.
        if self.offline_steps == 0 && self.online_steps == 0 {
            bail!(
                "offline_steps = 0 and online_steps = 0: the run would train nothing and leave no checkpoint; give \
                 --online-steps N (or --offline-steps N with a --dataset)"
            );
        }
        if self.offline_steps > 0 && self.dataset.is_none() {
            bail!(
                "offline_steps = {} needs a dataset (--dataset FILE.npz; `qamlab collect` makes one with the task's \
                 scripted oracle, or `qamlab collect --run RUN` with the policy a run learned), or --offline-steps 0 \
                 to learn online from nothing",
                self.offline_steps
            );
        }
        if self.balanced_sampling && self.online_steps > 0 {
            if self.dataset.is_none() {
                bail!(
                    "balanced_sampling = true takes half of each online batch from a dataset: give one (--dataset \
                     FILE.npz)"
                );
            }
            if !self.agent.batch_size.is_multiple_of(2) {
                bail!(
                    "balanced_sampling = true splits each batch in halves, but [agent] batch_size = {} is odd",
                    self.agent.batch_size
                );
            }
        }
        self.validate_counts()?;
        self.agent.validate().context("[agent]")
    }

    /// Checks the loop's counts against their bounds (see [`crate::limits`]: past them, the counts they multiply
    /// into and what they allocate would not work), and the dataset's path, naming the field at fault.
    fn validate_counts(&self) -> anyhow::Result<()> {
        use crate::limits::{MAX_ENVS, MAX_EVAL_EPISODES, MAX_STEPS, MAX_UTD_RATIO};
        for (field, value, max) in [
            ("envs", self.envs, MAX_ENVS),
            ("utd_ratio", self.utd_ratio, MAX_UTD_RATIO),
            ("eval_episodes", self.eval_episodes, MAX_EVAL_EPISODES),
            ("eval_envs", self.eval_envs, MAX_ENVS),
        ] {
            if value == 0 {
                bail!("{field} must be at least 1");
            }
            if value > max {
                bail!("{field} must be at most {max}, got {value}");
            }
        }
        for (field, value) in [
            ("offline_steps", self.offline_steps),
            ("online_steps", self.online_steps),
            ("start_training", self.start_training),
        ] {
            if value > MAX_STEPS {
                bail!("{field} must be at most {MAX_STEPS}, got {value}");
            }
        }
        // Any interval works (a step count is bounded above): only 0 would never come round. A run keeps its latest
        // checkpoint at least.
        for (field, value) in [
            ("eval_interval", self.eval_interval),
            ("checkpoint_interval", self.checkpoint_interval),
            ("log_interval", self.log_interval),
            ("keep_checkpoints", self.keep_checkpoints),
        ] {
            if value == 0 {
                bail!("{field} must be at least 1");
            }
        }
        if let Some(threads) = self.cpu_threads {
            let max = crate::limits::MAX_THREADS;
            if threads == 0 {
                bail!("cpu_threads must be at least 1 (leave the key out for half the cores)");
            }
            if threads > max {
                bail!("cpu_threads must be at most {max}, got {threads}");
            }
        }
        if self.seed > MAX_SEED {
            bail!(seed_range_error(self.seed));
        }
        if self
            .dataset
            .as_ref()
            .is_some_and(|path| path.as_os_str().is_empty())
        {
            bail!(
                "dataset = \"\": expected the path of an .npz file (leave the key out for a run without a dataset)"
            );
        }
        Ok(())
    }
}

/// Refuses a QAM-F or QAM-E config (of agent `kind`, the file's or `--agent`'s) that writes its variant's weight as
/// 0. Left out, the weight takes its working default ([`AgentKind::variant_weight`]); written as 0 it would be taken
/// for that default too, where the paper's table (its "bold zeros") means the plain QAM run, which is `kind = "qam"`.
fn check_variant_weight_written(text: &str, kind: AgentKind) -> anyhow::Result<()> {
    let Some((key, default)) = kind.variant_weight() else {
        return Ok(());
    };
    let table: toml::Table = text.parse()?;
    let written = table
        .get("agent")
        .and_then(|agent| agent.get(key))
        .and_then(|value| value.as_float().or(value.as_integer().map(|i| i as f64)));
    if let Some(value) = written.filter(|v| *v <= 0.0) {
        bail!(
            "[agent] {key} = {value} with kind = \"{kind}\": {kind} with no {key} is plain QAM (the paper's zeros \
             for it): write kind = \"qam\" for that run, or give {key} above 0 (left out, it is {default})",
            kind = kind.as_str()
        );
    }
    Ok(())
}

/// A TOML error's text with each line past [`MAX_ERROR_LINE`] characters cut (the parser quotes the line at fault
/// whole: a config of one 600 KB line filled the terminal).
fn long_lines_cut(text: &str) -> String {
    text.lines()
        .map(|line| match line.char_indices().nth(MAX_ERROR_LINE) {
            Some((at, _)) => format!("{}...", &line[..at]),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The most characters of a line an error quotes.
const MAX_ERROR_LINE: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(&path, "offline_steps = 10\nonline_stepz = 3\n").unwrap();
        let err = format!("{:#}", TrainConfig::from_toml_file(&path).unwrap_err());
        assert!(
            err.contains("online_stepz") && err.contains("run.toml"),
            "{err}"
        );
        std::fs::write(&path, "[agent]\ninv_tmp = 3.0\n").unwrap();
        let err = format!("{:#}", TrainConfig::from_toml_file(&path).unwrap_err());
        assert!(err.contains("inv_tmp"), "{err}");
    }

    #[test]
    fn a_seed_is_read_from_0_to_the_largest_toml_integer() {
        let read = |seed: &str| TrainConfig::from_toml_str(&format!("seed = {seed}\n"), "s.toml");
        assert_eq!(read("0").unwrap().seed, 0);
        assert_eq!(read("9223372036854775807").unwrap().seed, MAX_SEED);
        for seed in ["-1", "9223372036854775808", "99999999999999999999"] {
            let err = format!("{:#}", read(seed).unwrap_err());
            assert!(
                err.contains(&format!(
                    "seed = {seed}: a seed must be from 0 to 9223372036854775807, the largest integer a run's \
                     config.toml can record"
                )) && err.contains("s.toml"),
                "{err}"
            );
        }
        let err = format!("{:#}", read("1.5").unwrap_err());
        assert!(
            err.contains("expected a whole number from 0 to 9223372036854775807"),
            "{err}"
        );
        // A configuration made otherwise (not read from TOML) is held to the same range.
        let cfg = TrainConfig {
            seed: MAX_SEED + 1,
            ..TrainConfig::default()
        };
        let err = format!("{:#}", cfg.validate_counts().unwrap_err());
        assert!(
            err.starts_with("seed = 9223372036854775808: a seed must be"),
            "{err}"
        );
        // What a run writes, it reads back.
        let cfg = TrainConfig {
            seed: MAX_SEED,
            ..TrainConfig::default()
        };
        let text = cfg.to_toml().unwrap();
        assert_eq!(
            TrainConfig::from_toml_str(&text, "run").unwrap().seed,
            MAX_SEED
        );
        text.parse::<toml::Table>().unwrap();
    }

    #[test]
    fn nested_agent_section_overrides_only_its_keys() {
        let cfg: TrainConfig = toml::from_str(
            "task = \"cube-single\"\nenvs = 4\n[agent]\nkind = \"fql\"\nnum_qs = 2\n",
        )
        .unwrap();
        assert_eq!(cfg.envs, 4);
        assert_eq!(cfg.agent.num_qs, 2);
        assert_eq!(
            cfg.agent.horizon_length,
            AgentConfig::default().horizon_length
        );
    }

    #[test]
    fn a_file_is_range_checked_on_reading_and_its_kind_after_the_flags() {
        let err = format!(
            "{:#}",
            TrainConfig::from_toml_str("[agent]\nbatch_size = 0\n", "zero.toml").unwrap_err()
        );
        assert!(
            err.contains("zero.toml") && err.contains("batch_size"),
            "{err}"
        );
        // A weight for the kind a flag will pick reads fine; the kind's consistency waits for it.
        let mut cfg = TrainConfig::from_toml_str("[agent]\nfql_alpha = 50.0\n", "f.toml").unwrap();
        assert!(cfg.agent.validate().is_err(), "kind qam with fql_alpha set");
        cfg.agent.select_kind(qamlab_agent::AgentKind::QamF);
        assert_eq!(cfg.agent.fql_alpha, 50.0, "a set weight is kept");
        cfg.agent.validate().unwrap();
        // Written as 0 for its own kind, a variant's weight is refused: the paper's zero is the plain QAM run.
        let variants = AgentKind::ALL
            .into_iter()
            .filter_map(|kind| Some((kind.as_str(), kind.variant_weight()?.0)));
        for (kind, key) in variants {
            for zero in ["0.0", "0"] {
                let text = format!("[agent]\nkind = \"{kind}\"\n{key} = {zero}\n");
                let err = format!(
                    "{:#}",
                    TrainConfig::from_toml_str(&text, "z.toml").unwrap_err()
                );
                assert!(
                    err.contains(&format!("z.toml: [agent] {key} = 0 with kind = \"{kind}\""))
                        && err.contains("write kind = \"qam\""),
                    "{err}"
                );
                // Read for another agent (`--agent qam`), the weight is that agent's to ignore.
                let path = tempfile::NamedTempFile::new().unwrap();
                std::fs::write(path.path(), &text).unwrap();
                TrainConfig::from_toml_file_as(path.path(), Some(AgentKind::Qam)).unwrap();
            }
        }
        // A kind named alone gets its weight's working default.
        let mut cfg = TrainConfig::from_toml_str("[agent]\nkind = \"qam-e\"\n", "e.toml").unwrap();
        cfg.agent.fill_variant_weight();
        assert_eq!(cfg.agent.edit_scale, 0.1);
        cfg.agent.validate().unwrap();
    }

    #[test]
    fn the_shipped_paper_config_holds_the_papers_schedule_and_networks() {
        let cfg =
            TrainConfig::from_toml_str(shipped_config_text("paper").unwrap(), "paper").unwrap();
        // qam-algorithm.md §7.2, §7.3 and §9.1.
        assert_eq!((cfg.offline_steps, cfg.online_steps), (1_000_000, 500_000));
        assert_eq!((cfg.envs, cfg.start_training, cfg.utd_ratio), (1, 5_000, 1));
        assert_eq!((cfg.eval_interval, cfg.eval_episodes), (50_000, 50));
        // The reference's agent, at the cube domain's temperature (§9.3's cube-double).
        let agent = AgentConfig {
            inv_temp: 1.0,
            ..AgentConfig::default()
        };
        assert_eq!(cfg.agent, agent);
    }

    #[test]
    fn the_toml_names_every_key_and_reads_back() {
        let cfg = TrainConfig::default();
        let text = cfg.to_toml().unwrap();
        for key in [
            "# dataset:",
            "# edit_target_entropy:",
            "# clip_grad:",
            "inv_temp = ",
        ] {
            assert!(text.contains(key), "{key} missing from\n{text}");
        }
        let again = TrainConfig::from_toml_str(&text, "printed").unwrap();
        assert_eq!(again.to_toml().unwrap(), text);
        // Set, they are keys like the others.
        let mut set = cfg.clone();
        set.dataset = Some("d.npz".into());
        set.agent.clip_grad = Some(false);
        let text = set.to_toml().unwrap();
        assert!(
            text.contains("dataset = \"d.npz\"") && text.contains("clip_grad = false"),
            "{text}"
        );
        assert!(!text.contains("# dataset:") && !text.contains("# clip_grad:"));
        // The weights another kind reads say so, and the text still reads back.
        let line = |text: &str, key: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .unwrap()
                .to_string()
        };
        assert!(line(&text, "alpha = ").ends_with("# not used by kind qam (only by fql)"));
        assert!(line(&text, "fql_alpha = ").ends_with("# not used by kind qam (only by qam-f)"));
        assert!(!line(&text, "num_qs = ").contains('#'));
        assert!(!line(&text, "inv_temp = ").contains('#'));
        let mut bc = cfg.clone();
        bc.agent.select_kind(AgentKind::Bc);
        let text = bc.to_toml().unwrap();
        assert!(
            line(&text, "inv_temp = ")
                .contains("# not used by kind bc (only by qam, qam-f and qam-e)")
        );
        assert!(
            line(&text, "num_qs = ")
                .contains("# not used by kind bc (only by qam, qam-f, qam-e and fql)")
        );
        assert_eq!(
            TrainConfig::from_toml_str(&text, "printed")
                .unwrap()
                .agent
                .kind,
            AgentKind::Bc
        );
    }

    #[test]
    fn counts_past_their_bounds_and_an_empty_dataset_path_are_named_with_the_file() {
        for (text, expected) in [
            (
                "utd_ratio = 18446744073709551615\n",
                "utd_ratio must be at most 1024, got 18446744073709551615",
            ),
            (
                "envs = 100000000000\n",
                "envs must be at most 4096, got 100000000000",
            ),
            (
                "eval_envs = 5000\n",
                "eval_envs must be at most 4096, got 5000",
            ),
            (
                "offline_steps = 18000000000000000000\n",
                "offline_steps must be at most 1000000000000, got 18000000000000000000",
            ),
            (
                "dataset = \"\"\n",
                "dataset = \"\": expected the path of an .npz file",
            ),
        ] {
            let err = format!(
                "{:#}",
                TrainConfig::from_toml_str(text, "big.toml").unwrap_err()
            );
            assert!(
                err.starts_with("config file big.toml: ") && err.contains(expected),
                "{err}"
            );
        }
        // The bounds themselves are fine, as is the paper's million steps.
        let cfg = TrainConfig::from_toml_str(
            "envs = 4096\nutd_ratio = 1024\nonline_steps = 1000000000000\n",
            "edge.toml",
        )
        .unwrap();
        assert_eq!(cfg.envs, 4096);
    }

    #[test]
    fn a_config_path_that_is_not_a_small_regular_file_is_refused() {
        let err = format!(
            "{:#}",
            TrainConfig::from_toml_file(Path::new("/dev/zero")).unwrap_err()
        );
        // A device or a pipe is read up to the limit (so `--config <(...)` works), a folder not at all.
        assert!(
            err.starts_with("config file /dev/zero is larger than 4.0 MiB"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            TrainConfig::from_toml_file(Path::new("/tmp")).unwrap_err()
        );
        assert!(
            err.contains("/tmp is a folder, not a regular file"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let huge = dir.path().join("huge.toml");
        let file = std::fs::File::create(&huge).unwrap();
        file.set_len(crate::limits::MAX_CONFIG_BYTES + 1).unwrap();
        let err = format!("{:#}", TrainConfig::from_toml_file(&huge).unwrap_err());
        assert!(err.contains("huge.toml is larger than 4.0 MiB"), "{err}");
    }

    #[test]
    fn the_command_that_trains_from_nothing_pastes_into_a_shell() {
        let plain = train_from_nothing_command("cube-single");
        assert!(
            plain.starts_with("qamlab train --task cube-single ")
                && plain.ends_with(" --offline-steps 0"),
            "{plain}"
        );
        let quoted = train_from_nothing_command("my tasks/it's.scn.ron");
        let words = shlex::split(&quoted).unwrap();
        assert_eq!(
            &words[..4],
            ["qamlab", "train", "--task", "my tasks/it's.scn.ron"],
            "{quoted}"
        );
    }

    #[test]
    fn a_run_of_no_steps_is_refused_naming_both_keys() {
        let mut cfg = TrainConfig {
            offline_steps: 0,
            online_steps: 0,
            dataset: Some("d.npz".into()),
            ..TrainConfig::default()
        };
        let err = format!("{:#}", cfg.validate().unwrap_err());
        assert!(
            err.starts_with("offline_steps = 0 and online_steps = 0: the run would train nothing")
                && err.contains("--online-steps N"),
            "{err}"
        );
        // Either phase alone is a run.
        cfg.online_steps = 1;
        cfg.validate().unwrap();
        cfg.online_steps = 0;
        cfg.offline_steps = 1;
        cfg.validate().unwrap();
    }

    #[test]
    fn offline_training_without_a_dataset_is_refused() {
        let cfg = TrainConfig::default();
        assert!(format!("{:#}", cfg.validate().unwrap_err()).contains("dataset"));
    }

    #[test]
    fn balanced_sampling_needs_a_dataset_and_an_even_batch() {
        let mut cfg = TrainConfig {
            offline_steps: 0,
            balanced_sampling: true,
            ..TrainConfig::default()
        };
        let err = format!("{:#}", cfg.validate().unwrap_err());
        assert!(
            err.contains("balanced_sampling") && err.contains("--dataset"),
            "{err}"
        );
        cfg.dataset = Some("d.npz".into());
        cfg.agent.batch_size = 255;
        let err = format!("{:#}", cfg.validate().unwrap_err());
        assert!(err.contains("batch_size = 255"), "{err}");
        cfg.agent.batch_size = 256;
        cfg.validate().unwrap();
    }

    #[test]
    fn cpu_threads_is_optional_written_when_set_and_range_checked() {
        let unset = TrainConfig::default().to_toml().unwrap();
        assert!(
            unset.contains("split_update = true\n# cpu_threads: unset (on the CPU, half the cores"),
            "{unset}"
        );
        assert_eq!(
            TrainConfig::from_toml_str(&unset, "u").unwrap().cpu_threads,
            None
        );
        let set = TrainConfig {
            cpu_threads: Some(3),
            ..TrainConfig::default()
        };
        let text = set.to_toml().unwrap();
        assert!(text.contains("\ncpu_threads = 3\n"), "{text}");
        assert_eq!(TrainConfig::from_toml_str(&text, "s").unwrap(), set);
        for (value, expected) in [
            ("0", "cpu_threads must be at least 1"),
            ("1025", "cpu_threads must be at most 1024, got 1025"),
        ] {
            let err = format!(
                "{:#}",
                TrainConfig::from_toml_str(&format!("cpu_threads = {value}\n"), "t.toml")
                    .unwrap_err()
            );
            assert!(err.contains(expected) && err.contains("t.toml"), "{err}");
        }
        assert!(default_cpu_threads() >= 1 && default_cpu_threads() <= available_cores());
    }

    #[test]
    fn a_parse_error_in_a_long_line_quotes_it_cut() {
        let text = format!("seed = [{}\n", "1, ".repeat(100_000));
        let err = format!(
            "{:#}",
            TrainConfig::from_toml_str(&text, "long.toml").unwrap_err()
        );
        assert!(err.starts_with("config file long.toml: "), "{err}");
        assert!(err.len() < 2000, "{} bytes: {}", err.len(), &err[..300]);
        assert!(err.contains("..."), "{err}");
    }
}
