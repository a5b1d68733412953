//! The streaming safetensors format checkpoints are written in (the agent's, and headless's replay buffer's): named
//! arrays and string metadata, the header's keys sorted so that the same arrays always give the same bytes, with a
//! checksum of the tensors that reading verifies (a bit flipped on disk or in a copy is an error, not a silently
//! different run). Written atomically ([`StagedFile`]).
//!
//! A replay buffer's arrays stream between the file and their own memory: [`write_tensor_data`] writes its
//! vectors through one small buffer, and [`TensorFile::read_f32_into`] reads each array straight into its vector,
//! so a buffer of gigabytes takes no second copy (only [`STREAMING_BYTES`] besides it). The networks' tensors, a
//! few megabytes, are copied once on the way ([`write_tensors`], [`TensorFile::read_tensor`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The dtypes a safetensors file names (the crate's own).
pub use safetensors::Dtype;
use safetensors::SafeTensorError;
use safetensors::tensor::TensorInfo;
use tch::{Device, Kind, Tensor};

use super::StagedFile;
use crate::error::{AgentError, Result};
use crate::networks::NamedTensor;

/// String metadata of a safetensors file.
pub type Metadata = HashMap<String, String>;

/// Metadata key of the tensors' checksum: the CRC-32 of every tensor's name, dtype, shape and bytes, tensor after
/// tensor in name order (independent of how the file lays them out). Files written before it have none.
pub(super) const CRC_KEY: &str = "tensors_crc32";

/// Bytes of the buffer a file is written through, or read in.
const IO_BUFFER_BYTES: usize = 1 << 20;

/// Values turned into little-endian bytes at a time, for the checksum and the file.
const CONVERT_VALUES: usize = 16 << 10;

/// The most memory that writing or reading a checkpoint takes besides its arrays (and its header): the buffer the
/// file goes through, and the chunk of values being turned into bytes.
pub const STREAMING_BYTES: u64 = (IO_BUFFER_BYTES + CONVERT_VALUES * 8) as u64;

/// The longest header read: qamlab's files hold a few thousand tensors at most (an agent of 64-layer networks about
/// 6000, some 100 bytes each in the header) and a few metadata strings. Parsing one takes some 20 times its length
/// of memory: safetensors' own limit, 100 MB, let a forged header of a million empty tensors take 1.6 GB.
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// The dtype by a name of our own in the checksum: the crate's Debug text may change between its versions.
fn dtype_name(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::F32 => "f32",
        Dtype::F64 => "f64",
        Dtype::I64 => "i64",
        Dtype::I32 => "i32",
        Dtype::U32 => "u32",
        _ => "other",
    }
}

/// A tensor's part of the checksum (see [`CRC_KEY`]) up to its bytes, which follow: its name, dtype and shape.
fn crc_start(name: &str, dtype: Dtype, shape: &[usize]) -> crc32fast::Hasher {
    let mut crc = crc32fast::Hasher::new();
    crc.update(name.as_bytes());
    crc.update(format!("{}{shape:?}", dtype_name(dtype)).as_bytes());
    crc
}

/// A tensor's dtype, shape and little-endian bytes.
type RawTensor = (Dtype, Vec<usize>, Vec<u8>);

pub(super) fn ckpt_err(path: &Path, reason: impl Into<String>) -> AgentError {
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

/// An array to write into a checkpoint: its shape and values, borrowed where they are (a replay buffer's vectors,
/// not a copy of them), in one part or in several that follow each other (the episodes of several envs).
pub struct TensorData<'a> {
    dtype: Dtype,
    shape: Vec<usize>,
    parts: Vec<Part<'a>>,
}

/// Values of a [`TensorData`], as they are in memory.
#[derive(Clone, Copy)]
enum Part<'a> {
    /// Little-endian bytes.
    Bytes(&'a [u8]),
    F32(&'a [f32]),
    I64(&'a [i64]),
}

/// `values` as little-endian bytes into `scratch`, `bytes` turning one value into its.
fn to_le_bytes<T: Copy, const N: usize>(
    values: &[T],
    scratch: &mut Vec<u8>,
    bytes: fn(T) -> [u8; N],
) {
    scratch.clear();
    scratch.resize(values.len() * N, 0);
    for (out, &value) in scratch.chunks_exact_mut(N).zip(values) {
        out.copy_from_slice(&bytes(value));
    }
}

impl<'a> TensorData<'a> {
    /// A float32 array of `shape`, its values the `parts` one after another.
    pub fn f32(shape: &[usize], parts: impl IntoIterator<Item = &'a [f32]>) -> Self {
        Self {
            dtype: Dtype::F32,
            shape: shape.to_vec(),
            parts: parts.into_iter().map(Part::F32).collect(),
        }
    }

    /// An int64 array of `shape`, its values the `parts` one after another.
    pub fn i64(shape: &[usize], parts: impl IntoIterator<Item = &'a [i64]>) -> Self {
        Self {
            dtype: Dtype::I64,
            shape: shape.to_vec(),
            parts: parts.into_iter().map(Part::I64).collect(),
        }
    }

    /// An array of `dtype` and `shape` whose little-endian bytes are `bytes`.
    fn bytes(dtype: Dtype, shape: Vec<usize>, bytes: &'a [u8]) -> Self {
        Self {
            dtype,
            shape,
            parts: vec![Part::Bytes(bytes)],
        }
    }

    /// Bytes of its values.
    fn byte_len(&self) -> usize {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Bytes(b) => b.len(),
                Part::F32(v) => v.len() * 4,
                Part::I64(v) => v.len() * 8,
            })
            .sum()
    }

    /// Hands its values' little-endian bytes to `f`, chunk after chunk (values are turned into bytes in
    /// `scratch`, [`CONVERT_VALUES`] at a time).
    fn for_each_chunk<E>(
        &self,
        scratch: &mut Vec<u8>,
        mut f: impl FnMut(&[u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        for part in &self.parts {
            match *part {
                Part::Bytes(bytes) => f(bytes)?,
                Part::F32(values) => {
                    for chunk in values.chunks(CONVERT_VALUES) {
                        to_le_bytes(chunk, scratch, f32::to_le_bytes);
                        f(scratch)?;
                    }
                }
                Part::I64(values) => {
                    for chunk in values.chunks(CONVERT_VALUES) {
                        to_le_bytes(chunk, scratch, i64::to_le_bytes);
                        f(scratch)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Writes named tensors and metadata to `path` atomically: their bytes are copied off the tensors (which may live
/// on a GPU) first; arrays in memory of their own stream from it with [`write_tensor_data`].
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let raw: Vec<(String, RawTensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), tensor_bytes(t)?)))
        .collect::<Result<_>>()?;
    let data: Vec<(String, TensorData<'_>)> = raw
        .iter()
        .map(|(n, (dtype, shape, bytes))| {
            (n.clone(), TensorData::bytes(*dtype, shape.clone(), bytes))
        })
        .collect();
    write_tensor_data(path, &data, metadata)
}

/// Writes named arrays and metadata to `path` atomically, as [`write_tensors`] writes tensors of the same values
/// (the same bytes), streaming each array from where it is through one buffer: nothing holds a copy of them.
pub fn write_tensor_data(
    path: &Path,
    tensors: &[(String, TensorData<'_>)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    for (name, t) in tensors {
        let values = t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let bytes = values
            .and_then(|n| n.checked_mul(t.dtype.bitsize()))
            .map(|bits| bits / 8);
        if bytes != Some(t.byte_len()) {
            return Err(ckpt_err(
                path,
                format!(
                    "tensor {name}: shape {:?} of {:?} does not take its {} bytes of values",
                    t.shape,
                    t.dtype,
                    t.byte_len()
                ),
            ));
        }
    }
    // The checksum goes into the header, before the arrays: a first pass over them reads memory, copying nothing.
    let mut scratch = Vec::new();
    let mut by_name: Vec<&(String, TensorData<'_>)> = tensors.iter().collect();
    by_name.sort_by(|a, b| a.0.cmp(&b.0));
    let mut crc = crc32fast::Hasher::new();
    for (name, t) in by_name {
        let mut part = crc_start(name, t.dtype, &t.shape);
        let Ok(()) = t.for_each_chunk::<Infallible>(&mut scratch, |bytes| {
            part.update(bytes);
            Ok(())
        });
        crc.combine(&part);
    }
    let mut metadata = metadata;
    metadata.insert(CRC_KEY.into(), crc.finalize().to_string());
    // The layout and header `safetensors::serialize` makes: by dtype, widest first, then by name; the header
    // padded with spaces to 8 bytes, then its keys sorted.
    let mut layout: Vec<&(String, TensorData<'_>)> = tensors.iter().collect();
    layout.sort_by(|(l, left), (r, right)| right.dtype.cmp(&left.dtype).then(l.cmp(r)));
    let mut offset = 0;
    let infos = layout
        .iter()
        .map(|(name, t)| {
            let start = offset;
            offset += t.byte_len();
            let info = TensorInfo {
                dtype: t.dtype,
                shape: t.shape.clone(),
                data_offsets: (start, offset),
            };
            (name.clone(), info)
        })
        .collect();
    let header = safetensors::tensor::Metadata::new(Some(metadata), infos)
        .map_err(|e| ckpt_err(path, e.to_string()))?;
    let mut json = serde_json::to_string(&header)
        .map_err(|e| ckpt_err(path, e.to_string()))?
        .into_bytes();
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut head = (json.len() as u64).to_le_bytes().to_vec();
    head.extend(json);
    sort_header(&mut head);
    write_atomically(path, |file| {
        let mut out = BufWriter::with_capacity(IO_BUFFER_BYTES, file);
        out.write_all(&head)?;
        for (_, t) in &layout {
            t.for_each_chunk(&mut scratch, |bytes| out.write_all(bytes))?;
        }
        out.flush()
    })
}

/// Writes `path` by `write` into a temporary file beside it, synced, then renamed to it ([`StagedFile`]): a failed
/// or killed write leaves the file under `path`, if any, as it was.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    if path.file_name().is_none() {
        return Err(ckpt_err(path, "not a file path"));
    }
    // Dropped on an error, the temporary file is removed: nothing half-written stays behind.
    let written = StagedFile::create(path).and_then(|mut staged| {
        write(staged.file_mut())?;
        staged.make_readable()?;
        staged.sync()?;
        staged.put_in_place()
    });
    written.map_err(|e| ckpt_err(path, format!("writing: {e}")))
}

/// Why `bytes` cannot be a safetensors file, where its first bytes say so: a file given where a checkpoint is
/// expected (a dataset, a config) is named as what it is, not as a damaged checkpoint. `None` where it begins as a
/// safetensors file does (an 8-byte header length, then a JSON object), even if cut short after that. `bytes` are
/// the file's first 9 at least, or the whole file.
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

/// The torch kind a tensor of `dtype` is read as (`u32` is widened to `i64`: torch has no general u32 support).
fn kind_of(dtype: Dtype) -> Option<Kind> {
    match dtype {
        Dtype::F32 => Some(Kind::Float),
        Dtype::F64 => Some(Kind::Double),
        Dtype::I64 | Dtype::U32 => Some(Kind::Int64),
        Dtype::I32 => Some(Kind::Int),
        _ => None,
    }
}

/// A safetensors file open for reading, array by array, straight into where each array goes: its header is read
/// and checked on opening (a file cut short is refused then), and [`TensorFile::verify`] checks the tensors'
/// checksum, reading again only what was not read whole. Reading holds one buffer of the file
/// ([`STREAMING_BYTES`] at most), never a copy of the whole file.
pub struct TensorFile {
    path: PathBuf,
    file: File,
    /// Where the arrays begin: after the header's length and the header.
    data_start: u64,
    header: safetensors::tensor::Metadata,
    metadata: Metadata,
    /// The checksum's part of each tensor read whole so far (see [`CRC_KEY`]).
    parts: HashMap<String, crc32fast::Hasher>,
    /// The buffer the file is read in (allocated at the first read).
    buffer: Vec<u8>,
}

impl TensorFile {
    /// Opens `path`, reading and checking its header: a file that is not a safetensors file, or is cut short or
    /// malformed, is an error naming it, never a panic.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
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
        let io = |e: std::io::Error| ckpt_err(path, e.to_string());
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut start = Vec::with_capacity(9);
        (&mut file).take(9).read_to_end(&mut start).map_err(io)?;
        if let Some(what) = not_safetensors(&start) {
            return Err(ckpt_err(path, what));
        }
        let unreadable =
            |e: SafeTensorError| ckpt_err(path, format!("unreadable or truncated: {e}"));
        let n = u64::from_le_bytes(start[..8].try_into().expect("8 bytes at least"));
        if n > MAX_HEADER_BYTES {
            return Err(unreadable(SafeTensorError::HeaderTooLarge));
        }
        let data_start = 8 + n;
        if data_start > len {
            return Err(unreadable(SafeTensorError::InvalidHeaderLength));
        }
        let mut text = vec![0; n as usize];
        file.seek(SeekFrom::Start(8))
            .and_then(|_| file.read_exact(&mut text))
            .map_err(io)?;
        let text = std::str::from_utf8(&text)
            .map_err(|e| unreadable(SafeTensorError::InvalidHeader(e)))?;
        // Parsing checks the arrays' offsets: one after another from 0, each as long as its dtype and shape say.
        let header: safetensors::tensor::Metadata = serde_json::from_str(text)
            .map_err(|e| unreadable(SafeTensorError::InvalidHeaderDeserialization(e)))?;
        if (header.data_len() as u64).checked_add(data_start) != Some(len) {
            return Err(unreadable(SafeTensorError::MetadataIncompleteBuffer));
        }
        let metadata = header.metadata().clone().unwrap_or_default();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            data_start,
            header,
            metadata,
            parts: HashMap::new(),
            buffer: Vec::new(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's string metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The names of its tensors, in the order of their data in the file.
    pub fn names(&self) -> Vec<String> {
        self.header.offset_keys()
    }

    /// Tensor `name`'s dtype and shape, if the file has it.
    pub fn info(&self, name: &str) -> Option<(Dtype, &[usize])> {
        self.header
            .info(name)
            .map(|info| (info.dtype, info.shape.as_slice()))
    }

    fn err(&self, reason: impl Into<String>) -> AgentError {
        ckpt_err(&self.path, reason)
    }

    /// Tensor `name`'s dtype, shape and bytes' offsets in the data.
    fn tensor_info(&self, name: &str) -> Result<(Dtype, Vec<usize>, (usize, usize))> {
        let info = self
            .header
            .info(name)
            .ok_or_else(|| self.err(format!("tensor {name} missing")))?;
        Ok((info.dtype, info.shape.clone(), info.data_offsets))
    }

    /// Reads bytes `bytes` of tensor `name` through the buffer, handing them to `f` a buffer at a time; a read of
    /// the whole tensor keeps its part of the checksum, for [`TensorFile::verify`].
    fn stream(
        &mut self,
        name: &str,
        bytes: Range<usize>,
        mut f: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let (dtype, shape, (start, end)) = self.tensor_info(name)?;
        if bytes.start > bytes.end || bytes.end > end - start {
            return Err(self.err(format!(
                "tensor {name}: bytes {bytes:?} are past its {}",
                end - start
            )));
        }
        let mut crc = (bytes == (0..end - start)).then(|| crc_start(name, dtype, &shape));
        if self.buffer.is_empty() {
            self.buffer = vec![0; IO_BUFFER_BYTES];
        }
        let at = self.data_start + (start + bytes.start) as u64;
        let read = |e: std::io::Error| {
            let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "the file was cut short while it was read".to_string()
            } else {
                e.to_string()
            };
            ckpt_err(&self.path, format!("reading tensor {name}: {why}"))
        };
        self.file.seek(SeekFrom::Start(at)).map_err(read)?;
        let mut left = bytes.len();
        while left > 0 {
            // The buffer holds whole values of every dtype (its length is a multiple of 8).
            let chunk = &mut self.buffer[..left.min(IO_BUFFER_BYTES)];
            self.file.read_exact(chunk).map_err(read)?;
            if let Some(crc) = &mut crc {
                crc.update(chunk);
            }
            f(chunk)?;
            left -= chunk.len();
        }
        if let Some(crc) = crc {
            self.parts.insert(name.to_string(), crc);
        }
        Ok(())
    }

    /// Appends the values of float32 tensor `name` to `out`.
    pub fn read_f32_into(&mut self, name: &str, out: &mut Vec<f32>) -> Result<()> {
        let (_, _, (start, end)) = self.tensor_info(name)?;
        self.read_f32_range_into(name, 0..(end - start) / 4, out)
    }

    /// Appends values `values` (indices into its values in row-major order) of float32 tensor `name` to `out`,
    /// straight from the file: `out` grows by as many, no more (nothing where it has room already).
    pub fn read_f32_range_into(
        &mut self,
        name: &str,
        values: Range<usize>,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let (dtype, _, (start, end)) = self.tensor_info(name)?;
        if dtype != Dtype::F32 {
            return Err(self.err(format!("tensor {name} is {dtype:?}: expected F32")));
        }
        // Bounds first: memory is reserved only for values the tensor holds.
        if values.start > values.end || values.end > (end - start) / 4 {
            return Err(self.err(format!(
                "tensor {name}: values {values:?} are past its {}",
                (end - start) / 4
            )));
        }
        if out.try_reserve_exact(values.len()).is_err() {
            return Err(self.err(format!(
                "tensor {name}: no memory for its {} values",
                values.len()
            )));
        }
        let bytes = values.start.saturating_mul(4)..values.end.saturating_mul(4);
        self.stream(name, bytes, |chunk| {
            out.extend(
                chunk
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            Ok(())
        })
    }

    /// Tensor `name` (f32, f64, i64, i32, or u32 widened to i64) as a CPU tensor.
    pub fn read_tensor(&mut self, name: &str) -> Result<Tensor> {
        let (dtype, shape, (start, end)) = self.tensor_info(name)?;
        let kind = kind_of(dtype)
            .ok_or_else(|| self.err(format!("tensor {name}: unsupported dtype {dtype:?}")))?;
        let mut bytes = Vec::new();
        if bytes.try_reserve_exact(end - start).is_err() {
            return Err(self.err(format!(
                "tensor {name}: no memory for its {} bytes",
                end - start
            )));
        }
        self.stream(name, 0..end - start, |chunk| {
            bytes.extend_from_slice(chunk);
            Ok(())
        })?;
        let shape: Vec<i64> = shape.iter().map(|&s| s as i64).collect();
        if dtype == Dtype::U32 {
            let values: Vec<i64> = bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect();
            return Ok(Tensor::from_slice(&values).reshape(&shape));
        }
        Ok(Tensor::f_from_data_size(&bytes, &shape, kind)?)
    }

    /// Checks the tensors' checksum, where the file records one (files written before it record none): a bit
    /// flipped on disk or in a copy is an error, not a silently different run. What was not read whole is read
    /// for it, through the buffer.
    pub fn verify(&mut self) -> Result<()> {
        let Some(recorded) = self.metadata.get(CRC_KEY).cloned() else {
            return Ok(());
        };
        let mut names = self.names();
        names.sort();
        let mut crc = crc32fast::Hasher::new();
        for name in &names {
            if !self.parts.contains_key(name) {
                let (_, _, (start, end)) = self.tensor_info(name)?;
                self.stream(name, 0..end - start, |_| Ok(()))?;
            }
            crc.combine(&self.parts[name]);
        }
        let crc = crc.finalize();
        if recorded != crc.to_string() {
            return Err(self.err(format!(
                "its tensors' checksum is {crc}, the file records {recorded}: the file is damaged (a bit changed \
                 on disk or in a copy)"
            )));
        }
        Ok(())
    }
}

/// Reads every tensor (f32/f64/i64/i32, u32 widened to i64), in the file's order, and the metadata of a
/// safetensors file; a truncated or malformed file is an error, never a panic.
pub fn read_tensors(path: &Path) -> Result<(Vec<NamedTensor>, Metadata)> {
    read_all(TensorFile::open(path)?)
}

/// Reads every tensor and the metadata of `file`, open with its header checked, as [`read_tensors`] does.
pub(super) fn read_all(mut file: TensorFile) -> Result<(Vec<NamedTensor>, Metadata)> {
    let mut out = Vec::new();
    let mut unsupported = None;
    for name in file.names() {
        match file.info(&name).map(|(dtype, _)| dtype) {
            Some(dtype) if kind_of(dtype).is_none() => {
                unsupported.get_or_insert((name, dtype));
            }
            _ => {
                let tensor = file.read_tensor(&name)?;
                out.push((name, tensor));
            }
        }
    }
    // A damaged file is named as such first, whatever its damage made of it.
    file.verify()?;
    if let Some((name, dtype)) = unsupported {
        return Err(file.err(format!("tensor {name}: unsupported dtype {dtype:?}")));
    }
    let TensorFile { metadata, .. } = file;
    Ok((out, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum as checkpoints computed it before they streamed: over every tensor's bytes at once.
    fn crc_of_whole_tensors(tensors: &[(String, RawTensor)]) -> u32 {
        let mut sorted: Vec<_> = tensors.iter().collect();
        sorted.sort_by_key(|t| &t.0);
        let mut crc = crc32fast::Hasher::new();
        for (name, (dtype, shape, bytes)) in sorted {
            crc.update(name.as_bytes());
            crc.update(format!("{}{shape:?}", dtype_name(*dtype)).as_bytes());
            crc.update(bytes);
        }
        crc.finalize()
    }

    /// The file checkpoints were before they streamed: the tensors' bytes serialized into one buffer by
    /// safetensors (its header sorted where `sorted`, as the versions since have; checksummed where `crc`).
    fn serialized(
        tensors: &[(String, Tensor)],
        mut metadata: Metadata,
        sorted: bool,
        crc: bool,
    ) -> Vec<u8> {
        let raw: Vec<(String, RawTensor)> = tensors
            .iter()
            .map(|(n, t)| (n.clone(), tensor_bytes(t).unwrap()))
            .collect();
        if crc {
            metadata.insert(CRC_KEY.into(), crc_of_whole_tensors(&raw).to_string());
        }
        let views = raw.iter().map(|(n, (dtype, shape, bytes))| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).unwrap();
            (n.clone(), view)
        });
        let mut buffer = safetensors::serialize(views, Some(metadata)).unwrap();
        if sorted {
            sort_header(&mut buffer);
        }
        buffer
    }

    fn mixed_values() -> Vec<f32> {
        (0..600).map(|i| i as f32 * 0.25 - 7.0).collect()
    }

    fn mixed_tensors() -> Vec<(String, Tensor)> {
        let values = mixed_values();
        vec![
            (
                "b/weights".into(),
                Tensor::from_slice(&values).view([20, 30]),
            ),
            ("a/counts".into(), Tensor::from_slice(&[3i64, -1, 40])),
            (
                "c/empty".into(),
                Tensor::zeros([0, 5], (Kind::Float, Device::Cpu)),
            ),
            ("a/doubles".into(), Tensor::from_slice(&[0.5f64, 1e300])),
            (
                "d/ints".into(),
                Tensor::from_slice(&[7i32, 8, 9, 10]).view([2, 2]),
            ),
        ]
    }

    fn metadata() -> Metadata {
        (0..12)
            .map(|i| (format!("key{i}"), format!("value {i}")))
            .collect()
    }

    #[test]
    fn a_streamed_checkpoint_is_byte_for_byte_the_file_safetensors_serialized() {
        let dir = tempfile::tempdir().unwrap();
        let tensors = mixed_tensors();
        let path = dir.path().join("t.safetensors");
        write_tensors(&path, &tensors, metadata()).unwrap();
        let expected = serialized(&tensors, metadata(), true, true);
        assert!(std::fs::read(&path).unwrap() == expected);
        // The same arrays given from their own memory, in parts that follow each other.
        let values = mixed_values();
        let (counts, doubles) = ([3i64, -1, 40], [0.5f64, 1e300]);
        let doubles: Vec<u8> = doubles.iter().flat_map(|v| v.to_le_bytes()).collect();
        let ints: Vec<u8> = [7i32, 8, 9, 10]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let data = vec![
            (
                "b/weights".to_string(),
                TensorData::f32(&[20, 30], [&values[..7], &values[7..]]),
            ),
            (
                "a/counts".to_string(),
                TensorData::i64(&[3], [&counts[..1], &[], &counts[1..]]),
            ),
            ("c/empty".to_string(), TensorData::f32(&[0, 5], [])),
            (
                "a/doubles".to_string(),
                TensorData::bytes(Dtype::F64, vec![2], &doubles),
            ),
            (
                "d/ints".to_string(),
                TensorData::bytes(Dtype::I32, vec![2, 2], &ints),
            ),
        ];
        let streamed = dir.path().join("s.safetensors");
        write_tensor_data(&streamed, &data, metadata()).unwrap();
        assert!(std::fs::read(&streamed).unwrap() == expected);
        // Values that do not fill the shape are refused, naming the tensor; nothing is left behind.
        let short = [("x".to_string(), TensorData::f32(&[2, 3], [&values[..5]]))];
        let err = write_tensor_data(&dir.path().join("x"), &short, Metadata::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tensor x: shape [2, 3] of F32 does not take its 20 bytes"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn files_of_earlier_versions_load_in_whatever_layout_they_have() {
        let dir = tempfile::tempdir().unwrap();
        let tensors = mixed_tensors();
        // Unsorted headers, with and without a checksum; and a layout by name alone, as other writers make.
        let by_name = {
            let raw: Vec<(String, RawTensor)> = tensors
                .iter()
                .map(|(n, t)| (n.clone(), tensor_bytes(t).unwrap()))
                .collect();
            let mut sorted: Vec<&(String, RawTensor)> = raw.iter().collect();
            sorted.sort_by_key(|t| &t.0);
            let mut offset = 0;
            let mut header = serde_json::Map::new();
            let mut data = Vec::new();
            for (name, (dtype, shape, bytes)) in sorted {
                header.insert(
                    name.clone(),
                    serde_json::json!({"dtype": format!("{dtype:?}"), "shape": shape, "data_offsets": [offset, offset + bytes.len()]}),
                );
                offset += bytes.len();
                data.extend_from_slice(bytes);
            }
            let header = serde_json::Value::Object(header).to_string();
            let mut file = (header.len() as u64).to_le_bytes().to_vec();
            file.extend(header.as_bytes());
            file.extend(data);
            file
        };
        for (i, bytes) in [
            serialized(&tensors, metadata(), false, true),
            serialized(&tensors, metadata(), false, false),
            by_name,
        ]
        .into_iter()
        .enumerate()
        {
            let path = dir.path().join(format!("{i}.safetensors"));
            std::fs::write(&path, bytes).unwrap();
            let (read, meta) = read_tensors(&path).unwrap();
            assert_eq!(read.len(), tensors.len());
            for (name, t) in &tensors {
                let (_, r) = read.iter().find(|(n, _)| n == name).unwrap();
                assert!(r.equal(t) && r.kind() == t.kind(), "{name}");
            }
            assert_eq!(
                meta.get("key3").map(String::as_str),
                (i < 2).then_some("value 3")
            );
            let mut file = TensorFile::open(&path).unwrap();
            let mut part = vec![-1.0];
            file.read_f32_range_into("b/weights", 31..34, &mut part)
                .unwrap();
            assert_eq!(part, [-1.0, 0.75, 1.0, 1.25]);
            file.verify().unwrap();
        }
    }

    #[test]
    fn a_header_longer_than_any_of_qamlabs_files_is_refused_unparsed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.safetensors");
        // 20 MB of header claimed (a million tensors' worth), the file as long.
        let n = 20u64 << 20;
        let mut bytes = n.to_le_bytes().to_vec();
        bytes.push(b'{');
        std::fs::write(&path, &bytes).unwrap();
        std::fs::File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_len(8 + n)
            .unwrap();
        let err = TensorFile::open(&path).err().unwrap().to_string();
        assert!(
            err.ends_with("unreadable or truncated: header too large"),
            "{err}"
        );
    }

    #[test]
    fn a_tensor_file_checks_the_checksum_of_what_it_read_and_of_what_it_did_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        write_tensors(&path, &mixed_tensors(), metadata()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let data_start = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..data_start]).unwrap();
        let weights =
            data_start + header["b/weights"]["data_offsets"][0].as_u64().unwrap() as usize;
        let damaged = |at: usize| {
            let mut copy = bytes.clone();
            copy[at] ^= 0x04;
            std::fs::write(&path, copy).unwrap();
            TensorFile::open(&path).unwrap()
        };
        let mut file = damaged(weights);
        assert!(file.info("b/weights") == Some((Dtype::F32, &[20, 30][..])));
        let mut read = Vec::new();
        file.read_f32_into("b/weights", &mut read).unwrap();
        // Read as it is (the damage changed its first value), then found.
        assert!(read[0] != -7.0 && read[1..] == mixed_values()[1..]);
        let err = file.verify().unwrap_err().to_string();
        assert!(
            err.contains("t.safetensors: its tensors' checksum is")
                && err.contains("the file is damaged"),
            "{err}"
        );
        // Damage in a tensor never read, or read only in part, is found as well.
        let mut file = damaged(weights + 4 * 100);
        file.read_f32_range_into("b/weights", 0..10, &mut Vec::new())
            .unwrap();
        assert!(
            file.verify()
                .unwrap_err()
                .to_string()
                .contains("the file is damaged")
        );
        std::fs::write(&path, &bytes).unwrap();
        let mut file = TensorFile::open(&path).unwrap();
        file.verify().unwrap();
        // Reads past a tensor, of another dtype, or of a tensor it lacks are refused, naming the file.
        let mut out = Vec::new();
        for (name, range, why) in [
            (
                "b/weights",
                0..601,
                "tensor b/weights: values 0..601 are past its 600",
            ),
            ("a/counts", 0..1, "tensor a/counts is I64: expected F32"),
            ("z", 0..1, "tensor z missing"),
        ] {
            let err = file
                .read_f32_range_into(name, range, &mut out)
                .unwrap_err()
                .to_string();
            assert!(err.contains("t.safetensors") && err.ends_with(why), "{err}");
        }
        // A file cut short after it was opened.
        let file_len = bytes.len() as u64;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(file_len - 8)
            .unwrap();
        let err = file.read_tensor("d/ints").unwrap_err().to_string();
        assert!(
            err.contains("t.safetensors")
                && err.ends_with("reading tensor d/ints: the file was cut short while it was read"),
            "{err}"
        );
        let err = TensorFile::open(&path).err().unwrap().to_string();
        assert!(err.contains("unreadable or truncated"), "{err}");
    }
}
