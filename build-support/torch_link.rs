// Shared by the build scripts of every crate whose binaries or tests link libtorch (included with
// `include!`). It makes those binaries find libtorch without LD_LIBRARY_PATH (an rpath) and keeps
// libtorch_cuda linked: it is reached only through static initialisers, so `--as-needed` would drop
// it and CUDA would silently be unavailable on a GPU machine.
fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        return;
    };
    let lib = std::path::Path::new(&libtorch).join("lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
