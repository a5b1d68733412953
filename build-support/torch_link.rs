// Shared by the build scripts of every crate whose binaries or tests link libtorch (included with
// `include!`). It makes those binaries find libtorch without LD_LIBRARY_PATH (an rpath) and keeps
// libtorch_cuda linked: it is reached only through static initialisers, so `--as-needed` would drop
// it and CUDA would silently be unavailable on a GPU machine. And it exports qamlab's answer to
// oneMKL's CPU-vendor question from those binaries.
fn link_libtorch() {
    export_mkl_vendor_answer();
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

/// oneMKL asks `mkl_serv_intel_cpu_true()` which kernels to run; qamlab-agent's definition
/// (agent/src/mkl_kernels.rs) answers once it is in the executable's dynamic symbol table, ahead of
/// libtorch's own. `-u` pulls it in from the rlib even where nothing calls it; a dynamic list
/// (which GNU ld, gold, lld and mold all take) exports it. Done however libtorch was found.
fn export_mkl_vendor_answer() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
        || std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64")
    {
        return;
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let list = out.join("mkl-vendor-answer.list");
    std::fs::write(&list, "{ mkl_serv_intel_cpu_true; };\n").expect("writing the dynamic list");
    println!("cargo:rustc-link-arg=-Wl,-u,mkl_serv_intel_cpu_true");
    println!("cargo:rustc-link-arg=-Wl,--dynamic-list={}", list.display());
}
