//! Checkpoints of an agent in safetensors: every network under its reference name, Adam moments
//! (`optimizer/mu/<name>`, `optimizer/nu/<name>`), and in the metadata the config (JSON), step counters, dimensions
//! and seed. Written atomically (temporary file, fsync, rename: [`StagedFile`]), with a checksum of the tensors that
//! reading verifies (a bit flipped on disk or in a copy is an error, not a silently different run).
//!
//! The file format, which headless's replay buffer file uses too, is `tensor_file`'s, re-exported here: named
//! arrays streamed to and from the file ([`write_tensor_data`], [`TensorFile`]), checksummed. `staged_file` is the
//! lab's one way to write a file atomically ([`StagedFile`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::agent::Agent;
use crate::config::AgentConfig;
use crate::error::{AgentError, Result};
use crate::footprint::format_bytes;

mod staged_file;
mod tensor_file;

pub use staged_file::{
    StagedFile, is_being_written, parent_dir, staged_here, sync_dir, temporary_prefix,
};
use tensor_file::{CRC_KEY, ckpt_err, read_all};
pub use tensor_file::{
    Dtype, Metadata, STREAMING_BYTES, TensorData, TensorFile, read_tensors, write_tensor_data,
    write_tensors,
};

/// Format tag stored in the metadata.
pub const FORMAT: &str = "qamlab-agent/1";

/// The CRC-32 of a file's tensors as its metadata records it (which reading verifies): an identity of the agent a
/// checkpoint holds. None for files written before it was recorded.
pub fn recorded_crc32(metadata: &Metadata) -> Option<u32> {
    metadata.get(CRC_KEY)?.parse().ok()
}

impl Agent {
    /// Saves networks, optimiser state, config, counters and seed to `path` (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_with_metadata(path, &Metadata::new())
    }

    /// Saves as [`Agent::save`] does, with `extra` string metadata beside the agent's own (a checkpoint's id, which
    /// the other files of the checkpoint record too); [`Agent::load_with_metadata`] gives it back. A key of the
    /// agent's own is refused.
    pub fn save_with_metadata(&self, path: impl AsRef<Path>, extra: &Metadata) -> Result<()> {
        let path = path.as_ref();
        let mut tensors = self.parameters();
        for (name, mu, nu) in &self.adam.moments {
            tensors.push((format!("optimizer/mu/{name}"), mu.shallow_clone()));
            tensors.push((format!("optimizer/nu/{name}"), nu.shallow_clone()));
        }
        let config = serde_json::to_string(&self.cfg).map_err(|e| ckpt_err(path, e.to_string()))?;
        let meta: HashMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("config", config),
            ("step", self.step.to_string()),
            ("optimizer_count", self.adam.count.to_string()),
            ("act_calls", self.act_calls.to_string()),
            ("obs_dim", self.obs_dim.to_string()),
            ("action_dim", self.action_dim.to_string()),
            ("seed", self.seed.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut meta = meta;
        for (key, value) in extra {
            if meta.contains_key(key) || key == CRC_KEY {
                return Err(ckpt_err(
                    path,
                    format!(
                        "metadata key {key} is the agent's own: give extra metadata another name"
                    ),
                ));
            }
            meta.insert(key.clone(), value.clone());
        }
        write_tensors(path, &tensors, meta)
    }

    /// Restores an agent saved by [`Agent::save`] onto `device`. Errors (never panics) on a
    /// truncated file, missing metadata, metadata describing networks larger than the file's tensors
    /// (checked before the agent is built), or a tensor whose name or shape does not match the agent
    /// the stored config describes (naming the tensor and both shapes; names are checked from the
    /// file's header, before any tensor is read).
    pub fn load(path: impl AsRef<Path>, device: Device) -> Result<Agent> {
        Ok(Self::load_with_metadata(path, device)?.0)
    }

    /// Restores an agent as [`Agent::load`] does, with the file's whole string metadata (the agent's own keys and
    /// what [`Agent::save_with_metadata`] added).
    pub fn load_with_metadata(path: impl AsRef<Path>, device: Device) -> Result<(Agent, Metadata)> {
        let path = path.as_ref();
        // The header alone first: what the metadata describes is checked against what the file holds before the
        // agent is built or any tensor read, so a forged config or header costs neither memory nor time.
        let file = TensorFile::open(path)?;
        let meta = file.metadata().clone();
        let get = |key: &str| {
            meta.get(key)
                .ok_or_else(|| ckpt_err(path, format!("metadata key {key} missing")))
        };
        let num = |key: &str| -> Result<u64> {
            get(key)?
                .parse::<u64>()
                .map_err(|e| ckpt_err(path, format!("metadata {key}: {e}")))
        };
        // A count a run adds to (a seed may be any u64).
        let count = |key: &str| -> Result<u64> {
            let n = num(key)?;
            if n > Agent::MAX_COUNT {
                return Err(ckpt_err(
                    path,
                    format!(
                        "metadata {key} = {n} is past any run's count (at most 2^53): the file is damaged"
                    ),
                ));
            }
            Ok(n)
        };
        if get("format")? != FORMAT {
            return Err(ckpt_err(
                path,
                format!("format {:?}, expected {FORMAT:?}", get("format")?),
            ));
        }
        let cfg: AgentConfig = serde_json::from_str(get("config")?)
            .map_err(|e| ckpt_err(path, format!("config: {e}")))?;
        let (obs_dim, action_dim) = (num("obs_dim")? as usize, num("action_dim")? as usize);
        // What the file records cannot make an agent: the file's fault, named.
        let recorded = |e: AgentError| match e {
            AgentError::Config { .. } => ckpt_err(path, e.to_string()),
            other => other,
        };
        // A setting out of its range is named as such, before the sizes it makes are weighed.
        cfg.validate().map_err(recorded)?;
        check_room(&file, &cfg, obs_dim, action_dim)?;
        let mut agent =
            Agent::new(cfg, obs_dim, action_dim, device, num("seed")?).map_err(recorded)?;
        let mut expected: Vec<(String, Tensor)> = agent.parameters();
        for (name, mu, nu) in &agent.adam.moments {
            expected.push((format!("optimizer/mu/{name}"), mu.shallow_clone()));
            expected.push((format!("optimizer/nu/{name}"), nu.shallow_clone()));
        }
        // Names from the header, before any tensor is read: a file of a million foreign tensors is refused at once.
        let known: HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        if let Some(name) = file
            .names()
            .into_iter()
            .find(|n| !known.contains(n.as_str()))
        {
            return Err(ckpt_err(
                path,
                format!(
                    "tensor {name} is not part of a {} agent",
                    agent.cfg.kind.as_str()
                ),
            ));
        }
        let (tensors, _) = read_all(file)?;
        let lookup: HashMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        for (name, mut dst) in expected {
            let src = lookup
                .get(name.as_str())
                .ok_or_else(|| ckpt_err(path, format!("tensor {name} missing")))?;
            if src.size() != dst.size() || src.kind() != Kind::Float {
                return Err(ckpt_err(
                    path,
                    format!(
                        "tensor {name}: expected shape {:?} (f32), file has {:?} ({:?})",
                        dst.size(),
                        src.size(),
                        src.kind()
                    ),
                ));
            }
            // Training never saves a diverged agent, so a NaN or an infinity here is damage.
            if src.isfinite().all().int64_value(&[]) == 0 {
                return Err(ckpt_err(
                    path,
                    format!("tensor {name} holds non-finite values: the file is damaged"),
                ));
            }
            // Adam's second moments are running means of squares.
            if name.starts_with("optimizer/nu/") && src.lt(0.0).any().int64_value(&[]) != 0 {
                return Err(ckpt_err(
                    path,
                    format!(
                        "tensor {name} holds negative values, but second moments are means of squares: the file \
                         is damaged"
                    ),
                ));
            }
            tch::no_grad(|| dst.f_copy_(src))?;
        }
        agent.step = count("step")?;
        agent.adam.count = count("optimizer_count")?;
        agent.act_calls = count("act_calls")?;
        Ok((agent, meta))
    }
}

/// Refuses a checkpoint whose metadata describes networks larger than the tensors `file` holds (`cfg` for
/// `obs_dim`-D observations and `action_dim`-D actions): building the agent allocates what its config says, which a
/// damaged or forged file could make terabytes. Names the file and both sizes.
fn check_room(
    file: &TensorFile,
    cfg: &AgentConfig,
    obs_dim: usize,
    action_dim: usize,
) -> Result<()> {
    let held = file.names().iter().try_fold(0u64, |sum, name| {
        let (dtype, shape) = file.info(name)?;
        let values = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))?;
        sum.checked_add(values.checked_mul(dtype.bitsize() as u64)? / 8)
    });
    // Without a batch, the footprint is the networks' alone: 4 bytes a value of 5 x the trainable parameters (with
    // their gradients and Adam's moments) and the targets once; a checkpoint stores 3 x the trainable ones (each
    // with its two moments) and the targets, so at least 3/5 of it (more: LayerNorms are left out of the bound).
    let unbatched = AgentConfig {
        batch_size: 0,
        ..cfg.clone()
    };
    let needed = crate::footprint::memory_lower_bound(&unbatched, obs_dim, action_dim)
        .and_then(|bound| bound.checked_mul(3))
        .map(|bound| bound / 5);
    let fits = matches!((needed, held), (Some(needed), Some(held)) if needed <= held);
    if !fits {
        let shown =
            |bytes: Option<u64>| bytes.map_or_else(|| "more than 16 EiB".to_string(), format_bytes);
        return Err(ckpt_err(
            file.path(),
            format!(
                "its metadata describes a {} agent of {} of parameters at least ({obs_dim}-D observations, \
                 {action_dim}-D actions, actor_hidden_dims {:?}, value_hidden_dims {:?}, num_qs {}), but its \
                 tensors hold {}: the file is damaged or not what it says",
                cfg.kind.as_str(),
                shown(needed),
                cfg.actor_hidden_dims,
                cfg.value_hidden_dims,
                cfg.num_qs,
                shown(held)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentKind;

    fn tiny_agent() -> Agent {
        let cfg = AgentConfig {
            kind: AgentKind::Qam,
            batch_size: 8,
            actor_hidden_dims: vec![8],
            value_hidden_dims: vec![8],
            horizon_length: 2,
            num_qs: 2,
            flow_steps: 2,
            ..AgentConfig::default()
        };
        Agent::new(cfg, 3, 2, Device::Cpu, 7).unwrap()
    }
    #[test]
    fn a_checkpoint_keeps_its_extra_metadata_and_refuses_to_shadow_the_agents_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.safetensors");
        let agent = tiny_agent();
        let extra: Metadata = [("checkpoint_id".to_string(), "00ff".to_string())].into();
        agent.save_with_metadata(&path, &extra).unwrap();
        let (loaded, meta) = Agent::load_with_metadata(&path, Device::Cpu).unwrap();
        assert_eq!(meta.get("checkpoint_id").map(String::as_str), Some("00ff"));
        assert_eq!(loaded.seed(), 7);
        let clash: Metadata = [("seed".to_string(), "1".to_string())].into();
        let err = agent
            .save_with_metadata(&path, &clash)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("metadata key seed is the agent's own"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_no_safetensors_checkpoint_is_named_as_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let load = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            Agent::load(&path, Device::Cpu).err().unwrap().to_string()
        };
        // An .npz dataset is a zip archive.
        let err = load(
            "data.npz",
            b"PK\x03\x04\x14\x00\x00\x00\x00\x00 rest of a zip",
        );
        assert!(
            err.starts_with("checkpoint ")
                && err.contains("data.npz: not a safetensors checkpoint: it is a zip archive, as a dataset (.npz) is"),
            "{err}"
        );
        let err = load("config.toml", b"task = \"cube-single\"\nseed = 0\n");
        assert!(
            err.contains("config.toml: not a safetensors checkpoint: it does not begin with a safetensors header"),
            "{err}"
        );
        let err = load("tiny", b"{}");
        assert!(err.contains("2 bytes long, too short"), "{err}");
        // A checkpoint cut short within its header is still called that.
        let path = dir.path().join("agent.safetensors");
        tiny_agent().save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let err = load("cut.safetensors", &bytes[..40]);
        assert!(err.contains("unreadable or truncated"), "{err}");
    }

    /// Rewrites the checkpoint at `path` with `edit` applied to its tensors and metadata (its checksum recomputed).
    fn rewrite(path: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>, &mut Metadata)) {
        let (mut tensors, mut meta) = read_tensors(path).unwrap();
        meta.remove(CRC_KEY);
        edit(&mut tensors, &mut meta);
        write_tensors(path, &tensors, meta).unwrap();
    }

    #[test]
    fn every_kind_of_agent_fits_the_tensors_its_checkpoint_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.safetensors");
        for kind in AgentKind::ALL {
            for (chunking, layer_norm) in [(true, true), (false, false)] {
                let mut cfg = AgentConfig {
                    batch_size: 4096,
                    actor_hidden_dims: vec![16, 8],
                    value_hidden_dims: vec![8, 4],
                    action_chunking: chunking,
                    actor_layer_norm: layer_norm,
                    value_layer_norm: layer_norm,
                    horizon_length: 3,
                    num_qs: 3,
                    flow_steps: 2,
                    ..AgentConfig::default()
                };
                cfg.select_kind(kind);
                Agent::new(cfg, 5, 2, Device::Cpu, 1)
                    .unwrap()
                    .save(&path)
                    .unwrap();
                Agent::load(&path, Device::Cpu).unwrap();
            }
        }
    }

    #[test]
    fn a_config_larger_than_the_tensors_the_file_holds_is_refused_before_building_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.safetensors");
        tiny_agent().save(&path).unwrap();
        // Eight layers 65536 wide: 128 GiB of parameters, which building the agent would allocate at once.
        rewrite(&path, |_, meta| {
            let mut cfg: AgentConfig = serde_json::from_str(&meta["config"]).unwrap();
            cfg.actor_hidden_dims = vec![crate::config::MAX_WIDTH; 8];
            meta.insert("config".into(), serde_json::to_string(&cfg).unwrap());
        });
        let err = Agent::load(&path, Device::Cpu).err().unwrap().to_string();
        assert!(
            err.starts_with(&format!("checkpoint {}: its metadata describes a qam agent of ", path.display()))
                && err.contains("739.2 GiB of parameters at least (3-D observations, 2-D actions, actor_hidden_dims [65536, ")
                && err.contains("but its tensors hold ")
                && err.ends_with("KiB: the file is damaged or not what it says"),
            "{err}"
        );
    }

    #[test]
    fn a_foreign_tensor_is_named_from_the_header_before_any_tensor_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.safetensors");
        tiny_agent().save(&path).unwrap();
        rewrite(&path, |tensors, _| {
            tensors.extend((0..3).map(|i| {
                (
                    format!("t{i}"),
                    Tensor::zeros([0], (Kind::Float, Device::Cpu)),
                )
            }));
        });
        // Its data damaged too: reading the tensors would fail on their checksum, after reading them all.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        let err = Agent::load(&path, Device::Cpu).err().unwrap().to_string();
        assert!(
            err.contains(": tensor t") && err.ends_with(" is not part of a qam agent"),
            "{err}"
        );
    }

    #[test]
    fn a_save_removes_the_temporary_a_killed_save_of_its_file_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("saved.safetensors");
        // What a save killed midway (the viewer's "save checkpoint") leaves: a temporary of the file's name.
        let killed = dir
            .path()
            .join(format!("{}Killed", temporary_prefix("saved.safetensors")));
        let file = std::fs::File::create(&killed).unwrap();
        file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60))
            .unwrap();
        tiny_agent().save(&path).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("saved.safetensors")]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}
