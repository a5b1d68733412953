//! The `.npy` header at the start of an archive entry: read without reading the array, and what it says (shape,
//! dtype, the bytes its data takes).

use std::io::Read;

/// The longest header dictionary read: numpy writes a few hundred bytes (and refuses to read past 10 000).
const LONGEST_HEADER: usize = 1 << 16;

/// An `.npy` header as read from the start of an entry.
pub(super) struct NpyHeader {
    /// Its dictionary, like `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }`.
    pub(super) text: String,
    /// The bytes before the data: magic, version, the dictionary's length and the dictionary.
    pub(super) len: u64,
}

impl NpyHeader {
    /// Reads the header at the start of `reader`; `None` where it does not begin with one.
    pub(super) fn read(reader: &mut impl Read) -> Option<Self> {
        let mut head = [0u8; 10];
        reader.read_exact(&mut head).ok()?;
        if !head.starts_with(b"\x93NUMPY") {
            return None;
        }
        // Magic, version, then the dictionary's length: 2 bytes in version 1, 4 in versions 2 and 3.
        let (len, prefix) = match head[6] {
            1 => (usize::from(u16::from_le_bytes([head[8], head[9]])), 10),
            _ => {
                let mut more = [0u8; 2];
                reader.read_exact(&mut more).ok()?;
                (
                    u32::from_le_bytes([head[8], head[9], more[0], more[1]]) as usize,
                    12,
                )
            }
        };
        if len > LONGEST_HEADER {
            return None;
        }
        let mut text = vec![0u8; len];
        reader.read_exact(&mut text).ok()?;
        Some(Self {
            text: String::from_utf8_lossy(&text).into_owned(),
            len: (prefix + len) as u64,
        })
    }

    /// The `shape` tuple.
    pub(super) fn shape(&self) -> Option<Vec<u64>> {
        let start = self.text.find("'shape':")? + "'shape':".len();
        let rest = self.text[start..].trim_start().strip_prefix('(')?;
        let inside = &rest[..rest.find(')')?];
        inside
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| d.parse().ok())
            .collect()
    }

    /// The `descr` string (`<f4`); `None` for a structured dtype (a list).
    fn descr(&self) -> Option<&str> {
        let start = self.text.find("'descr':")? + "'descr':".len();
        let rest = self.text[start..].trim_start().strip_prefix('\'')?;
        Some(&rest[..rest.find('\'')?])
    }

    /// The dtype in numpy's words (`float32`, `uint8`, `bool`), or its descriptor where unusual (`` `|O` ``).
    pub(super) fn dtype(&self) -> Option<String> {
        let descr = self.descr()?;
        let code = descr.trim_start_matches(['<', '>', '|', '=']);
        let (kind, bytes) = code.split_at(code.len().min(1));
        let bits = bytes.parse::<u32>().ok().map(|b| b * 8);
        Some(match (kind, bits) {
            ("b", Some(8)) => "bool".into(),
            ("f", Some(b)) => format!("float{b}"),
            ("i", Some(b)) => format!("int{b}"),
            ("u", Some(b)) => format!("uint{b}"),
            _ => format!("`{descr}`"),
        })
    }

    /// The bytes the data takes after the header, where its dtype has a fixed size (numbers, flags, strings);
    /// `None` for others (pickled objects, structured dtypes), whose length the header does not fix.
    pub(super) fn data_len(&self) -> Option<u64> {
        let code = self.descr()?.trim_start_matches(['<', '>', '|', '=']);
        let (kind, size) = code.split_at(code.len().min(1));
        let size: u64 = size.parse().ok()?;
        let item = match kind {
            "b" | "i" | "u" | "f" | "c" | "S" | "V" => size,
            "U" => size.checked_mul(4)?,
            _ => return None,
        };
        self.shape()?
            .iter()
            .try_fold(item, |n, &d| n.checked_mul(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(dict: &str) -> NpyHeader {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        NpyHeader::read(&mut bytes.as_slice()).unwrap()
    }

    #[test]
    fn a_header_says_its_shape_dtype_and_data_length() {
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }";
        let h = header(dict);
        assert_eq!(
            (h.shape(), h.dtype(), h.data_len(), h.len),
            (
                Some(vec![3, 2]),
                Some("float32".into()),
                Some(24),
                10 + dict.len() as u64
            )
        );
        let h = header("{'descr': '>i8', 'fortran_order': True, 'shape': (5,), }");
        assert_eq!((h.dtype(), h.data_len()), (Some("int64".into()), Some(40)));
        assert_eq!(
            header("{'descr': '<U3', 'shape': (2,)}").data_len(),
            Some(24)
        );
        // Pickled objects have no fixed length.
        let h = header("{'descr': '|O', 'fortran_order': False, 'shape': (4,), }");
        assert_eq!((h.dtype(), h.data_len()), (Some("`|O`".into()), None));
        assert!(NpyHeader::read(&mut &b"PK\x03\x04 not an array"[..]).is_none());
    }
}
