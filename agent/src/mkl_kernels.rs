//! Which matrix-product kernels libtorch's oneMKL runs on the CPU.
//!
//! oneMKL (statically inside `libtorch_cpu.so`) asks `mkl_serv_intel_cpu_true()` whether the CPU
//! is Intel's and, when it is not, keeps to its AVX2 kernels for other vendors even on CPUs with
//! AVX-512: on the AMD Zen 5 dev box a 1024x512x512 float32 product took 4.5 ms (120 GFLOP/s)
//! that way and 2.0 ms (271 GFLOP/s) with the Intel kernels, and a demo-size QAM update spends
//! half its time in such products (docs/benchmarks.md, "Agent"). The Intel kernels still choose
//! by the CPU's feature flags, so they use only instructions the CPU has; the results are float32
//! products summed in another order.
//!
//! This crate defines that function and the build scripts (`build-support/torch_link.rs`) export
//! it from every qamlab executable, so the dynamic linker resolves oneMKL's call to it ahead of
//! oneMKL's own. It answers "Intel" on CPUs with AVX-512, where that was measured to pay; on
//! AVX2-only CPUs of other vendors oneMKL's own kernels for them were not measured against
//! Intel's, so they stay. `QAMLAB_MKL_KERNELS` overrides: `vendor` keeps oneMKL's own choice,
//! `intel` takes the Intel kernels on any x86-64 CPU.

use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that selects the kernels: `intel`, `vendor`, or unset (Intel's on
/// CPUs with AVX-512, oneMKL's own choice elsewhere).
pub const KERNELS_ENV: &str = "QAMLAB_MKL_KERNELS";

/// Set when oneMKL has asked, so that `qamlab doctor` reports what happened rather than what
/// was arranged.
static ASKED: AtomicBool = AtomicBool::new(false);

/// Which kernels oneMKL was told to use, for `qamlab doctor` and the runs' summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MklKernels {
    /// Intel's kernels on a CPU of another vendor: the override at work.
    IntelOnOtherVendor,
    /// An Intel CPU: oneMKL uses its Intel kernels anyway.
    IntelCpu,
    /// Another vendor's CPU without AVX-512: oneMKL's own kernels for it.
    VendorWithoutAvx512,
    /// Another vendor's CPU with oneMKL's own choice, as `QAMLAB_MKL_KERNELS=vendor` asked.
    VendorRequested,
    /// The override is not in this executable (its link arguments did not take effect): oneMKL
    /// makes its own choice.
    OverrideMissing,
    /// oneMKL never asked during a matrix product: this libtorch's products do not go through
    /// a oneMKL that asks this way, so the answer changes nothing.
    NotAsked,
    /// Not an x86-64 Linux build: no oneMKL vendor check to answer.
    NotApplicable,
}

impl MklKernels {
    /// One line for `qamlab doctor`.
    pub fn describe(self) -> &'static str {
        match self {
            MklKernels::IntelOnOtherVendor => {
                "oneMKL's Intel kernels on this non-Intel CPU (QAMLAB_MKL_KERNELS=vendor gives oneMKL's own choice)"
            }
            MklKernels::IntelCpu => "oneMKL's Intel kernels (an Intel CPU)",
            MklKernels::VendorWithoutAvx512 => {
                "oneMKL's kernels for this non-Intel CPU without AVX-512 (QAMLAB_MKL_KERNELS=intel tries Intel's)"
            }
            MklKernels::VendorRequested => {
                "oneMKL's kernels for this non-Intel CPU (QAMLAB_MKL_KERNELS=vendor)"
            }
            MklKernels::OverrideMissing => {
                "oneMKL's own choice: the override is missing from this executable (see build-support/torch_link.rs)"
            }
            MklKernels::NotAsked => {
                "libtorch's own: its matrix products never asked oneMKL's vendor question"
            }
            MklKernels::NotApplicable => "libtorch's own (not an x86-64 Linux build)",
        }
    }

    /// A few words for a benchmark's header and a run's summary.
    pub fn label(self) -> &'static str {
        match self {
            MklKernels::IntelOnOtherVendor | MklKernels::IntelCpu => "oneMKL's Intel kernels",
            MklKernels::VendorWithoutAvx512
            | MklKernels::VendorRequested
            | MklKernels::OverrideMissing => "oneMKL's kernels for this vendor",
            MklKernels::NotAsked | MklKernels::NotApplicable => "libtorch's matmuls",
        }
    }
}

/// What the environment variable asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    /// Unset: Intel's kernels where the CPU has AVX-512.
    Auto,
    Intel,
    Vendor,
}

/// The choice in [`KERNELS_ENV`]; a value that is neither `intel` nor `vendor` counts as unset
/// ([`env_warning`] says so at start).
fn choice() -> Choice {
    match std::env::var(KERNELS_ENV).as_deref() {
        Ok("intel") => Choice::Intel,
        Ok("vendor") => Choice::Vendor,
        _ => Choice::Auto,
    }
}

/// A warning for a [`KERNELS_ENV`] value that is not understood, to print at start (oneMKL's
/// question comes from inside a matrix product, where nothing should be printed).
pub fn env_warning() -> Option<String> {
    let value = std::env::var_os(KERNELS_ENV)?;
    let understood = value == "intel" || value == "vendor";
    (!understood).then(|| {
        format!(
            "{KERNELS_ENV}={} is not understood (intel or vendor); the default applies",
            value.to_string_lossy()
        )
    })
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use super::{ASKED, Choice, MklKernels, choice};
    use std::ffi::{c_int, c_void};
    use std::sync::OnceLock;
    use std::sync::atomic::Ordering;

    /// oneMKL's question, answered (see the module's doc); the CPU's real vendor where the
    /// Intel kernels are not wanted, which is what oneMKL's own definition answers.
    #[unsafe(no_mangle)]
    pub extern "C" fn mkl_serv_intel_cpu_true() -> c_int {
        static ANSWER: OnceLock<c_int> = OnceLock::new();
        ASKED.store(true, Ordering::Relaxed);
        *ANSWER.get_or_init(|| c_int::from(genuine_intel() || wants_intel_kernels()))
    }

    fn wants_intel_kernels() -> bool {
        match choice() {
            Choice::Intel => true,
            Choice::Vendor => false,
            Choice::Auto => std::arch::is_x86_feature_detected!("avx512f"),
        }
    }

    fn genuine_intel() -> bool {
        let id = std::arch::x86_64::__cpuid(0);
        let mut vendor = [0u8; 12];
        vendor[..4].copy_from_slice(&id.ebx.to_le_bytes());
        vendor[4..8].copy_from_slice(&id.edx.to_le_bytes());
        vendor[8..].copy_from_slice(&id.ecx.to_le_bytes());
        &vendor == b"GenuineIntel"
    }

    /// True when the dynamic linker resolves the name to this function, as it does for
    /// oneMKL's call: the executable exports it (the build scripts' link arguments took effect).
    pub fn override_linked() -> bool {
        // SAFETY: dlsym with RTLD_DEFAULT (the global lookup, the executable first) and a
        // NUL-terminated name only reads the loaded objects' symbol tables.
        let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"mkl_serv_intel_cpu_true".as_ptr()) };
        found == mkl_serv_intel_cpu_true as *mut c_void
    }

    pub fn active() -> MklKernels {
        if !override_linked() {
            return MklKernels::OverrideMissing;
        }
        if !ASKED.load(Ordering::Relaxed) {
            // A product large enough for oneMKL's sgemm makes it ask, if it ever will.
            let a = tch::Tensor::ones([64, 64], (tch::Kind::Float, tch::Device::Cpu));
            let _ = a.matmul(&a);
        }
        if !ASKED.load(Ordering::Relaxed) {
            MklKernels::NotAsked
        } else if genuine_intel() {
            MklKernels::IntelCpu
        } else if mkl_serv_intel_cpu_true() == 1 {
            MklKernels::IntelOnOtherVendor
        } else if choice() == Choice::Vendor {
            MklKernels::VendorRequested
        } else {
            MklKernels::VendorWithoutAvx512
        }
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub use imp::{mkl_serv_intel_cpu_true, override_linked};

/// Which kernels oneMKL uses in this process (after a small matrix product, if none has run yet,
/// so that oneMKL has asked).
pub fn active() -> MklKernels {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    return imp::active();
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    MklKernels::NotApplicable
}

/// Whether oneMKL has asked its vendor question in this process.
pub fn asked() -> bool {
    ASKED.load(Ordering::Relaxed)
}

#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn the_executable_answers_onemkl() {
        // Without the build scripts' export this test binary would resolve the name to
        // libtorch's own definition (or to nothing), and oneMKL would never ask us.
        assert!(
            override_linked(),
            "mkl_serv_intel_cpu_true is not exported from this executable: see build-support/torch_link.rs"
        );
        // And libtorch's products really reach it: the libtorch this project pins has oneMKL.
        let kernels = active();
        assert!(asked(), "oneMKL never asked: {kernels:?}");
        assert!(
            !matches!(
                kernels,
                MklKernels::OverrideMissing | MklKernels::NotAsked | MklKernels::NotApplicable
            ),
            "{kernels:?}"
        );
    }

    #[test]
    fn products_are_right_with_the_chosen_kernels() {
        // Draws from libtorch's global generator, which another test may have just seeded to check its draws.
        let _rng = crate::noise::torch_rng_lock();
        // A product large enough for oneMKL's blocked kernels, against a float64 product.
        let a = tch::Tensor::randn([300, 257], (tch::Kind::Float, tch::Device::Cpu));
        let b = tch::Tensor::randn([257, 129], (tch::Kind::Float, tch::Device::Cpu));
        let fast = a.matmul(&b).to_kind(tch::Kind::Double);
        let exact = a
            .to_kind(tch::Kind::Double)
            .matmul(&b.to_kind(tch::Kind::Double));
        let err = (fast - &exact).abs().max().double_value(&[]);
        assert!(err < 1e-3, "max abs error {err}");
    }
}
