//! Scene text to typed entities: RON parsing, and parse errors made plain and located.

use std::any::TypeId;

use bevy::asset::{AssetPath, LoadFromPath, UntypedHandle};
use bevy::prelude::*;
use bevy::reflect::{FromReflect, PartialReflect, ReflectRef, TypeRegistry};
use bevy::world_serialization::serde::WorldDeserializer;
use bevy::world_serialization::{DynamicEntity, DynamicWorld};
use serde::de::DeserializeSeed;

use super::authoring_registry;
use super::outline::Outline;
use crate::authoring::*;
use crate::error::SimError;
use crate::missing_field::missing_field;

/// Task scenes hold no asset handles; a handle in one resolves to a placeholder rather than loading anything.
struct NoAssets;

impl LoadFromPath for NoAssets {
    fn load_from_path_erased(
        &mut self,
        type_id: TypeId,
        _path: AssetPath<'static>,
    ) -> UntypedHandle {
        UntypedHandle::default_for_type(type_id)
    }
}

/// One scene entity's components, typed.
#[derive(Default)]
pub(super) struct RawEntity {
    pub(super) id: u64,
    pub(super) settings: Option<TaskSettings>,
    pub(super) body: Option<Body>,
    pub(super) collider: Option<Collider>,
    pub(super) joint: Option<Joint>,
    pub(super) site: Option<Site>,
    pub(super) actions: Option<ActionSpace>,
    pub(super) observations: Option<ObservationSpace>,
    pub(super) goal: Option<Goal>,
    pub(super) joint_goal: Option<JointGoal>,
    pub(super) axis_goal: Option<AxisGoal>,
    pub(super) randomize_pose: Option<RandomizePose>,
    pub(super) randomize_target: Option<RandomizeTarget>,
    pub(super) kinematic_motion: Option<KinematicMotion>,
}

impl RawEntity {
    /// `entity 123 ("cube")`: how errors name it (by the task's name only where nothing else on it has one).
    pub(super) fn label(&self) -> String {
        let name = self
            .body
            .as_ref()
            .map(|b| &b.name)
            .or(self.joint.as_ref().map(|j| &j.name))
            .or(self.site.as_ref().map(|s| &s.name))
            .or(self.goal.as_ref().map(|g| &g.name))
            .or(self.joint_goal.as_ref().map(|g| &g.name))
            .or(self.axis_goal.as_ref().map(|g| &g.name))
            .or(self.settings.as_ref().map(|s| &s.name));
        match name {
            Some(name) => format!("entity {} (\"{name}\")", self.id),
            None => format!("entity {}", self.id),
        }
    }
}

/// [`RawEntity::label`] of an entity still in reflected form (its components not yet converted),
/// so that an error in converting one of them names the entity as later errors do.
fn reflected_label(id: u64, components: &[Box<dyn PartialReflect>]) -> String {
    let named = [
        TypeId::of::<TaskSettings>(),
        TypeId::of::<Body>(),
        TypeId::of::<Joint>(),
        TypeId::of::<Site>(),
        TypeId::of::<Goal>(),
        TypeId::of::<JointGoal>(),
        TypeId::of::<AxisGoal>(),
    ];
    let name_of = |wanted: TypeId| {
        components.iter().find_map(|c| {
            if c.get_represented_type_info()?.type_id() != wanted {
                return None;
            }
            let ReflectRef::Struct(fields) = c.reflect_ref() else {
                return None;
            };
            fields.field("name")?.try_downcast_ref::<String>().cloned()
        })
    };
    match named.into_iter().find_map(name_of) {
        Some(name) => format!("entity {id} (\"{name}\")"),
        None => format!("entity {id}"),
    }
}

/// Parses scene text into its entities, each with its components typed.
pub(super) fn parse(text: &str, source: &str) -> Result<Vec<RawEntity>, SimError> {
    let registry = authoring_registry();
    // Editors on some systems start UTF-8 files with a byte-order mark, which RON does not expect.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let outline = Outline::read(text);
    if outline.is_empty() {
        return Err(SimError::Parse {
            file: source.to_string(),
            line: 1,
            column: 1,
            entity: "scene".into(),
            message: "the file is empty (or only comments): a task scene is `(resources: {}, entities: { … })`, \
                      as in assets/tasks/README.md"
                .into(),
        });
    }
    let world = deserialize_world(text, source, &outline, registry)?;
    check_world_level(&world, &outline, source)?;
    super::limits::check_entity_count(world.entities.len(), source)?;
    let mut out = Vec::with_capacity(world.entities.len());
    // Ids seen so far in a set: a scan of every earlier entity for each was quadratic in the entities.
    let mut ids = std::collections::HashSet::with_capacity(world.entities.len());
    for entity in &world.entities {
        let id_seen_before = !ids.insert(entity.entity);
        out.push(raw_entity(entity, id_seen_before, source, registry)?);
    }
    Ok(out)
}

/// The scene text read as a world of reflected entities, its syntax errors located and made plainer (and any text
/// after the scene refused).
fn deserialize_world(
    text: &str,
    source: &str,
    outline: &Outline,
    registry: &TypeRegistry,
) -> Result<DynamicWorld, SimError> {
    let parse_error = |line: usize, column: usize, message: String| SimError::Parse {
        file: source.to_string(),
        line,
        column,
        entity: outline.place_at(line, column),
        message,
    };
    let mut de = ron::de::Deserializer::from_str(text).map_err(|e| {
        let (line, column) = (e.span.start.line, e.span.start.col);
        let message = if hash_comment_at(text, line, column) {
            format!("{}: {HASH_COMMENT}", e.code)
        } else {
            e.code.to_string()
        };
        parse_error(line, column, message)
    })?;
    let world = WorldDeserializer {
        type_registry: registry,
        load_from_path: &mut NoAssets,
    }
    .deserialize(&mut de)
    .map_err(|e| {
        let e = de.span_error(e);
        let (line, column) = (e.span.start.line, e.span.start.col);
        let message = explain_parse_error(e.code.to_string(), registry);
        let message = explain_syntax(message, text, outline, registry, line, column);
        // A field's name without its `:` is read as a value of the field before it: name the field it is.
        if message.starts_with("Expected colon")
            && let Some((word, place)) = outline.place_of_word_before(line, column)
        {
            return SimError::Parse {
                file: source.to_string(),
                line,
                column,
                entity: place,
                message: format!(
                    "Expected colon: a field's name or a key is followed by `:`, like `{word}: …`"
                ),
            };
        }
        parse_error(line, column, message)
    })?;
    // A second scene pasted after the first, or stray text, would otherwise be dropped without a word.
    de.end().map_err(|e| {
        let e = de.span_error(e);
        parse_error(
            e.span.start.line,
            e.span.start.col,
            format!("{} after the scene's closing `)`", e.code),
        )
    })?;
    Ok(world)
}

/// Checks what the scene holds beside its entities: no field written twice, no resources.
fn check_world_level(
    world: &DynamicWorld,
    outline: &Outline,
    source: &str,
) -> Result<(), SimError> {
    // The deserializer keeps the last of a field written twice; an author meant one of them.
    if let Some(repeated) = outline.repeated_field() {
        let (l, c) = repeated.first;
        return Err(SimError::Parse {
            file: source.to_string(),
            line: repeated.line,
            column: repeated.column,
            entity: repeated.place,
            message: format!("the field is written twice (first at {l}:{c}); keep one"),
        });
    }
    if let Some(resource) = world.resources.first() {
        return Err(SimError::Invalid {
            file: source.to_string(),
            entity: "scene".into(),
            field: "resources".into(),
            message: format!(
                "task scenes hold no resources, found `{}`",
                resource.reflect_type_path()
            ),
        });
    }
    Ok(())
}

/// One reflected entity with its components typed; `id_seen_before` where an entity earlier in the file has its id.
fn raw_entity(
    entity: &DynamicEntity,
    id_seen_before: bool,
    source: &str,
    registry: &TypeRegistry,
) -> Result<RawEntity, SimError> {
    let label = reflected_label(entity.entity.to_bits(), &entity.components);
    // Errors name entities by id, so two entities with one id would be ambiguous.
    if id_seen_before {
        return Err(SimError::Invalid {
            file: source.to_string(),
            entity: label,
            field: "id".into(),
            message: "the id is used twice; give each entity its own".into(),
        });
    }
    let mut raw = RawEntity {
        id: entity.entity.to_bits(),
        ..default()
    };
    let slots = component_slots();
    for component in &entity.components {
        let info = component.get_represented_type_info();
        let errors = ComponentErrors {
            source,
            entity: &label,
            type_name: info.map_or("unknown", |i| i.type_path_table().short_path()),
            registry,
        };
        let type_id = info
            .map(|info| info.type_id())
            .ok_or_else(|| errors.invalid("component of unknown type"))?;
        let Some((_, fill)) = slots.iter().find(|(t, _)| *t == type_id) else {
            return Err(errors.invalid("not a task authoring component"));
        };
        fill(component.as_ref(), &mut raw, &errors)?;
    }
    Ok(raw)
}

/// Puts one reflected component of its type into its slot on a [`RawEntity`].
type FillSlot = fn(&dyn PartialReflect, &mut RawEntity, &ComponentErrors) -> Result<(), SimError>;

/// Each authoring component type, with how it fills its slot on a [`RawEntity`].
fn component_slots() -> [(TypeId, FillSlot); 13] {
    [
        (TypeId::of::<TaskSettings>(), |c, raw, e| {
            typed(c, &mut raw.settings, e)
        }),
        (TypeId::of::<Body>(), |c, raw, e| typed(c, &mut raw.body, e)),
        (TypeId::of::<Collider>(), |c, raw, e| {
            typed(c, &mut raw.collider, e)
        }),
        (TypeId::of::<Joint>(), |c, raw, e| {
            typed(c, &mut raw.joint, e)
        }),
        (TypeId::of::<Site>(), |c, raw, e| typed(c, &mut raw.site, e)),
        (TypeId::of::<ActionSpace>(), |c, raw, e| {
            typed(c, &mut raw.actions, e)
        }),
        (TypeId::of::<ObservationSpace>(), |c, raw, e| {
            typed(c, &mut raw.observations, e)
        }),
        (TypeId::of::<Goal>(), |c, raw, e| typed(c, &mut raw.goal, e)),
        (TypeId::of::<JointGoal>(), |c, raw, e| {
            typed(c, &mut raw.joint_goal, e)
        }),
        (TypeId::of::<AxisGoal>(), |c, raw, e| {
            typed(c, &mut raw.axis_goal, e)
        }),
        (TypeId::of::<RandomizePose>(), |c, raw, e| {
            typed(c, &mut raw.randomize_pose, e)
        }),
        (TypeId::of::<RandomizeTarget>(), |c, raw, e| {
            typed(c, &mut raw.randomize_target, e)
        }),
        (TypeId::of::<KinematicMotion>(), |c, raw, e| {
            typed(c, &mut raw.kinematic_motion, e)
        }),
    ]
}

/// How errors in converting one component name it: the file, the entity, the component's type.
struct ComponentErrors<'a> {
    /// The scene file.
    source: &'a str,
    /// The entity's label ([`reflected_label`]).
    entity: &'a str,
    /// The component's short type name, `unknown` where it has none.
    type_name: &'a str,
    /// The authoring types, to find a missing field by.
    registry: &'a TypeRegistry,
}

impl ComponentErrors<'_> {
    /// The component's `field` is wrong, as `message` says.
    fn error(&self, field: String, message: &str) -> SimError {
        SimError::Invalid {
            file: self.source.to_string(),
            entity: self.entity.to_string(),
            field,
            message: message.to_string(),
        }
    }

    /// The component as a whole is wrong, as `message` says.
    fn invalid(&self, message: &str) -> SimError {
        self.error(self.type_name.to_string(), message)
    }

    /// `component` could not be converted to its type: explained by the required field it lacks.
    fn unconvertible(&self, component: &dyn PartialReflect) -> SimError {
        match missing_field(component, self.registry) {
            Some(path) => self.error(
                format!("{}{path}", self.type_name),
                "is missing (the field has no default)",
            ),
            None => self.invalid("a field is missing or malformed"),
        }
    }
}

/// Converts `component` to `T` into `slot`, refusing a second one on the entity. Each authoring type is converted
/// from its reflected (dynamic) form, which the deserializer builds even with fields left out; a failed conversion
/// is explained by the required field it lacks.
fn typed<T: FromReflect>(
    component: &dyn PartialReflect,
    slot: &mut Option<T>,
    errors: &ComponentErrors,
) -> Result<(), SimError> {
    let value = T::from_reflect(component).ok_or_else(|| errors.unconvertible(component))?;
    if slot.replace(value).is_some() {
        return Err(errors.invalid("the component appears twice on this entity"));
    }
    Ok(())
}

/// A deserializer error made plainer: an unknown type gets the authoring components a scene can use (and loses
/// its empty `(stack: )`), an invalid entity key what ids are valid.
fn explain_parse_error(message: String, registry: &TypeRegistry) -> String {
    // Bevy reads an entity key as an entity's bits, in which 0 is no entity.
    if message.contains("invalid entity") {
        let plain = message.replace(
            "Attempting to deserialize an invalid entity.",
            "not an entity id",
        );
        return format!("{plain}: entity ids are whole numbers from 1");
    }
    if !message.contains("no registration found") {
        return message;
    }
    let mut known: Vec<&str> = registry
        .iter()
        .filter(|r| r.data::<ReflectComponent>().is_some())
        .map(|r| r.type_info().type_path_table().short_path())
        .collect();
    known.sort_unstable();
    let message = super::check::visible(&message.replace(" (stack: )", ""));
    // The type the file names, `qamlab_sim::authoring::Goals` in "no registration found for `...`".
    let named = message
        .split('`')
        .nth(1)
        .map(|path| path.rsplit("::").next().unwrap_or(path));
    match named.and_then(|name| super::check::closest_name(name, known.iter().copied())) {
        Some(meant) => format!("{message}: did you mean `qamlab_sim::authoring::{meant}`?"),
        None => format!(
            "{message}; a task scene's components are qamlab_sim::authoring::{{{}}}",
            known.join(", ")
        ),
    }
}

/// A syntax error's message with what the text at its position suggests: how an option, a struct's fields or an
/// enum's variant are written, that a comma is missing or a whole number expected, or that the text ends with
/// brackets still open.
fn explain_syntax(
    message: String,
    text: &str,
    outline: &Outline,
    registry: &TypeRegistry,
    line: usize,
    column: usize,
) -> String {
    // Bevy's trail of types through the value (` (stack: `A` -> `B`)`): the place names the field instead.
    let message = match message.find(" (stack: ") {
        Some(at) if message.ends_with(')') => message[..at].to_string(),
        _ => message,
    };
    if let Some(found) = message
        .strip_prefix("Found invalid std identifier ")
        .and_then(|rest| rest.split(", try").next())
    {
        // RON's own advice, a raw identifier, is never what a scene author wants.
        return format!(
            "expected a field name, found {found}: a struct's fields are written by name, like `(min: -0.6, \
             max: 0.6)` for a range"
        );
    }
    // The characters at the position and before it (RON counts columns in characters).
    let chars: Vec<char> = text
        .lines()
        .nth(line.saturating_sub(1))
        .map_or_else(Vec::new, |l| l.chars().collect());
    let at = |k: usize| chars.get(k).copied();
    let fraction = at(column.wrapping_sub(1)) == Some('.')
        && at(column.wrapping_sub(2)).is_some_and(|c| c.is_ascii_digit());
    if hash_comment_at(text, line, column) {
        return format!("{message}: {HASH_COMMENT}");
    }
    // A field's name expected where a `}` or `]` closes what holds the struct: the struct's `)` is missing.
    if message == "Expected identifier"
        && let Some(close @ ('}' | ']')) = at(column.wrapping_sub(1))
        && let Some(('(', l, c)) = outline.open_before(line, column)
    {
        return format!(
            "{message}: found `{close}` where a field's name was expected: a `)` is probably missing before it, to \
             close the `(` opened at {l}:{c}"
        );
    }
    if let Some((component, l, c)) = outline.component_left_open_at(line, column) {
        return format!(
            "{message}: the component `{component}` opened at {l}:{c} is not closed; a `)` is missing before \
             this next component"
        );
    }
    if message == "Expected identifier"
        && let Some(variant) = outline.variant_opened_before(line, column)
    {
        return format!("{message}: {}", variant_fields_hint(variant, registry));
    }
    // How the math types and a range are written, where RON expected one and found something else.
    let written = |ty: &str| match ty {
        "Vec3" => Some("a vector is written `(x, y, z)`, like `(0.0, 0.0, -9.81)`"),
        "Quat" => Some(
            "a rotation is a unit quaternion written `(x, y, z, w)`, like `(0.0, 0.0, 0.0, 1.0)` for none or \
             `(0.0, 0.0, 0.7071068, 0.7071068)` for a quarter turn about z",
        ),
        "Range" => Some("a range is written `(min: -1.0, max: 1.0)`"),
        _ => None,
    };
    if let Some(ty) = message
        .strip_prefix("Expected opening `(` for struct `")
        .and_then(|rest| rest.strip_suffix('`'))
        && let Some(form) = written(ty)
    {
        return format!("{message}: {form}");
    }
    if let Some(ty) = message
        .strip_prefix("Expected struct `")
        .and_then(|rest| rest.strip_suffix("` but found `Some`"))
    {
        let like = written(ty).map_or(String::new(), |form| format!(" ({form})"));
        if outline.some_opened_before(line, column) {
            return format!(
                "{message}: `Some(..)` is written once, around the value: `Some(value)`{like}"
            );
        }
        return format!(
            "{message}: this field is required, not optional: write its value without `Some(..)`{like}"
        );
    }
    // A bracket where a name was expected is a bracket missing or one too many, not a name left unquoted.
    if message == "Expected string"
        && let Some(bracket @ ('(' | ')' | '[' | ']' | '{' | '}')) =
            next_non_blank(text, line, column).next()
    {
        let why = if matches!(bracket, ')' | ']' | '}') {
            "is it one too many, or is a `}` missing before it?"
        } else {
            "is a name missing before it?"
        };
        return format!(
            "{message}: found `{bracket}` where a name in double quotes was expected: {why}"
        );
    }
    let hint = match message.as_str() {
        "Expected option" => Some("an optional field is written `Some(value)` or `None`"),
        "Expected identifier" if outline.string_at(line, column) => {
            Some("an enum's variant is written bare, like `Dynamic`, not as a string")
        }
        // RON notices a missing comma at the key after it, and reads `100.5` as 100 then something else.
        "Expected comma" if outline.key_at(line, column) => {
            Some("a comma is missing before this field, after the value before it")
        }
        // Every whole-number field of a scene is a u32 (counts and collision masks).
        // RON points at the minus sign or at the digit after it.
        "Integer is out of bounds"
            if [1, 2]
                .iter()
                .any(|&k| at(column.wrapping_sub(k)) == Some('-')) =>
        {
            Some("this field takes a whole number of 0 or more")
        }
        "Integer is out of bounds" => Some("this field takes a whole number up to 4294967295"),
        "Expected string" if !outline.string_at(line, column) => {
            Some("a name is written in double quotes, like `name: \"arm\"`")
        }
        "Expected comma" if fraction => {
            return "expected a whole number: this field takes no fraction".into();
        }
        _ => None,
    };
    let mut message = match hint {
        Some(hint) => format!("{message}: {hint}"),
        None => message,
    };
    if outline.at_end(line, column)
        && let Some((open, (l, c))) = outline.unclosed()
    {
        let brackets = if open == 1 { "bracket" } else { "brackets" };
        message.push_str(&format!(
            "; the text ends with {open} {brackets} open (the innermost from {l}:{c}): is the file cut short?"
        ));
    }
    message
}

/// What a syntax error at a `#` says: TOML's and YAML's comment, which RON reads as the start of an attribute
/// (`#![enable(...)]`).
const HASH_COMMENT: &str = "`#` starts no comment in RON: comments are written `// …` or `/* … */`";

/// Whether a `#` that starts no attribute (`#!`) is at `(line, column)` or just before it, where RON stops on one,
/// or is the first thing after it past blanks: after an opening bracket RON reports the end of the bracket's line.
fn hash_comment_at(text: &str, line: usize, column: usize) -> bool {
    let chars: Vec<char> = text
        .lines()
        .nth(line.saturating_sub(1))
        .map_or_else(Vec::new, |l| l.chars().collect());
    let before = [1, 2].iter().any(|&k| {
        let k = column.wrapping_sub(k);
        chars.get(k) == Some(&'#') && chars.get(k + 1) != Some(&'!')
    });
    let mut next = next_non_blank(text, line, column);
    before || (next.next() == Some('#') && next.next() != Some('!'))
}

/// The characters from `(line, column)` (1-based, in characters, as RON counts) on, from the first that is not
/// blank, across lines.
fn next_non_blank(text: &str, line: usize, column: usize) -> impl Iterator<Item = char> + '_ {
    let start = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>();
    let rest = &text[start.min(text.len())..];
    rest.chars()
        .skip(column.saturating_sub(1))
        .skip_while(|c| c.is_whitespace())
}

/// How the fields of the enum variant `variant` are written, from the authoring types that have one so named:
/// `` `Position`'s fields are written by name: `Position(frame: …)` ``.
fn variant_fields_hint(variant: &str, registry: &TypeRegistry) -> String {
    let mut forms: Vec<String> = registry
        .iter()
        .filter_map(|r| match r.type_info() {
            bevy::reflect::TypeInfo::Enum(e) => match e.variant(variant)? {
                bevy::reflect::enums::VariantInfo::Struct(s) => Some(
                    s.field_names()
                        .iter()
                        .map(|f| format!("{f}: …"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                _ => None,
            },
            _ => None,
        })
        .map(|fields| format!("`{variant}({fields})`"))
        .collect();
    forms.sort();
    forms.dedup();
    match forms.as_slice() {
        [] => format!("`{variant}`'s fields are written by name, like `{variant}(name: value)`"),
        _ => format!(
            "`{variant}`'s fields are written by name: {}",
            forms.join(" or ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use bevy::ecs::reflect::ReflectComponent;

    use super::component_slots;

    #[test]
    fn every_registered_authoring_component_has_a_slot() {
        // A component registered for scene files but given no slot would be refused at load as "not a task
        // authoring component".
        let mut registry = bevy::reflect::TypeRegistry::default();
        crate::authoring::register_authoring_types(&mut registry);
        let slots: HashSet<_> = component_slots().iter().map(|(id, _)| *id).collect();
        let components: Vec<_> = registry
            .iter()
            .filter(|r| r.data::<ReflectComponent>().is_some())
            .map(|r| (r.type_id(), r.type_info().type_path()))
            .collect();
        for (id, path) in &components {
            assert!(slots.contains(id), "{path} is registered but has no slot");
        }
        assert_eq!(components.len(), slots.len(), "{components:?}");
    }
}
