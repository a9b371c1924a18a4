//! In-process nftables through libnftables (the library behind `nft`).
//!
//! One [`Nftables::run`] call hands a whole script to
//! `nft_run_cmd_from_buffer`, which sends all its commands to the kernel as
//! ONE netlink batch: the script is applied atomically or not at all.
//!
//! Linking: this module links the system `libnftables` (Debian: the
//! `libnftables-dev` package to build, `libnftables1` to run).

use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard};

use crate::error::{HostError, Result};

/// Opaque `struct nft_ctx`.
#[repr(C)]
struct NftCtx {
    _private: [u8; 0],
}

const NFT_CTX_DEFAULT: u32 = 0;
const NFT_CTX_OUTPUT_JSON: c_uint = 1 << 4;

#[link(name = "nftables")]
extern "C" {
    fn nft_ctx_new(flags: u32) -> *mut NftCtx;
    fn nft_ctx_free(ctx: *mut NftCtx);
    fn nft_ctx_buffer_output(ctx: *mut NftCtx) -> c_int;
    fn nft_ctx_buffer_error(ctx: *mut NftCtx) -> c_int;
    fn nft_ctx_get_output_buffer(ctx: *mut NftCtx) -> *const c_char;
    fn nft_ctx_get_error_buffer(ctx: *mut NftCtx) -> *const c_char;
    fn nft_ctx_output_get_flags(ctx: *mut NftCtx) -> c_uint;
    fn nft_ctx_output_set_flags(ctx: *mut NftCtx, flags: c_uint);
    fn nft_run_cmd_from_buffer(ctx: *mut NftCtx, buf: *const c_char) -> c_int;
}

/// libnftables keeps some process-global state (e.g. its GMP allocator
/// hooks and, when built with xtables support, libxtables' registries), so
/// every call into it is serialised through this lock. Contention is not a
/// concern: a daemon runs one transaction at a time anyway.
static LIB: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    // A panic while holding the lock cannot leave libnftables in a state we
    // know anything about; carry on as `nft` itself would.
    LIB.lock().unwrap_or_else(|p| p.into_inner())
}

/// An nftables context (`struct nft_ctx`) with output and errors captured in
/// memory.
///
/// The context talks to the kernel through a netlink socket bound to the
/// network namespace of the thread that created it (see the crate tests).
///
/// `Send` but not `Sync`: a context is mutable state that libnftables does
/// not lock, so `&Nftables` must not be shared between threads (all methods
/// take `&mut self` anyway, and a `PhantomData<Cell<()>>` marker removes
/// `Sync`). Moving it to another thread is sound: libnftables keeps no
/// thread-local state and has no thread affinity, and every call into the
/// library holds a process-wide lock, so contexts used from different
/// threads never run library code concurrently.
pub struct Nftables {
    ctx: NonNull<NftCtx>,
    /// Asks the kernel whether a table exists without libnftables' cache (see
    /// [`Nftables::has_table`]); `None` when its socket could not be opened.
    tables: Option<crate::nft_table::TableProbe>,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

// SAFETY: see the type's documentation: no thread affinity, no TLS, and all
// library calls are serialised by `LIB`.
unsafe impl Send for Nftables {}

impl std::fmt::Debug for Nftables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nftables").finish_non_exhaustive()
    }
}

impl Nftables {
    /// Creates a context in the calling thread's network namespace, with
    /// output and error messages buffered (read back by [`Nftables::run`]).
    pub fn new() -> Result<Self> {
        const OP: &str = "open nftables context";
        let g = lock();
        // SAFETY: plain constructor; NULL on failure.
        let raw = unsafe { nft_ctx_new(NFT_CTX_DEFAULT) };
        let ctx =
            NonNull::new(raw).ok_or_else(|| HostError::msg(OP, "", "nft_ctx_new returned NULL"))?;
        let this = Nftables {
            ctx,
            // Opened here, in the same namespace as the context.
            tables: crate::nft_table::TableProbe::open().ok(),
            _not_sync: PhantomData,
        };
        // SAFETY: `ctx` is a live context owned by `this`.
        let (o, e) = unsafe {
            (
                nft_ctx_buffer_output(this.ctx.as_ptr()),
                nft_ctx_buffer_error(this.ctx.as_ptr()),
            )
        };
        drop(g);
        if o != 0 || e != 0 {
            // `this` is dropped (and freed, under the lock) on return.
            return Err(HostError::msg(OP, "", "cannot buffer libnftables output"));
        }
        Ok(this)
    }

    /// Chooses JSON (`nft -j`) or the text format for listing output.
    pub fn set_json(&mut self, json: bool) {
        let _g = lock();
        let p = self.ctx.as_ptr();
        // SAFETY: `p` is a live context owned by `self`.
        unsafe {
            let f = nft_ctx_output_get_flags(p);
            let f = if json {
                f | NFT_CTX_OUTPUT_JSON
            } else {
                f & !NFT_CTX_OUTPUT_JSON
            };
            nft_ctx_output_set_flags(p, f);
        }
    }

    /// Runs a script of nft commands (the syntax of `nft -f`) as one
    /// transaction and returns what nft printed (e.g. for `list` commands).
    ///
    /// On failure nothing of the script is applied and the error carries
    /// nft's error text, trimmed (e.g. `Error: No such file or directory ...`
    /// with the offending line). A script containing a NUL byte is refused
    /// with `EINVAL` before libnftables is called.
    pub fn run(&mut self, script: &str) -> Result<String> {
        const OP: &str = "run nft script";
        let target = script
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let mut t: String = l.chars().take(60).collect();
                if t.len() < l.len() {
                    t.push('…');
                }
                format!("`{t}`")
            })
            .unwrap_or_default();
        let c = CString::new(script)
            .map_err(|_| HostError::invalid(OP, &target, "script contains a NUL byte"))?;
        let _g = lock();
        let p = self.ctx.as_ptr();
        // SAFETY: `p` is a live context; `c` is a NUL-terminated string that
        // outlives the call. The returned buffers belong to the context and
        // stay valid until its next call; they are copied at once.
        let (rc, out, err) = unsafe {
            let rc = nft_run_cmd_from_buffer(p, c.as_ptr());
            let out = cstr(nft_ctx_get_output_buffer(p));
            let err = cstr(nft_ctx_get_error_buffer(p));
            (rc, out, err)
        };
        if rc != 0 {
            let err = err.trim();
            let msg = if err.is_empty() {
                format!("nft failed with code {rc}")
            } else {
                err.to_string()
            };
            return Err(HostError::msg(OP, target, msg));
        }
        Ok(out)
    }

    /// Whether table `family name` exists: one `NFT_MSG_GETTABLE` to the kernel, whose cost
    /// does not grow with what the tables hold (libnftables' `list tables` fills its cache
    /// with every set element first). Without that socket, `list tables FAMILY` (text output:
    /// not in JSON mode).
    pub fn has_table(&mut self, family: &str, name: &str) -> Result<bool> {
        if let Some(probe) = &mut self.tables {
            return probe.exists(family, name);
        }
        let tables = self.run(&format!("list tables {family}"))?;
        Ok(tables
            .lines()
            .any(|l| l.split_whitespace().eq(["table", family, name])))
    }
}

/// Copies a C string (NULL = empty).
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string.
unsafe fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

impl Drop for Nftables {
    fn drop(&mut self) {
        let _g = lock();
        // SAFETY: `ctx` is live and owned; it is not used after this.
        unsafe { nft_ctx_free(self.ctx.as_ptr()) }
    }
}
