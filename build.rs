include!("build-support/torch_link.rs");

/// Records the resolved versions of the engine crates (from Cargo.lock) for `qamlab doctor`.
fn record_locked_versions() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    for (krate, var) in [
        ("bevy", "QAMLAB_BEVY_VERSION"),
        ("bevy_rapier3d", "QAMLAB_BEVY_RAPIER_VERSION"),
        ("rapier3d", "QAMLAB_RAPIER_VERSION"),
        ("tch", "QAMLAB_TCH_VERSION"),
    ] {
        let version = locked_version(&lock, krate).unwrap_or_else(|| "unknown".into());
        println!("cargo:rustc-env={var}={version}");
    }
}

fn locked_version(lock: &str, krate: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{krate}\"") {
            let version = lines.next()?.strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_string());
        }
    }
    None
}

fn main() {
    link_libtorch();
    record_locked_versions();
}
