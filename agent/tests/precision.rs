//! The TF32 switch for CUDA matmuls: it reads back what was set, changes nothing on the CPU, is
//! named in a CUDA agent's `execution`, and on a CUDA machine gives TF32 products (within TF32's
//! rounding of IEEE fp32) only while it is on (skipped, loudly, without CUDA). One test, since
//! the setting is process-wide.

use qamlab_agent::{Agent, AgentConfig, precision};
use tch::{Device, Kind, Tensor};

/// `‖got − exact‖ / ‖exact‖` for `a @ b` against a float64 product on the CPU.
fn relative_error(a: &Tensor, b: &Tensor) -> f64 {
    let exact = a
        .to_device(Device::Cpu)
        .to_kind(Kind::Double)
        .matmul(&b.to_device(Device::Cpu).to_kind(Kind::Double));
    let got = a.matmul(b).to_device(Device::Cpu).to_kind(Kind::Double);
    (got - &exact).norm().double_value(&[]) / exact.norm().double_value(&[])
}

#[test]
fn tf32_switch_reads_back_and_acts_only_on_cuda_matmuls() {
    if !precision::available() {
        eprintln!("SKIPPED: this build has no TF32 switch (no CUDA headers when it was built)");
        assert!(!precision::tf32_matmuls().unwrap());
        let err = precision::set_tf32_matmuls(true).unwrap_err().to_string();
        assert!(err.contains("TF32"), "{err}");
        return;
    }
    assert!(!precision::tf32_matmuls().unwrap(), "IEEE fp32 by default");
    tch::manual_seed(0);
    let (a, b) = (
        Tensor::randn([256, 512], tch::kind::FLOAT_CPU),
        Tensor::randn([512, 512], tch::kind::FLOAT_CPU),
    );
    let cpu_ieee = a.matmul(&b);

    precision::set_tf32_matmuls(true).unwrap();
    assert!(precision::tf32_matmuls().unwrap());
    assert!(
        a.matmul(&b).equal(&cpu_ieee),
        "the CPU product is unchanged"
    );
    let cpu_agent = Agent::new(AgentConfig::default(), 28, 5, Device::Cpu, 0).unwrap();
    assert!(
        !cpu_agent.execution().contains("TF32"),
        "TF32 is named on CUDA only: {}",
        cpu_agent.execution()
    );

    if tch::Cuda::is_available() {
        let dev = Device::Cuda(0);
        let (ga, gb) = (a.to_device(dev), b.to_device(dev));
        let tf32 = relative_error(&ga, &gb);
        let agent = Agent::new(AgentConfig::default(), 28, 5, dev, 0).unwrap();
        assert!(
            agent.execution().ends_with("TF32 matmuls"),
            "{}",
            agent.execution()
        );
        precision::set_tf32_matmuls(false).unwrap();
        let ieee = relative_error(&ga, &gb);
        // fp32 accumulation over 512 terms: ~1e-7; TF32's 10-bit inputs: ~1e-4 to 1e-3.
        assert!(ieee < 1e-5, "IEEE fp32 product off by {ieee:e}");
        assert!(tf32 > 1e-5 && tf32 < 5e-3, "TF32 product off by {tf32:e}");
        assert_eq!(agent.execution(), "eager");
        eprintln!("CUDA matmul relative error: IEEE {ieee:e}, TF32 {tf32:e}");
    } else {
        eprintln!("SKIPPED (CUDA part): no CUDA device; the switch was checked on the CPU only");
    }
    precision::set_tf32_matmuls(false).unwrap();
    assert!(!precision::tf32_matmuls().unwrap());
}
