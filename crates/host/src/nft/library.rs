//! libnftables in-process: the library `nft` itself is a thin front end of, loaded at run time.
//!
//! Running a command here gives the same JSON and the same error texts as spawning `nft` (the
//! program does nothing but hand its arguments or input file to this library), without the
//! fork, exec and dynamic linking of a process: on two busy cores that is 3–10 ms per call.
//!
//! The library is opened with `dlopen` (`libnftables.so.1`, from Debian's `libnftables1`, which
//! the `nftables` package depends on) rather than linked, so building edgenet needs no `-dev`
//! package and a host without it still works through the program. Everything unsafe in the
//! module is in `Api` and `Context`.
//!
//! Namespaces: a context opens its netlink socket when it is created, in the network namespace of
//! the creating thread, and keeps it. So a context is made for one call on the calling thread
//! and freed after it; it never outlives the call or crosses a thread.
//!
//! Error texts name errno values through `strerror`, in English as with `LC_ALL=C nft`: a Rust
//! program never calls `setlocale`, so it runs in the C locale (callers read "File exists" and
//! "No such file or directory").
//!
//! libnftables keeps process-wide state (its one-time initialisation, the interface cache it
//! fills and releases on every command), so calls are serialised by one lock.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::{Mutex, OnceLock};

/// The library's soname (ABI 1: nftables 0.9.x to 1.1.x).
pub const SONAME: &str = "libnftables.so.1";

/// `NFT_CTX_DEFAULT`: a context that opens its own netlink socket.
const NFT_CTX_DEFAULT: u32 = 0;
/// `NFT_CTX_OUTPUT_JSON` (`libnftables(3)`): print, and accept input, as JSON (`nft -j`).
const NFT_CTX_OUTPUT_JSON: c_uint = 1 << 4;

type CtxNew = unsafe extern "C" fn(flags: u32) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(ctx: *mut c_void);
type OutputSetFlags = unsafe extern "C" fn(ctx: *mut c_void, flags: c_uint);
type Buffer = unsafe extern "C" fn(ctx: *mut c_void) -> c_int;
type GetBuffer = unsafe extern "C" fn(ctx: *mut c_void) -> *const c_char;
type RunCmd = unsafe extern "C" fn(ctx: *mut c_void, buf: *const c_char) -> c_int;

/// The entry points used, resolved once. The library is never unloaded (it lives in a static),
/// so the function pointers stay valid for the life of the process.
struct Api {
    _library: libloading::Library,
    ctx_new: CtxNew,
    ctx_free: CtxFree,
    output_set_flags: OutputSetFlags,
    buffer_output: Buffer,
    buffer_error: Buffer,
    get_output_buffer: GetBuffer,
    get_error_buffer: GetBuffer,
    run_cmd_from_buffer: RunCmd,
}

impl Api {
    fn load() -> Result<Api, String> {
        // SAFETY: loading runs the library's initialisers; libnftables and its dependencies
        // (libnftnl, libmnl, jansson, gmp, libxtables) have none that touch our state.
        let library =
            unsafe { libloading::Library::new(SONAME) }.map_err(|e| format!("{SONAME}: {e}"))?;
        // SAFETY (every use): the type is the symbol's C prototype in `libnftables.h`, which
        // is stable across ABI version 1.
        macro_rules! symbol {
            ($name:literal) => {
                *unsafe { library.get($name) }.map_err(|e| format!("{SONAME}: {e}"))?
            };
        }
        Ok(Api {
            ctx_new: symbol!(b"nft_ctx_new\0"),
            ctx_free: symbol!(b"nft_ctx_free\0"),
            output_set_flags: symbol!(b"nft_ctx_output_set_flags\0"),
            buffer_output: symbol!(b"nft_ctx_buffer_output\0"),
            buffer_error: symbol!(b"nft_ctx_buffer_error\0"),
            get_output_buffer: symbol!(b"nft_ctx_get_output_buffer\0"),
            get_error_buffer: symbol!(b"nft_ctx_get_error_buffer\0"),
            run_cmd_from_buffer: symbol!(b"nft_run_cmd_from_buffer\0"),
            _library: library,
        })
    }
}

static API: OnceLock<Result<Api, String>> = OnceLock::new();
/// One libnftables call at a time in the process (see the module doc).
static CALL: Mutex<()> = Mutex::new(());

/// Whether the library could be loaded; `Err` says why not (logged once by the caller).
pub fn load() -> Result<(), String> {
    API.get_or_init(Api::load)
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

/// What one command printed, as `nft` would have on stdout and stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// One `nft_ctx`: created on the calling thread, in its namespace, for one command.
struct Context<'a> {
    api: &'a Api,
    ctx: *mut c_void,
}

impl<'a> Context<'a> {
    fn new(api: &'a Api, json: bool) -> Result<Context<'a>, String> {
        // libnftables exits the whole process when it cannot open its netlink socket
        // (`netlink_init_error`); make sure it can before asking it to.
        probe_socket()?;
        // SAFETY: plain constructor; a null return is handled below.
        let ctx = unsafe { (api.ctx_new)(NFT_CTX_DEFAULT) };
        if ctx.is_null() {
            return Err("nft_ctx_new failed".into());
        }
        let context = Context { api, ctx };
        // SAFETY: `ctx` is a live context owned by `context` (freed once, in Drop).
        unsafe {
            if json {
                (api.output_set_flags)(ctx, NFT_CTX_OUTPUT_JSON);
            }
            if (api.buffer_output)(ctx) != 0 || (api.buffer_error)(ctx) != 0 {
                return Err("nft_ctx_buffer_output failed".into());
            }
        }
        Ok(context)
    }

    fn run(&mut self, command: &CStr) -> Outcome {
        // SAFETY: `command` is NUL-terminated and outlives the call; the buffers returned are
        // owned by the context and valid until its next call, so they are copied at once.
        unsafe {
            let rc = (self.api.run_cmd_from_buffer)(self.ctx, command.as_ptr());
            let stdout = text((self.api.get_output_buffer)(self.ctx));
            let stderr = text((self.api.get_error_buffer)(self.ctx));
            Outcome {
                ok: rc == 0,
                stdout,
                stderr,
            }
        }
    }
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        // SAFETY: created by `nft_ctx_new`, freed exactly once, on the thread that made it.
        unsafe { (self.api.ctx_free)(self.ctx) }
    }
}

/// # Safety
/// `p` is null or points to a NUL-terminated string.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: see the function's contract.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Opens and closes a `NETLINK_NETFILTER` socket in the calling thread's namespace.
fn probe_socket() -> Result<(), String> {
    netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_NETFILTER)
        .map(drop)
        .map_err(|e| format!("cannot open a nf_tables netlink socket: {e}"))
}

/// Runs `command` (the text `nft` takes as arguments, or a whole JSON document) as
/// `nft [-j] COMMAND` would, in the calling thread's network namespace. `Err` only when the
/// library cannot run it at all (not loaded, no socket); a command that fails is an
/// [`Outcome`] with `ok == false` and nft's error text.
pub fn run(command: &str, json: bool) -> Result<Outcome, String> {
    let api = API.get_or_init(Api::load).as_ref().map_err(Clone::clone)?;
    let command = CString::new(command).map_err(|_| "command contains a NUL byte".to_string())?;
    let _one_at_a_time = CALL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut context = Context::new(api, json)?;
    Ok(context.run(&command))
}
