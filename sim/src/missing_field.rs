//! Why a deserialized scene component cannot become its Rust type: the path of the required field it lacks.
//!
//! Bevy's reflection deserializer accepts a component with fields left out and only the later `FromReflect`
//! conversion fails, silently. This module walks the reflected value against its type information to name the
//! field, so a scene error can say `Body.kind is missing` rather than that something somewhere is.

use bevy::reflect::enums::{DynamicEnum, DynamicVariant, VariantInfo};
use bevy::reflect::list::DynamicList;
use bevy::reflect::std_traits::ReflectDefault;
use bevy::reflect::{PartialReflect, ReflectFromReflect, ReflectRef, TypeInfo, TypeRegistry};

/// The path (`.kind`, `.shape.half_extents`, `.x.max`, `.actuators[0].control`) of a required field missing in
/// `value` or below it, or `None` when nothing is missing.
pub(crate) fn missing_field(value: &dyn PartialReflect, registry: &TypeRegistry) -> Option<String> {
    let info = value.get_represented_type_info()?;
    let below = |name: &str, field: &dyn PartialReflect| {
        Some(format!("{name}{}", missing_field(field, registry)?))
    };
    match (info, value.reflect_ref()) {
        (TypeInfo::Struct(ty), ReflectRef::Struct(v)) => {
            let inside = (0..v.field_len())
                .find_map(|i| below(&format!(".{}", v.name_at(i)?), v.field_at(i)?));
            if inside.is_some() {
                return inside;
            }
            let missing: Vec<_> = ty.iter().filter(|f| v.field(f.name()).is_none()).collect();
            // A missing field with `#[reflect(default)]` is fine: a field is required when the conversion
            // still fails with every other missing field filled in. A field that nothing can stand in for
            // (an enum without `None` or a default) leaves the trials of the others inconclusive: blame a field
            // whose trial was conclusive, else one of those.
            let from = registry.get_type_data::<ReflectFromReflect>(info.type_id())?;
            let fillers: Vec<_> = missing
                .iter()
                .map(|f| f.type_info().and_then(|t| placeholder(t, registry)))
                .collect();
            let trial_fails = |k: usize| {
                let mut trial = v.to_dynamic_struct();
                trial.set_represented_type(Some(info));
                let mut conclusive = true;
                for (j, other) in missing.iter().enumerate().filter(|&(j, _)| j != k) {
                    match &fillers[j] {
                        Some(filler) => trial.insert_boxed(other.name(), filler.to_dynamic()),
                        None => conclusive = false,
                    }
                }
                (from.from_reflect(&trial).is_none(), conclusive)
            };
            let trials: Vec<_> = (0..missing.len()).map(trial_fails).collect();
            let blamed = trials
                .iter()
                .position(|&(fails, conclusive)| fails && conclusive)
                .or_else(|| fillers.iter().position(Option::is_none))
                .or_else(|| trials.iter().position(|&(fails, _)| fails))?;
            Some(format!(".{}", missing[blamed].name()))
        }
        (TypeInfo::Enum(ty), ReflectRef::Enum(v)) => match ty.variant(v.variant_name())? {
            // Named like the scene checks name them: `Collider.shape.half_extents`, without the variant.
            VariantInfo::Struct(fields) => fields.iter().find_map(|f| match v.field(f.name()) {
                None => Some(format!(".{}", f.name())),
                Some(field) => below(&format!(".{}", f.name()), field),
            }),
            // `Some(range)` is named by the range's own fields.
            VariantInfo::Tuple(fields) => {
                (0..fields.field_len()).find_map(|i| missing_field(v.field_at(i)?, registry))
            }
            VariantInfo::Unit(_) => None,
        },
        (_, ReflectRef::List(v)) => v
            .iter()
            .enumerate()
            .find_map(|(i, item)| below(&format!("[{i}]"), item)),
        (_, ReflectRef::Tuple(v)) => v
            .iter_fields()
            .enumerate()
            .find_map(|(i, item)| below(&format!(".{i}"), item)),
        _ => None,
    }
}

/// Some well-formed value of a type, to stand in for a field that is left out: its default, `None` or `[]`.
fn placeholder(
    info: &'static TypeInfo,
    registry: &TypeRegistry,
) -> Option<Box<dyn PartialReflect>> {
    if let Some(default) = registry.get_type_data::<ReflectDefault>(info.type_id()) {
        return Some(default.default().into_partial_reflect());
    }
    match info {
        TypeInfo::Enum(ty) if ty.contains_variant("None") => {
            let mut none = DynamicEnum::new("None", DynamicVariant::Unit);
            none.set_represented_type(Some(info));
            Some(Box::new(none))
        }
        TypeInfo::List(_) => {
            let mut empty = DynamicList::default();
            empty.set_represented_type(Some(info));
            Some(Box::new(empty))
        }
        _ => None,
    }
}
