//! Link options of the `edgenet` binary (only the binary: proc-macros, build scripts, test
//! harnesses and the libraries are built as before).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux_gnu {
        // A position-dependent executable: the dynamic loader has no ~9,400 relative
        // relocations to apply (and ~30 pages fewer to copy) at every start, ~0.3 ms of a
        // sub-10 ms command on a VM. The cost: the binary's own image is not randomised
        // (libraries, stack and heap still are).
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
