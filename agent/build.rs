include!("../build-support/torch_link.rs");

fn main() {
    link_libtorch();
    build_cuda_shims();
}

/// Compiles the CUDA shims over libtorch (`cuda/graph_shim.cpp`: CUDA graph capture;
/// `cuda/precision_shim.cpp`: the TF32 matmul switch; `cuda/fused_shim.cpp`: Dense + GELU as one
/// op) when libtorch has CUDA and the CUDA runtime
/// headers that came with the torch wheel are found; otherwise the crate builds without them and
/// `cuda_graph::available()` and `precision::available()` are false.
fn build_cuda_shims() {
    use std::path::{Path, PathBuf};
    println!("cargo::rustc-check-cfg=cfg(qamlab_cuda_shim)");
    for file in [
        "cuda/shim.h",
        "cuda/graph_shim.cpp",
        "cuda/precision_shim.cpp",
        "cuda/fused_shim.cpp",
    ] {
        println!("cargo:rerun-if-changed={file}");
    }
    println!("cargo:rerun-if-env-changed=QAMLAB_CUDA_INCLUDE");
    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        return;
    };
    let torch = PathBuf::from(&libtorch);
    if !torch.join("lib/libtorch_cuda.so").exists() {
        return;
    }
    let site = torch.parent().unwrap_or(Path::new("/"));
    // The runtime API headers (nvidia-cuda-runtime wheel, or a toolkit) and `crt/host_config.h`,
    // which the runtime wheel leaves out but triton's bundled headers and a toolkit have.
    let mut candidates: Vec<PathBuf> = std::env::var_os("QAMLAB_CUDA_INCLUDE")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    candidates.extend([
        site.join("nvidia/cu13/include"),
        site.join("nvidia/cuda_runtime/include"),
        site.join("triton/backends/nvidia/include"),
        PathBuf::from("/usr/local/cuda/include"),
    ]);
    let runtime = candidates
        .iter()
        .find(|d| d.join("cuda_runtime_api.h").exists());
    let crt = candidates
        .iter()
        .find(|d| d.join("crt/host_config.h").exists());
    let (Some(runtime), Some(crt)) = (runtime, crt) else {
        println!(
            "cargo:warning=libtorch has CUDA but the CUDA runtime headers were not found \
             (set QAMLAB_CUDA_INCLUDE); building without CUDA graphs or the TF32 switch"
        );
        return;
    };
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("cuda/graph_shim.cpp")
        .file("cuda/precision_shim.cpp")
        .file("cuda/fused_shim.cpp")
        .include(torch.join("include"))
        .include(runtime);
    if crt != runtime {
        build.include(crt);
    }
    build
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .warnings(false)
        .compile("qamlab_cuda_shims");
    let lib = torch.join("lib");
    println!("cargo:rustc-link-search=native={}", lib.display());
    for name in ["torch_cuda", "c10_cuda", "torch_cpu", "c10"] {
        println!("cargo:rustc-link-lib=dylib={name}");
    }
    println!("cargo:rustc-cfg=qamlab_cuda_shim");
}
