//! A checkpoint's `state.json` sealed with a CRC-32 of its text, its last member `state_crc32`: a hand edit or a bit
//! flip of a count in it (`acting_position`, `sampler_word_pos`) would change the resumed run's random draws
//! silently, where the safetensors files beside it carry checksums of their own. Files of older versions carry none.

use std::path::Path;

use anyhow::{Context, bail, ensure};

/// The last member of a checkpoint's `state.json`: the CRC-32 (8 hex digits) of the file's text before it.
pub const STATE_CRC_KEY: &str = "state_crc32";

/// `json`, a JSON object's text without [`STATE_CRC_KEY`] (as `serde_json::to_string_pretty` writes it), sealed: the
/// CRC-32 of its text up to that member added as its last member. What training writes; a tool that edits a
/// checkpoint's state on purpose seals it again with this.
pub fn seal_state(json: &str) -> anyhow::Result<String> {
    let head = json
        .trim_end()
        .strip_suffix('}')
        .context("sealing a checkpoint's state: expected a JSON object")?
        .trim_end();
    let separator = if head.ends_with('{') { "\n  " } else { ",\n  " };
    let covered = format!("{head}{separator}");
    let crc = crc32fast::hash(covered.as_bytes());
    Ok(format!("{covered}\"{STATE_CRC_KEY}\": \"{crc:08x}\"\n}}\n"))
}

/// Refuses `text`, the `state.json` at `path`, where it records a [`STATE_CRC_KEY`] that its text does not match
/// (edited, or damaged on disk or in a copy), or records one otherwise than [`seal_state`] writes it. A file
/// without one (a checkpoint of an older version) passes.
pub(crate) fn check_state_crc(path: &Path, text: &str) -> anyhow::Result<()> {
    let file = path.display();
    let what_to_do = "resuming from it would continue with other counts and random draws than the run's. Restore \
                      the file from a copy of the run (a run keeps only its newest checkpoint), or start the run \
                      again; if you edited it on purpose, delete its state_crc32 line and the comma before it to \
                      accept the edit";
    let member = format!("\"{STATE_CRC_KEY}\": \"");
    let Some(at) = text.rfind(&member) else {
        ensure!(
            !text.contains(&format!("\"{STATE_CRC_KEY}\"")),
            "{file}: its {STATE_CRC_KEY} is not laid out as qamlab writes it (the file was rewritten since its \
             checkpoint was written): {what_to_do}"
        );
        return Ok(());
    };
    let rest = &text[at + member.len()..];
    let recorded = rest
        .get(..8)
        .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    let last = rest
        .get(8..)
        .and_then(|r| r.strip_prefix('"'))
        .is_some_and(|r| r.trim() == "}");
    let (Some(recorded), true) = (recorded, last) else {
        bail!(
            "{file}: its {STATE_CRC_KEY} is not 8 hex digits closing the file, as qamlab writes it: the file is \
             damaged or was edited: {what_to_do}"
        );
    };
    let crc = format!("{:08x}", crc32fast::hash(&text.as_bytes()[..at]));
    ensure!(
        crc == recorded.to_ascii_lowercase(),
        "{file}: its text's CRC-32 is {crc}, but it records {STATE_CRC_KEY} {recorded}: the file was edited or \
         damaged since its checkpoint was written, and {what_to_do}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_state_passes_and_any_change_to_it_is_refused() {
        let path = Path::new("run/checkpoints/step-8/state.json");
        let json = "{\n  \"acting_position\": 12,\n  \"sampler_word_pos\": \"40\"\n}";
        let sealed = seal_state(json).unwrap();
        check_state_crc(path, &sealed).unwrap();
        // Still JSON, with what it held.
        let value: serde_json::Value = serde_json::from_str(&sealed).unwrap();
        assert_eq!(value["acting_position"], 12);
        assert_eq!(value.as_object().unwrap().len(), 3);
        for edited in [
            sealed.replace("12", "13"),
            sealed.replace("\"40\"", "\"41\""),
            sealed.replacen("{", "{\n  \"extra\": 1,", 1),
        ] {
            let err = format!("{:#}", check_state_crc(path, &edited).unwrap_err());
            assert!(
                err.starts_with("run/checkpoints/step-8/state.json: its text's CRC-32 is ")
                    && err.contains(
                        "the file was edited or damaged since its checkpoint was written"
                    )
                    && err.contains("Restore the file from a copy of the run"),
                "{err}"
            );
        }
        // Rewritten by a tool (compact), or a member added after it: not as qamlab wrote it.
        let compact = serde_json::to_string(&value).unwrap();
        let err = format!("{:#}", check_state_crc(path, &compact).unwrap_err());
        assert!(err.contains("not laid out as qamlab writes it"), "{err}");
        let after = sealed.replace("\"\n}", "\",\n  \"later\": 1\n}");
        let err = format!("{:#}", check_state_crc(path, &after).unwrap_err());
        assert!(err.contains("not 8 hex digits closing the file"), "{err}");
        // A state of an older version records none, and passes.
        check_state_crc(path, json).unwrap();
        // Sealed again (after an edit on purpose), it passes.
        let mut again = value.clone();
        again["acting_position"] = 13.into();
        again.as_object_mut().unwrap().remove(STATE_CRC_KEY);
        let resealed = seal_state(&serde_json::to_string_pretty(&again).unwrap()).unwrap();
        check_state_crc(path, &resealed).unwrap();
        assert!(seal_state("[1]").is_err());
    }
}
