//! Checkpoints in safetensors: every network under its reference name, Adam moments
//! (`optimizer/mu/<name>`, `optimizer/nu/<name>`), and in the metadata the config (JSON), step
//! counters, dimensions and seed. Written atomically (temporary file, fsync, rename), with a checksum of the
//! tensors that reading verifies (a bit flipped on disk or in a copy is an error, not a silently different run).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use tch::{Device, Kind, Tensor};

use crate::agent::Agent;
use crate::config::AgentConfig;
use crate::error::{AgentError, Result};
use crate::networks::NamedTensor;

/// Format tag stored in the metadata.
pub const FORMAT: &str = "qamlab-agent/1";

/// String metadata of a safetensors file.
pub type Metadata = HashMap<String, String>;

/// Metadata key of the tensors' checksum (see [`tensors_crc32`]); files written before it have none.
const CRC_KEY: &str = "tensors_crc32";

/// CRC-32 of every tensor's name, dtype, shape and bytes, in name order: independent of how the file lays them out.
fn tensors_crc32<'a>(
    tensors: impl IntoIterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>,
) -> u32 {
    let mut sorted: Vec<_> = tensors.into_iter().collect();
    sorted.sort_by_key(|t| t.0);
    let mut crc = crc32fast::Hasher::new();
    for (name, dtype, shape, bytes) in sorted {
        crc.update(name.as_bytes());
        // The dtype by a name of our own: the crate's Debug text may change between its versions.
        let dtype = match dtype {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
            Dtype::I64 => "i64",
            Dtype::I32 => "i32",
            Dtype::U32 => "u32",
            _ => "other",
        };
        crc.update(format!("{dtype}{shape:?}").as_bytes());
        crc.update(bytes);
    }
    crc.finalize()
}

/// A tensor's dtype, shape and little-endian bytes.
type RawTensor = (Dtype, Vec<usize>, Vec<u8>);

fn ckpt_err(path: &Path, reason: impl Into<String>) -> AgentError {
    AgentError::Checkpoint {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn dtype_of(kind: Kind) -> Option<(Dtype, Kind)> {
    match kind {
        Kind::Float => Some((Dtype::F32, Kind::Float)),
        Kind::Double => Some((Dtype::F64, Kind::Double)),
        Kind::Int64 => Some((Dtype::I64, Kind::Int64)),
        Kind::Int => Some((Dtype::I32, Kind::Int)),
        _ => None,
    }
}

/// Raw little-endian bytes of a CPU-contiguous copy of `t`.
fn tensor_bytes(t: &Tensor) -> Result<RawTensor> {
    let (dtype, _) = dtype_of(t.kind()).ok_or_else(|| AgentError::Parameter {
        name: "tensor".into(),
        reason: format!("unsupported dtype {:?}", t.kind()),
    })?;
    let t = t.detach().to_device(Device::Cpu).contiguous();
    let numel = t.numel();
    let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    t.f_copy_data_u8(&mut bytes, numel)?;
    Ok((dtype, t.size().iter().map(|&s| s as usize).collect(), bytes))
}

/// JSON objects whose keys come out sorted, whatever serde_json's map keeps.
type Sorted = std::collections::BTreeMap<String, serde_json::Value>;

/// Rewrites a serialized safetensors header with its keys sorted. The crate writes the metadata in its hash map's
/// order, which changes from run to run: sorted, the same tensors and metadata always give the same bytes. The
/// header keeps its length (the same keys and values, reordered), so the data offsets stay as they are.
fn sort_header(buffer: &mut [u8]) {
    let Some(len) = buffer
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(|b| u64::from_le_bytes(b) as usize)
    else {
        return;
    };
    let Some(text) = buffer
        .get(8..8 + len)
        .and_then(|h| std::str::from_utf8(h).ok())
    else {
        return;
    };
    let Ok(mut top) = serde_json::from_str::<Sorted>(text.trim_end()) else {
        return;
    };
    let meta = top
        .remove("__metadata__")
        .and_then(|m| serde_json::from_value::<Sorted>(m).ok());
    let entries = meta
        .iter()
        .map(|m| ("__metadata__".to_string(), object(m)))
        .chain(top.iter().map(|(k, v)| (k.clone(), v.to_string())));
    let fields: Vec<String> = entries
        .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k)))
        .collect();
    let out = format!("{{{}}}", fields.join(","));
    if out.len() <= len {
        let header = &mut buffer[8..8 + len];
        header[..out.len()].copy_from_slice(out.as_bytes());
        header[out.len()..].fill(b' ');
    }
}

/// `map` as a compact JSON object in key order.
fn object(map: &Sorted) -> String {
    let fields: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k.as_str())))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// Writes named tensors and metadata to `path` atomically.
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let raw: Vec<(String, RawTensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), tensor_bytes(t)?)))
        .collect::<Result<_>>()?;
    let mut metadata = metadata;
    let crc = tensors_crc32(
        raw.iter()
            .map(|(n, (dt, shape, bytes))| (n.as_str(), *dt, shape.as_slice(), bytes.as_slice())),
    );
    metadata.insert(CRC_KEY.into(), crc.to_string());
    let views = raw
        .iter()
        .map(|(n, (dt, shape, bytes))| {
            safetensors::tensor::TensorView::new(*dt, shape.clone(), bytes)
                .map(|v| (n.clone(), v))
                .map_err(|e| ckpt_err(path, format!("tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut buffer =
        safetensors::serialize(views, Some(metadata)).map_err(|e| ckpt_err(path, e.to_string()))?;
    sort_header(&mut buffer);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| ckpt_err(path, "not a file path"))?;
    // Unique to this write (two threads of a process may save at once), and named `.tmp-NAME-…` like the
    // lab's other temporaries (what a killed save leaves says what it was).
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".tmp-{}-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let written = std::fs::File::create_new(&tmp)
        .and_then(|mut f| f.write_all(&buffer).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    written.map_err(|e| {
        // Nothing half-written stays behind; the file under `path`, if any, is untouched.
        let _ = std::fs::remove_file(&tmp);
        ckpt_err(path, format!("writing: {e}"))
    })?;
    // The rename is durable once the directory is (best effort: some file systems refuse to sync one).
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
    Ok(())
}

/// Why `bytes` cannot be a safetensors file, where its first bytes say so: a file given where a checkpoint is
/// expected (a dataset, a config) is named as what it is, not as a damaged checkpoint. `None` where it begins as a
/// safetensors file does (an 8-byte header length, then a JSON object), even if cut short after that.
fn not_safetensors(bytes: &[u8]) -> Option<String> {
    const EXPECTED: &str =
        "a checkpoint is a .safetensors file (agent.safetensors in a run's checkpoints/step-N/)";
    // Zip archives (an `.npz` dataset is one) begin with a local file header, or, empty, an end record.
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return Some(format!(
            "not a safetensors checkpoint: it is a zip archive, as a dataset (.npz) is; {EXPECTED}"
        ));
    }
    if bytes.starts_with(b"\x93NUMPY") {
        return Some(format!(
            "not a safetensors checkpoint: it is a NumPy array (.npy); {EXPECTED}"
        ));
    }
    if bytes.len() < 8 {
        return Some(format!(
            "{} bytes long, too short for a safetensors header (8 bytes of length, then JSON): the file is \
             truncated or not a checkpoint",
            bytes.len()
        ));
    }
    // The header is a JSON object right after its length; a file cut short within it still shows its `{`.
    match bytes.get(8) {
        Some(b'{') | None => None,
        Some(_) => Some(format!(
            "not a safetensors checkpoint: it does not begin with a safetensors header (an 8-byte length, then \
             a JSON object); {EXPECTED}"
        )),
    }
}

/// Reads every tensor (f32/f64/i64/i32) and the metadata of a safetensors file; a truncated or
/// malformed file is an error, never a panic.
pub fn read_tensors(path: &Path) -> Result<(Vec<NamedTensor>, Metadata)> {
    // A device or a FIFO under the name (a symlink to /dev/zero) would be read without end.
    let kind = std::fs::metadata(path)
        .map_err(|e| ckpt_err(path, e.to_string()))?
        .file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a folder"
        } else {
            "not a regular file (a device, FIFO or socket)"
        };
        return Err(ckpt_err(
            path,
            format!("is {what}; a checkpoint is a .safetensors file"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| ckpt_err(path, e.to_string()))?;
    if let Some(what) = not_safetensors(&bytes) {
        return Err(ckpt_err(path, what));
    }
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| ckpt_err(path, format!("unreadable or truncated: {e}")))?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| ckpt_err(path, e.to_string()))?;
    if let Some(recorded) = meta.metadata().as_ref().and_then(|m| m.get(CRC_KEY)) {
        let tensors = st.tensors();
        let crc = tensors_crc32(
            tensors
                .iter()
                .map(|(n, v)| (n.as_str(), v.dtype(), v.shape(), v.data())),
        );
        if recorded != &crc.to_string() {
            return Err(ckpt_err(
                path,
                format!(
                    "its tensors' checksum is {crc}, the file records {recorded}: the file is damaged (a bit \
                     changed on disk or in a copy)"
                ),
            ));
        }
    }
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let shape: Vec<i64> = view.shape().iter().map(|&s| s as i64).collect();
        if view.dtype() == Dtype::U32 {
            // widened to i64 (torch has no general u32 support)
            let v: Vec<i64> = view
                .data()
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect();
            out.push((name, Tensor::from_slice(&v).reshape(&shape)));
            continue;
        }
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::F64 => Kind::Double,
            Dtype::I64 => Kind::Int64,
            Dtype::I32 => Kind::Int,
            other => {
                return Err(ckpt_err(
                    path,
                    format!("tensor {name}: unsupported dtype {other:?}"),
                ));
            }
        };
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)?;
        out.push((name, t));
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
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
}
