//! scx_rebal as a library: the pieces of the scheduler's user-space half,
//! split so that the policy (domains, balancer, tuner) is plain Rust that
//! tests and benchmarks use without a kernel, and the BPF-facing layer
//! (sched) stays thin. The binary (src/main.rs) wires them together.

#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#[allow(clippy::all)]
pub mod bpf_intf {
    include!(concat!(env!("OUT_DIR"), "/bpf_intf.rs"));
}

#[allow(clippy::all)]
pub mod bpf_skel {
    include!(concat!(env!("OUT_DIR"), "/bpf_skel.rs"));
}

pub mod arith;
pub mod balancer;
pub mod cli;
pub mod demand;
pub mod domains;
pub mod hotplug;
pub mod load;
pub mod logging;
pub mod monitor;
pub mod moves;
pub mod output;
pub mod profile;
pub mod sched;
pub mod stats;
pub mod topology;
pub mod tuner;
