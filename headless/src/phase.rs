//! The two phases of a run: offline (gradient steps on a dataset), then online (fine-tuning while envs step).

use std::fmt;
use std::str::FromStr;

/// A phase of a run, as its files name it (`eval.csv`, `metrics.jsonl`, `summary.json`) and its progress bars
/// label it: `offline` or `online`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Gradient steps on the dataset.
    Offline,
    /// Fine-tuning while the envs step.
    Online,
}

impl Phase {
    /// Its name in a run's files: `offline` or `online`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Offline => "offline",
            Phase::Online => "online",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = anyhow::Error;

    /// The phase named `s` as a run's files name it (exactly: `offline` or `online`).
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "offline" => Ok(Phase::Offline),
            "online" => Ok(Phase::Online),
            _ => anyhow::bail!("phase {s:?}: expected offline or online"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Phase;

    #[test]
    fn a_phase_reads_back_as_its_files_name_it() {
        for (phase, name) in [(Phase::Offline, "offline"), (Phase::Online, "online")] {
            assert_eq!(phase.to_string(), name);
            assert_eq!(name.parse::<Phase>().unwrap(), phase);
            assert_eq!(
                serde_json::to_string(&phase).unwrap(),
                format!("\"{name}\"")
            );
            assert_eq!(
                serde_json::from_str::<Phase>(&format!("\"{name}\"")).unwrap(),
                phase
            );
        }
        assert!("Online".parse::<Phase>().is_err());
    }
}
