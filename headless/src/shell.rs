//! The commands qamlab prints for the user to run (`qamlab train --resume RUN`, a dataset's `collect` line),
//! their arguments quoted for a POSIX shell, so that a line pasted into one runs as printed: a path with a space or
//! a quote in it stays one argument. A plain path (`runs/qam-0`, `/tmp/d.npz`) is printed as it is.

use std::borrow::Cow;
use std::path::Path;

/// `word` as one shell word: as it is where nothing in it needs quoting, else quoted (`'my task.scn.ron'`).
pub fn quote(word: &str) -> Cow<'_, str> {
    // Nothing but a NUL byte fails to quote, and no path or argument holds one.
    shlex::Quoter::new()
        .allow_nul(true)
        .quote(word)
        .unwrap_or(Cow::Borrowed(word))
}

/// `path` as one shell word (see [`quote`]); a path that is not UTF-8 is shown as [`Path::display`] shows it.
pub fn quote_path(path: &Path) -> String {
    quote(&path.to_string_lossy()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_as_they_are_and_others_are_quoted_to_paste() {
        for plain in [
            "cube-single",
            "runs/qam-0",
            "/tmp/.tmpAb12/run",
            "data/d.npz",
            "a:b@c+1",
        ] {
            assert_eq!(quote(plain), plain);
        }
        assert_eq!(quote("my task.scn.ron"), "'my task.scn.ron'");
        assert_eq!(
            quote_path(Path::new("data/my set.npz")),
            "'data/my set.npz'"
        );
        assert_eq!(quote(""), "''");
        // `~` and `$` are the shell's unless quoted.
        assert_eq!(quote("~/runs"), "'~/runs'");
        assert_eq!(quote("$HOME"), "'$HOME'");
        // Each quoted word splits back into itself, whatever it holds.
        for word in [
            "it's here",
            "a \"b\" c",
            "back\\slash",
            "semi;colon & pipe|",
            "new\nline",
            "star*",
        ] {
            let line = format!("qamlab train --resume {}", quote(word));
            assert_eq!(
                shlex::split(&line).unwrap(),
                ["qamlab", "train", "--resume", word],
                "{line}"
            );
        }
    }
}
