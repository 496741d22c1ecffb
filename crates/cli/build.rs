//! Link options of the `edgenet` binary (only the binary: proc-macros, build scripts and test
//! harnesses are linked as before).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux_gnu {
        // Relative relocations packed (DT_RELR, glibc >= 2.36): the dynamic loader reads a few
        // KiB of bitmap instead of ~9,400 24-byte RELA entries at every start.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
