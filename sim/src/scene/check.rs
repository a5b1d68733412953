//! The limits a scene's settings must keep, and [`Check`], the field checks every builder uses.

use bevy::prelude::*;

use super::parse::RawEntity;
use crate::authoring::Range;
use crate::error::SimError;

/// Longest episode a scene may ask for, in control steps.
pub const MAX_EPISODE_LENGTH: u32 = 100_000;
/// Most physics steps per control step.
pub const MAX_SUBSTEPS: u32 = 1_000;
/// Most Rapier solver iterations per physics step.
pub const MAX_SOLVER_ITERATIONS: u32 = 1_000;
/// Most constraint passes per solver iteration.
pub const MAX_SOLVER_PASSES: u32 = 1_000;
/// Longest physics step (`control_dt / substeps`, s) a scene may ask for. Measured on the built-ins: at it, stiff
/// motors and contacts are integrated wrongly already (cube-single's grasp, sound up to 0.04 s, fails in 70 to 100%
/// of episodes; a driven pendulum swings three times as far in a second as at 1 ms, and turns the wrong way at
/// 0.3 s), and from 0.5 s Rapier's sleeping (a body still for half a second sleeps) stops every body after its
/// first step, so nothing moves.
pub const MAX_PHYSICS_STEP: f32 = 0.1;
/// Shortest physics step (`control_dt / substeps`, s) a scene may ask for: a hundredth of a millisecond, ten times
/// finer than the finest robot simulations use; below it an episode lasts too little for anything to move (a
/// `control_dt` of 1e-45 s), most likely a typo.
pub const MIN_PHYSICS_STEP: f32 = 1e-5;
/// Strongest gravity a scene may ask for, in m/s² (about 100 g): far past any robot task, so a larger value is
/// a typo, and one the physics does not show (under 1e37 m/s² a free cube does not move at all).
pub const MAX_GRAVITY: f32 = 1_000.0;

/// The known name an author most likely meant by `name`: the closest to it in case and a typo or two (a
/// distance of at most a third of the name, at least 1, short of the whole name), where only one is that close
/// (`"w"` is as near to `"x"` as to `"y"`: no guess).
pub fn closest_name<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let known: Vec<&str> = known.into_iter().collect();
    let distance = |k: &str| strsim::levenshtein(&k.to_lowercase(), &name.to_lowercase());
    let closest = known.iter().map(|k| distance(k)).min()?;
    let mut nearest = known.iter().filter(|k| distance(k) == closest);
    let length = name.chars().count();
    match (nearest.next(), nearest.next()) {
        (Some(&k), None) if closest <= (length / 3).max(1) && closest < length => Some(k),
        _ => None,
    }
}

/// The largest coordinate, size, range bound or joint target a scene may hold: 10 km, for a length. Scenes are metres
/// across; out there float32 positions keep only millimetres, the physics' products of them overflow sooner, and
/// an agent's networks see numbers they cannot learn from (a target drawn from ±1e30 made training NaN).
pub(super) const LARGEST: f32 = 1e4;
const LARGEST_TEXT: &str = "10000: a scene's lengths are metres and its angles radians, and float32 physics \
     loses millimetres out past 10 km";

/// `text` with its invisible characters (controls, a soft hyphen, zero-width spaces and joiners, direction marks
/// and isolates, a byte-order mark) written out as `\u{200b}`: a name holding one reads like the name it is not.
pub(super) fn visible(text: &str) -> String {
    text.chars()
        .map(|c| {
            let invisible = c.is_control()
                || matches!(
                    c,
                    '\u{ad}'
                        | '\u{200b}'..='\u{200f}'
                        | '\u{202a}'..='\u{202e}'
                        | '\u{2060}'..='\u{2069}'
                        | '\u{feff}'
                );
            if invisible {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `no body named "uper"`, and what the author likely meant: the known name closest to it (`did you mean
/// "upper"?`), else the names there are.
pub(super) fn not_found<'a>(
    what: &str,
    name: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> String {
    let known: Vec<&str> = known.into_iter().collect();
    let message = format!("no {what} named \"{}\"", visible(name));
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_digit()) {
        return format!("{message}: a scene refers to things by their `name`, not by entity id");
    }
    match closest_name(name, known.iter().copied()) {
        Some(k) => format!("{message}: did you mean \"{}\"?", visible(k)),
        None if known.is_empty() => format!("{message}: there are none"),
        None => {
            let mut list: Vec<String> = known
                .iter()
                .take(12)
                .map(|k| format!("\"{}\"", visible(k)))
                .collect();
            if known.len() > 12 {
                list.push(format!("and {} more", known.len() - 12));
            }
            format!("{message}: the names are {}", list.join(", "))
        }
    }
}

/// The checks every scene field goes through, each error naming the file, the entity and the field.
pub(super) struct Check<'a> {
    /// The scene's file (or `builtin:<name>`), for messages.
    pub(super) source: &'a str,
}

impl Check<'_> {
    /// An error in `field` of entity `raw`.
    pub(super) fn err(&self, raw: &RawEntity, field: &str, message: String) -> SimError {
        SimError::Invalid {
            file: self.source.to_string(),
            entity: raw.label(),
            field: field.to_string(),
            message,
        }
    }

    /// An error of the scene as a whole (something missing from every entity).
    pub(super) fn scene_err(&self, field: &str, message: String) -> SimError {
        SimError::Invalid {
            file: self.source.to_string(),
            entity: "scene".into(),
            field: field.into(),
            message,
        }
    }

    /// A range with finite bounds within [`LARGEST`], `min <= max`.
    pub(super) fn range(&self, raw: &RawEntity, field: &str, r: &Range) -> Result<(), SimError> {
        if !(r.min.is_finite() && r.max.is_finite()) {
            Err(self.err(
                raw,
                field,
                format!("bounds must be finite, got [{}, {}]", r.min, r.max),
            ))
        } else if r.min > r.max {
            Err(self.err(raw, field, format!("min {} > max {}", r.min, r.max)))
        } else if r.min.abs().max(r.max.abs()) > LARGEST {
            Err(self.err(
                raw,
                field,
                format!("[{}, {}] reaches past {LARGEST_TEXT}", r.min, r.max),
            ))
        } else {
            Ok(())
        }
    }

    /// A finite value above 0.
    pub(super) fn positive(&self, raw: &RawEntity, field: &str, v: f32) -> Result<(), SimError> {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(self.err(raw, field, format!("must be positive and finite, got {v}")))
        }
    }

    /// A finite length above 0, within [`LARGEST`] (a shape's size).
    pub(super) fn size(&self, raw: &RawEntity, field: &str, v: f32) -> Result<(), SimError> {
        self.positive(raw, field, v)?;
        self.within(raw, field, v)
    }

    /// A value within [`LARGEST`] either way (a joint target, a control's scale).
    pub(super) fn within(&self, raw: &RawEntity, field: &str, v: f32) -> Result<(), SimError> {
        if v.abs() > LARGEST {
            Err(self.err(raw, field, format!("{v} reaches past {LARGEST_TEXT}")))
        } else {
            Ok(())
        }
    }

    /// A finite value of 0 or more.
    pub(super) fn non_negative(
        &self,
        raw: &RawEntity,
        field: &str,
        v: f32,
    ) -> Result<(), SimError> {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err(self.err(raw, field, format!("must be >= 0 and finite, got {v}")))
        }
    }

    /// A vector of finite components within [`LARGEST`].
    pub(super) fn finite3(&self, raw: &RawEntity, field: &str, v: Vec3) -> Result<(), SimError> {
        if !v.is_finite() {
            Err(self.err(raw, field, format!("must be finite, got {v}")))
        } else if v.abs().max_element() > LARGEST {
            Err(self.err(raw, field, format!("{v} reaches past {LARGEST_TEXT}")))
        } else {
            Ok(())
        }
    }

    /// A name that is not empty and holds no control character (names are printed in messages and on screen, and
    /// recorded in datasets and runs: a newline or a terminal escape would forge or garble them).
    pub(super) fn non_empty(
        &self,
        raw: &RawEntity,
        field: &str,
        name: &str,
    ) -> Result<(), SimError> {
        if name.is_empty() {
            return Err(self.err(raw, field, "must not be empty".into()));
        }
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            return Err(self.err(
                raw,
                field,
                format!(
                    "{name:?} holds a control character (U+{:04X}): a name is printed and recorded, so give it \
                     printable text",
                    u32::from(c)
                ),
            ));
        }
        Ok(())
    }

    /// A name that is not empty and not among `taken`, the names already given in its namespace.
    pub(super) fn unique_name<'n>(
        &self,
        raw: &RawEntity,
        field: &str,
        name: &str,
        mut taken: impl Iterator<Item = &'n str>,
    ) -> Result<(), SimError> {
        self.non_empty(raw, field, name)?;
        if taken.any(|n| n == name) {
            return Err(self.err(raw, field, format!("the name \"{name}\" is used twice")));
        }
        Ok(())
    }
}

/// The unit vector along `v`, a direction written with any length but 0 (its size does not count, so no bound on
/// lengths applies); else why not.
pub(super) fn direction(v: Vec3) -> Result<Vec3, String> {
    if !v.is_finite() {
        return Err(format!("must be finite, got {v}"));
    }
    // Scaled first, so that neither a huge vector's length overflows nor a tiny one's underflows.
    let largest = v.abs().max_element();
    let unit = if largest > 0.0 {
        (v / largest).try_normalize()
    } else {
        None
    };
    unit.ok_or_else(|| {
        format!("{v} has no direction: give a vector of any length but 0, as (0.0, 0.0, 1.0)")
    })
}
