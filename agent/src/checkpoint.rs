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
        write_tensors(path, &tensors, meta)
    }

    /// Restores an agent saved by [`Agent::save`] onto `device`. Errors (never panics) on a
    /// truncated file, missing metadata, or a tensor whose name or shape does not match the agent
    /// the stored config describes (naming the tensor and both shapes).
    pub fn load(path: impl AsRef<Path>, device: Device) -> Result<Agent> {
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
        Ok(agent)
    }
}
