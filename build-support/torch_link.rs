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
    // oneMKL asks `mkl_serv_intel_cpu_true()` which kernels to run; qamlab-agent's definition
    // (agent/src/mkl_kernels.rs) answers it once it is in the executable's dynamic symbol table,
    // ahead of libtorch's own. `-u` pulls it in from the rlib even where nothing calls it.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64")
    {
        println!("cargo:rustc-link-arg=-Wl,-u,mkl_serv_intel_cpu_true");
        println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol=mkl_serv_intel_cpu_true");
    }
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
