//! `qamlab doctor`: what this machine offers the lab (libtorch, CUDA, CPU, display, render adapters).

use std::path::{Path, PathBuf};

/// One line of the doctor's report.
struct Check {
    name: &'static str,
    value: String,
}

/// Prints libtorch's version and location, CUDA availability and device names, CPU threads,
/// display and rendering adapters, and the engine versions this binary was built with.
pub fn run() -> anyhow::Result<()> {
    let mut checks = vec![libtorch()];
    checks.extend(cuda_checks());
    checks.extend(cpu_checks());
    checks.extend(graphics_checks());
    checks.extend(engine_checks());
    print_checks(&checks)
}

/// Prints one line a check, the values aligned in a column.
fn print_checks(checks: &[Check]) -> anyhow::Result<()> {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for check in checks {
        qamlab_headless::stdout_line!("{:width$}  {}", check.name, check.value)?;
    }
    Ok(())
}

/// The libtorch this process loaded: its version, the tch it was built against, and where it lives.
fn libtorch() -> Check {
    let torch_dir = loaded_libtorch_dir();
    let torch_version = torch_dir
        .as_deref()
        .and_then(torch_version_of)
        .unwrap_or_else(|| "unknown".into());
    Check {
        name: "libtorch",
        value: format!(
            "{torch_version} (tch {}) at {}",
            env!("QAMLAB_TCH_VERSION"),
            torch_dir
                .as_deref()
                .map_or("?".into(), |p| p.display().to_string())
        ),
    }
}

/// The CUDA devices and what training can use on them: cuDNN, CUDA graphs, TF32 and the fused Dense + GELU.
fn cuda_checks() -> [Check; 5] {
    let cuda = tch::Cuda::is_available();
    [
        Check {
            name: "CUDA",
            value: cuda_devices(cuda),
        },
        Check {
            name: "cuDNN",
            value: if tch::Cuda::cudnn_is_available() {
                "available".into()
            } else {
                "not available".into()
            },
        },
        Check {
            name: "CUDA graphs",
            value: cuda_graphs(cuda),
        },
        Check {
            name: "TF32 matmuls",
            value: tf32_matmuls(),
        },
        Check {
            name: "Dense + GELU",
            value: dense_gelu(cuda),
        },
    ]
}

/// How many CUDA devices there are, and their model names where the driver gives them.
fn cuda_devices(cuda: bool) -> String {
    if !cuda {
        return "not available (training runs on the CPU)".into();
    }
    let names = nvidia_gpu_names();
    format!(
        "available: {} device(s){}{}",
        tch::Cuda::device_count(),
        if names.is_empty() { "" } else { ": " },
        names.join(", ")
    )
}

/// Whether this build has CUDA graphs and, with a device, whether capture and replay work on it.
fn cuda_graphs(cuda: bool) -> String {
    match (qamlab_agent::cuda_graph::available(), cuda) {
        (false, _) => {
            "not in this build (no CUDA headers when it was built: training runs eagerly)".into()
        }
        (true, false) => "built in; no CUDA device to use them".into(),
        (true, true) => match qamlab_agent::cuda_graph::self_test(tch::Device::Cuda(0)) {
            Ok(()) => "built in; capture and replay work on cuda:0".into(),
            Err(e) => format!("built in, but failing (training runs eagerly): {e}"),
        },
    }
}

/// Whether this build can switch CUDA matmuls to TF32, and which way the switch is now.
fn tf32_matmuls() -> String {
    match (
        qamlab_agent::precision::available(),
        qamlab_agent::precision::tf32_matmuls(),
    ) {
        (false, _) => "no switch in this build (CUDA matmuls stay IEEE fp32)".into(),
        (true, Ok(on)) => format!(
            "switch built in, now {} (`train --tf32 true`, `bench agent --tf32 both`)",
            if on {
                "on"
            } else {
                "off: CUDA matmuls in IEEE fp32"
            }
        ),
        (true, Err(e)) => format!("switch built in, but failing: {e}"),
    }
}

/// Whether frozen roll-outs on cuda:0 can use libtorch's fused Dense + GELU (only if its GELU is the tanh form).
fn dense_gelu(cuda: bool) -> String {
    use qamlab_agent::gelu::{FUSED_GELU_TOLERANCE, check_cuda_dense_gelu};
    if !cuda {
        return "no CUDA device (the CPU runs qamlab's own GELU kernel)".into();
    }
    match check_cuda_dense_gelu(tch::Device::Cuda(0)) {
        Some(Ok(diff)) if diff <= FUSED_GELU_TOLERANCE => format!(
            "one fused op on cuda:0 in frozen roll-outs (its GELU is the tanh form: max difference {diff:.1e})"
        ),
        Some(Ok(diff)) => format!(
            "two kernels on cuda:0: the fused op's GELU is not the tanh form (max difference {diff:.1e})"
        ),
        Some(Err(e)) => format!("two kernels on cuda:0: the fused op fails: {e}"),
        None => "not checked".into(),
    }
}

/// The CPU's threads, and the matmul kernels and memory allocator libtorch uses on it.
fn cpu_checks() -> [Check; 3] {
    [
        Check {
            name: "CPU threads",
            value: format!(
                "{} hardware; libtorch's default {} (training on the CPU takes half the cores for libtorch, and \
                 splits each update over two threads)",
                std::thread::available_parallelism().map_or(0, |n| n.get()),
                tch::get_num_threads()
            ),
        },
        Check {
            name: "CPU matmuls",
            value: qamlab_agent::mkl_kernels::active().describe().into(),
        },
        Check {
            name: "CPU memory",
            value: qamlab_agent::cpu_memory::allocator().describe().into(),
        },
    ]
}

/// What a viewer window could open on: the display, and the render adapters.
fn graphics_checks() -> [Check; 2] {
    [
        Check {
            name: "display",
            value: display_description(),
        },
        Check {
            name: "render adapters",
            value: render_adapters(),
        },
    ]
}

/// The engine versions this binary was built with.
fn engine_checks() -> [Check; 2] {
    [
        Check {
            name: "bevy",
            value: env!("QAMLAB_BEVY_VERSION").into(),
        },
        Check {
            name: "rapier",
            value: format!(
                "rapier3d {} (bevy_rapier3d {})",
                env!("QAMLAB_RAPIER_VERSION"),
                env!("QAMLAB_BEVY_RAPIER_VERSION")
            ),
        },
    ]
}

/// The directory of the libtorch this process actually loaded (read from the process's memory
/// map, so it is the truth even when LD_LIBRARY_PATH overrides the rpath).
fn loaded_libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let lib = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))?;
    // <torch>/lib/libtorch_cpu.so -> <torch>
    Path::new(lib).parent()?.parent().map(Path::to_path_buf)
}

/// Reads `__version__` from the `version.py` that the torch wheel ships beside its libraries.
fn torch_version_of(torch_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(torch_dir.join("version.py")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_string())
}

/// GPU model names from the NVIDIA driver's procfs entries (no nvidia-smi needed).
fn nvidia_gpu_names() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc/driver/nvidia/gpus") else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("information")).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("Model:"))
                .map(|m| m.trim().to_string())
        })
        .collect();
    names.sort();
    names
}

/// The X11 and Wayland displays a window could open on, or how to get one when there is none.
fn display_description() -> String {
    let x11 = std::env::var("DISPLAY").ok().filter(|v| !v.is_empty());
    let wayland = std::env::var("WAYLAND_DISPLAY")
        .ok()
        .filter(|v| !v.is_empty());
    match (x11, wayland) {
        (None, None) => "none (headless; `xvfb-run -a qamlab view ...` gives a virtual one)".into(),
        (x, w) => [
            x.map(|d| format!("X11 {d}")),
            w.map(|d| format!("Wayland {d}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", "),
    }
}

/// Vulkan drivers installed (ICD manifests) and GPU render nodes: what a Bevy window could use.
fn render_adapters() -> String {
    let mut drivers = Vec::new();
    for dir in ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name().to_string_lossy().into_owned();
                let label = name.trim_end_matches(".json").to_string();
                let label = match label.as_str() {
                    l if l.starts_with("lvp_icd") => format!("{l} (lavapipe, software)"),
                    l => l.to_string(),
                };
                drivers.push(label);
            }
        }
    }
    drivers.sort();
    drivers.dedup();
    let render_nodes = std::fs::read_dir("/dev/dri")
        .map(|e| {
            e.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("renderD"))
                .count()
        })
        .unwrap_or(0);
    if drivers.is_empty() {
        return format!("no Vulkan driver installed; {render_nodes} GPU render node(s)");
    }
    // An installed driver is not an adapter: a Mesa GPU driver needs a render node to drive, NVIDIA's its own
    // device files; lavapipe needs nothing.
    let software = drivers.iter().any(|d| d.starts_with("lvp_icd"));
    let nvidia = drivers.iter().any(|d| d.starts_with("nvidia"));
    let usable = match (render_nodes, nvidia, software) {
        (0, false, true) => {
            "; usable here: lavapipe (software) only, no GPU render node".to_string()
        }
        (0, false, false) => "; none usable here: no GPU render node".to_string(),
        (n, _, _) => format!("; {n} GPU render node(s)"),
    };
    format!("Vulkan drivers installed: {}{usable}", drivers.join(", "))
}
