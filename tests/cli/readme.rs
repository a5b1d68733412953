//! The READMEs' commands against the binary: every `qamlab` command they show names a command that exists, and
//! every flag it gives is one that command takes, so a renamed or removed flag fails here rather than for a reader.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The READMEs a new user reads, from the repository root.
const READMES: [&str; 2] = ["README.md", "assets/tasks/README.md"];

/// A `qamlab` command as a README shows it: where, its subcommand words and its flags.
#[derive(Debug)]
struct Shown {
    place: String,
    subcommand: Vec<String>,
    flags: Vec<String>,
}

/// The prose of a markdown text with its fenced blocks taken out, and the fenced blocks' logical lines with the
/// number of the line each starts on (a line ending in `\` continues on the next; `#` starts a comment).
fn split_markdown(text: &str) -> (String, Vec<(usize, String)>) {
    let (mut prose, mut lines) = (String::new(), Vec::new());
    let mut fenced = false;
    let (mut pending, mut start) = (String::new(), None);
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            prose.push_str(line);
            prose.push('\n');
            continue;
        }
        let code = line.split(" #").next().unwrap_or("").trim_end();
        let first = *start.get_or_insert(n + 1);
        match code.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(code);
                lines.push((first, std::mem::take(&mut pending)));
                start = None;
            }
        }
    }
    (prose, lines)
}

/// The inline code spans of markdown prose (a span may run over a wrapped line).
fn code_spans(prose: &str) -> Vec<String> {
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|span| span.replace('\n', " "))
        .collect()
}

/// The `qamlab` command in `text`, if it runs one: the words after `qamlab` (or `make demo ARGS="..."`, which is
/// `qamlab demo`).
fn command_words(text: &str) -> Option<Vec<String>> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if let Some(args) = text.strip_prefix("make demo ARGS=") {
        let args = args.trim_matches('"');
        return Some(
            std::iter::once("demo")
                .chain(args.split_whitespace())
                .map(String::from)
                .collect(),
        );
    }
    let at = words.iter().position(|w| *w == "qamlab")?;
    let rest: Vec<String> = words[at + 1..].iter().map(|w| w.to_string()).collect();
    // `qamlab` alone, or followed by prose rather than a command word.
    let first = rest.first()?;
    first
        .chars()
        .all(|c| c.is_ascii_lowercase())
        .then_some(rest)
}

/// Splits a command's words into its subcommand and its flags (`[--seed` → `--seed`, `--tf32=x` → `--tf32`).
fn shown(place: String, words: &[String]) -> Shown {
    let depth = if words[0] == "bench" && words.len() > 1 && !words[1].starts_with('-') {
        2
    } else {
        1
    };
    let flags = words[depth..]
        .iter()
        .flat_map(|w| w.split('|'))
        .map(|w| {
            w.trim_start_matches('[')
                .trim_end_matches([']', ',', ':', ')', '.'])
        })
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.split('=').next().unwrap_or(w).to_string())
        .collect();
    Shown {
        place,
        subcommand: words[..depth].to_vec(),
        flags,
    }
}

/// Every `qamlab` command the READMEs show.
fn commands_shown(root: &Path) -> Vec<Shown> {
    let mut all = Vec::new();
    for readme in READMES {
        let text = std::fs::read_to_string(root.join(readme))
            .unwrap_or_else(|e| panic!("reading {readme}: {e}"));
        let (prose, lines) = split_markdown(&text);
        for (n, line) in &lines {
            if let Some(words) = command_words(line) {
                all.push(shown(format!("{readme}:{n}"), &words));
            }
        }
        for span in code_spans(&prose) {
            if let Some(words) = command_words(&span) {
                all.push(shown(format!("{readme}, `{span}`"), &words));
            }
        }
    }
    all
}

/// Whether a command's `--help` text lists `flag` (whole: `--see` is not `--seed`).
fn takes_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(at, _)| {
        !help[at + flag.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// `qamlab SUBCOMMAND --help`, or `None` where there is no such command.
fn help_of(subcommand: &[String]) -> Option<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_qamlab"))
        .args(subcommand)
        .arg("--help")
        .output()
        .expect("running the qamlab binary");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn readme_commands_name_real_commands_and_flags() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shown = commands_shown(root);
    // The command line section alone shows a dozen commands: finding few means the parsing broke.
    assert!(shown.len() > 40, "only {} commands found", shown.len());
    let mut help = BTreeMap::new();
    let mut wrong = Vec::new();
    for command in &shown {
        let text = help
            .entry(command.subcommand.clone())
            .or_insert_with(|| help_of(&command.subcommand));
        let Some(text) = text else {
            wrong.push(format!(
                "{}: no command `qamlab {}`",
                command.place,
                command.subcommand.join(" ")
            ));
            continue;
        };
        for flag in &command.flags {
            if !takes_flag(text, flag) {
                wrong.push(format!(
                    "{}: `qamlab {}` takes no {flag}",
                    command.place,
                    command.subcommand.join(" ")
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_removed_flag_or_command_is_caught() {
    // The check above must be able to fail: a flag no command has is reported, a real one is not.
    let train = help_of(&["train".to_string()]).expect("qamlab train --help");
    assert!(takes_flag(&train, "--seed") && takes_flag(&train, "--resume"));
    assert!(!takes_flag(&train, "--see") && !takes_flag(&train, "--no-such-flag"));
    assert!(help_of(&["no-such-command".to_string()]).is_none());
    let words: Vec<String> = "train --config x.toml [--no-such-flag] [--seed 0]"
        .split_whitespace()
        .map(String::from)
        .collect();
    let command = shown("test".into(), &words);
    assert_eq!(command.subcommand, ["train"]);
    assert_eq!(command.flags, ["--config", "--no-such-flag", "--seed"]);
    let words = command_words("xvfb-run -a qamlab view --task t --screenshot o.png").unwrap();
    assert_eq!(
        shown("test".into(), &words).flags,
        ["--task", "--screenshot"]
    );
    assert!(command_words("the `qamlab` binary").is_none());
    let bench = shown(
        "test".into(),
        &command_words("qamlab bench agent --size small").unwrap(),
    );
    assert_eq!(bench.subcommand, ["bench", "agent"]);
}
