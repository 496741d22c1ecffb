//! Links the unwinder into the binary (libgcc_eh) instead of loading libgcc_s.so.1.
//!
//! libgcc_s's constructor (`__cpu_indicator_init`) runs ~10 `cpuid` instructions at every
//! start, and each one is a trap to the hypervisor in a VM: 0.3–0.4 ms of the 4–5 ms of CPU a
//! no-change redeploy costs there (BENCHMARKS.md, issue 10's eleventh step). Only Rust's own
//! panics use the unwinder, and the static one finds the binary's frames the same way (through
//! `PT_GNU_EH_FRAME`); a library loaded later (libnftables) that needs libgcc_s still gets it.
//!
//! Named here, the static library comes before the standard library's `-lgcc_s` on the link
//! line, so the linker takes the unwinder from it and `--as-needed` drops libgcc_s.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=EDGENET_DYNAMIC_LIBGCC");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    // An escape hatch for a toolchain without libgcc_eh.a (gcc's own package has it).
    let opted_out = std::env::var_os("EDGENET_DYNAMIC_LIBGCC").is_some_and(|v| !v.is_empty());
    if linux_gnu && !opted_out {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}
