//! Which matrix-product kernels libtorch's oneMKL runs on the CPU.
//!
//! oneMKL (statically inside `libtorch_cpu.so`) asks `mkl_serv_intel_cpu_true()` whether the CPU
//! is Intel's and, when it is not, takes a generic AVX2 path even on CPUs with AVX-512: on the
//! AMD Zen 5 dev box a 1024x512x512 float32 product took 4.5 ms (120 GFLOP/s) that way and 2.0 ms
//! (271 GFLOP/s) with the Intel kernels, and the demo-size QAM update spends half its time there
//! (docs/benchmarks.md, "Agent"). The kernels still choose by the CPU's feature flags, so they use
//! only instructions the CPU has; the results are float32 products summed in another order.
//!
//! This crate defines that function and the build scripts (`build-support/torch_link.rs`) export
//! it from every qamlab executable, so the dynamic linker resolves oneMKL's call to it ahead of
//! oneMKL's own. `QAMLAB_MKL_KERNELS=vendor` keeps oneMKL's own choice (to measure the
//! difference, or should a CPU ever misbehave with them).

/// The environment variable that selects the kernels: `vendor` keeps oneMKL's choice by CPU
/// vendor; unset or `intel` uses the Intel kernels on every x86-64 CPU.
pub const KERNELS_ENV: &str = "QAMLAB_MKL_KERNELS";

/// Which kernels oneMKL was told to use, for `qamlab doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MklKernels {
    /// Intel's kernels on a CPU of another vendor: the override at work.
    IntelOnOtherVendor,
    /// An Intel CPU: oneMKL uses its Intel kernels anyway.
    IntelCpu,
    /// Another vendor's CPU with oneMKL's own choice, as `QAMLAB_MKL_KERNELS=vendor` asked.
    VendorRequested,
    /// The override is not in this executable (its link arguments did not take effect): oneMKL
    /// makes its own choice.
    OverrideMissing,
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
            MklKernels::VendorRequested => {
                "oneMKL's generic kernels for this non-Intel CPU (QAMLAB_MKL_KERNELS=vendor)"
            }
            MklKernels::OverrideMissing => {
                "oneMKL's own choice: the override is missing from this executable (see build-support/torch_link.rs)"
            }
            MklKernels::NotApplicable => "libtorch's own (not an x86-64 Linux build)",
        }
    }

    /// A few words for a benchmark's header.
    pub fn label(self) -> &'static str {
        match self {
            MklKernels::IntelOnOtherVendor | MklKernels::IntelCpu => "oneMKL's Intel kernels",
            MklKernels::VendorRequested | MklKernels::OverrideMissing => {
                "oneMKL's kernels for this vendor"
            }
            MklKernels::NotApplicable => "libtorch's matmuls",
        }
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use super::{KERNELS_ENV, MklKernels};
    use std::ffi::{c_char, c_int, c_void};
    use std::sync::OnceLock;

    /// oneMKL's question, answered: 1 ("Intel") unless `QAMLAB_MKL_KERNELS=vendor`, then the CPU's
    /// real vendor, which is what oneMKL's own definition answers.
    #[unsafe(no_mangle)]
    pub extern "C" fn mkl_serv_intel_cpu_true() -> c_int {
        static ANSWER: OnceLock<c_int> = OnceLock::new();
        *ANSWER.get_or_init(|| c_int::from(use_intel_kernels() || genuine_intel()))
    }

    fn use_intel_kernels() -> bool {
        std::env::var(KERNELS_ENV).map_or(true, |v| v != "vendor")
    }

    fn genuine_intel() -> bool {
        let id = std::arch::x86_64::__cpuid(0);
        let mut vendor = [0u8; 12];
        vendor[..4].copy_from_slice(&id.ebx.to_le_bytes());
        vendor[4..8].copy_from_slice(&id.edx.to_le_bytes());
        vendor[8..].copy_from_slice(&id.ecx.to_le_bytes());
        &vendor == b"GenuineIntel"
    }

    unsafe extern "C" {
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    }

    /// True when the dynamic linker resolves the name to this function, as it will for oneMKL's
    /// call: the executable exports it (the build scripts' link arguments took effect).
    pub fn override_linked() -> bool {
        // RTLD_DEFAULT is the null handle on glibc: the global lookup, executable first.
        let found = unsafe { dlsym(std::ptr::null_mut(), c"mkl_serv_intel_cpu_true".as_ptr()) };
        found == mkl_serv_intel_cpu_true as *mut c_void
    }

    pub fn active() -> MklKernels {
        if genuine_intel() {
            MklKernels::IntelCpu
        } else if !override_linked() {
            MklKernels::OverrideMissing
        } else if use_intel_kernels() {
            MklKernels::IntelOnOtherVendor
        } else {
            MklKernels::VendorRequested
        }
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub use imp::{mkl_serv_intel_cpu_true, override_linked};

/// Which kernels oneMKL uses in this process.
pub fn active() -> MklKernels {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    return imp::active();
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    MklKernels::NotApplicable
}

#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn the_executable_exports_the_answer_to_onemkl() {
        // Without the build scripts' export this test binary would resolve the name to
        // libtorch's own definition (or to nothing), and oneMKL would never ask us.
        assert!(
            override_linked(),
            "mkl_serv_intel_cpu_true is not exported from this executable: see build-support/torch_link.rs"
        );
        assert_ne!(active(), MklKernels::OverrideMissing);
    }

    #[test]
    fn products_are_right_with_the_chosen_kernels() {
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
