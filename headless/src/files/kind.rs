//! What a file is by its first bytes, for errors about a file given where another kind belongs (`--config
//! data.npz`, a checkpoint given as a run): the lab's own binary files are named as what they are.

/// A kind of file the lab writes, told by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A zip archive, as a dataset (`.npz`) is.
    Zip,
    /// A PNG image, as a chart is.
    Png,
    /// A safetensors file, as a checkpoint's agent is.
    Safetensors,
}

/// The bytes [`sniff`] needs at most from the start of a file.
pub const SNIFFED_BYTES: usize = 9;

/// The kind of file whose first bytes are `head` (at least [`SNIFFED_BYTES`] of them where the file has as many)
/// and whose length is `len`; `None` for anything else, text included.
pub fn sniff(head: &[u8], len: u64) -> Option<FileKind> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Some(FileKind::Zip);
    }
    if head.starts_with(b"\x89PNG") {
        return Some(FileKind::Png);
    }
    // A little-endian header length, then the JSON header: the length must fit in the file, which text whose
    // ninth byte is `{` (`agent = {...}`) does not (its first eight bytes read as a huge number).
    if head.len() >= SNIFFED_BYTES && head[8] == b'{' {
        let header = u64::from_le_bytes(head[..8].try_into().expect("eight bytes"));
        if header.checked_add(8).is_some_and(|end| end <= len) {
            return Some(FileKind::Safetensors);
        }
    }
    None
}

impl FileKind {
    /// What the file is, to follow "it is": `a zip archive, as a dataset (.npz) is`.
    pub fn described(self) -> &'static str {
        match self {
            FileKind::Zip => "a zip archive, as a dataset (.npz) is",
            FileKind::Png => "a PNG image, as a chart is",
            FileKind::Safetensors => "a safetensors file, as a checkpoint's agent is",
        }
    }
}

/// The kind of the file at `path` ([`sniff`] of its first bytes); `None` where it cannot be read.
pub fn sniff_file(path: &std::path::Path) -> Option<FileKind> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut head = Vec::with_capacity(SNIFFED_BYTES);
    file.take(SNIFFED_BYTES as u64)
        .read_to_end(&mut head)
        .ok()?;
    sniff(&head, len)
}

#[cfg(test)]
mod tests {
    use super::{FileKind, sniff};

    #[test]
    fn the_labs_files_are_told_by_their_first_bytes_and_text_is_none() {
        let safetensors = b"\x02\x00\x00\x00\x00\x00\x00\x00{}";
        for (bytes, kind) in [
            (&b"PK\x03\x04rest"[..], Some(FileKind::Zip)),
            (&b"PK\x05\x06"[..], Some(FileKind::Zip)),
            (&b"\x89PNG\r\n\x1a\n"[..], Some(FileKind::Png)),
            (&safetensors[..], Some(FileKind::Safetensors)),
            // A header longer than the file: cut short, or not one at all.
            (&safetensors[..9], None),
            (&b"agent = {kind = \"qam\"}\n"[..], None),
            (&b"seed = 1\n"[..], None),
            (&b""[..], None),
        ] {
            assert_eq!(sniff(bytes, bytes.len() as u64), kind, "{bytes:?}");
        }
    }
}
