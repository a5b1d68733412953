//! What a scene entity's components may be: parsing types each one by the authoring component it is, and refuses a
//! registered type that is no component, naming the entity and the type.

mod common;

use common::*;
use qamlab_sim::prelude::*;

#[test]
fn a_type_that_is_no_authoring_component_is_refused() {
    let text = cube_single_text();
    let collider = "        \"qamlab_sim::authoring::Collider\": (\n          shape: Cuboid(half_extents: (0.5, 0.5, \
                    0.05)), density: 0.0, friction: 1.0, membership: 1,\n        ),\n";
    assert!(
        text.contains(collider),
        "the table's collider is in cube-single"
    );
    // `Range` is registered (fields are written with it) but is no component.
    let edited = text.replacen(
        collider,
        &format!("{collider}        \"qamlab_sim::authoring::Range\": (min: 0.0, max: 1.0),\n"),
        1,
    );
    let err = TaskScene::from_ron(&edited, "bad.scn.ron").unwrap_err();
    match &err {
        SimError::Invalid {
            file,
            entity,
            field,
            message,
        } => {
            assert_eq!(
                (
                    file.as_str(),
                    entity.as_str(),
                    field.as_str(),
                    message.as_str()
                ),
                (
                    "bad.scn.ron",
                    "entity 2 (\"table\")",
                    "Range",
                    "not a task authoring component"
                ),
                "{err}"
            );
        }
        other => panic!("expected an Invalid error, got {other}"),
    }
}
