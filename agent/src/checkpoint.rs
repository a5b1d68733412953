//! Checkpoints of an agent in safetensors: every network under its reference name, Adam moments
//! (`optimizer/mu/<name>`, `optimizer/nu/<name>`), and in the metadata the config (JSON), step counters, dimensions
//! and seed. Written atomically (temporary file, fsync, rename: [`StagedFile`]), with a checksum of the tensors that
//! reading verifies (a bit flipped on disk or in a copy is an error, not a silently different run).
//!
//! The file format, which headless's replay buffer file uses too, is `tensor_file`'s, re-exported here: named
//! arrays streamed to and from the file ([`write_tensor_data`], [`TensorFile`]), checksummed. `staged_file` is the
//! lab's one way to write a file atomically ([`StagedFile`]).

use std::collections::HashMap;
use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::agent::Agent;
use crate::config::AgentConfig;
use crate::error::{AgentError, Result};

mod staged_file;
mod tensor_file;

pub use staged_file::{
    StagedFile, is_being_written, parent_dir, staged_here, sync_dir, temporary_prefix,
};
use tensor_file::{CRC_KEY, ckpt_err};
pub use tensor_file::{
    Dtype, Metadata, STREAMING_BYTES, TensorData, TensorFile, read_tensors, write_tensor_data,
    write_tensors,
};

/// Format tag stored in the metadata.
pub const FORMAT: &str = "qamlab-agent/1";

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
    /// truncated file, missing metadata, or a tensor whose name or shape does not match the agent
    /// the stored config describes (naming the tensor and both shapes).
    pub fn load(path: impl AsRef<Path>, device: Device) -> Result<Agent> {
        Ok(Self::load_with_metadata(path, device)?.0)
    }

    /// Restores an agent as [`Agent::load`] does, with the file's whole string metadata (the agent's own keys and
    /// what [`Agent::save_with_metadata`] added).
    pub fn load_with_metadata(path: impl AsRef<Path>, device: Device) -> Result<(Agent, Metadata)> {
        let path = path.as_ref();
        let (tensors, meta) = read_tensors(path)?;
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
        let mut agent = Agent::new(
            cfg,
            num("obs_dim")? as usize,
            num("action_dim")? as usize,
            device,
            num("seed")?,
        )
        .map_err(|e| match e {
            // What the file records cannot make an agent: the file's fault, named.
            AgentError::Config { .. } => ckpt_err(path, e.to_string()),
            other => other,
        })?;
        let lookup: HashMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut expected: Vec<(String, Tensor)> = agent.parameters();
        for (name, mu, nu) in &agent.adam.moments {
            expected.push((format!("optimizer/mu/{name}"), mu.shallow_clone()));
            expected.push((format!("optimizer/nu/{name}"), nu.shallow_clone()));
        }
        for (name, _) in &tensors {
            if !expected.iter().any(|(n, _)| n == name) {
                return Err(ckpt_err(
                    path,
                    format!(
                        "tensor {name} is not part of a {} agent",
                        agent.cfg.kind.as_str()
                    ),
                ));
            }
        }
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
