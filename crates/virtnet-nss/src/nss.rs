//! The glibc NSS entry points of module `virtnet` (`libnss_virtnet.so.2`): host look-ups by
//! name, for one address family (`gethostbyname{,2,3}_r`, what `gethostbyname` and `getent
//! hosts` use) or for all (`gethostbyname4_r`, what `getaddrinfo` — `ssh`, `ping` — uses).
//!
//! They follow glibc's contract (`nss/nss_files/files-hosts.c` behaves the same): answers go
//! into the caller's buffer; a buffer too small is `NSS_STATUS_TRYAGAIN` with `ERANGE` (glibc
//! retries with a bigger one); a name not in the file is `NSS_STATUS_NOTFOUND` with
//! `HOST_NOT_FOUND`, a name without an address of the asked family `NO_DATA`. Nothing here
//! panics across the boundary (a panic is caught and answered as unavailable).

use std::ffi::{c_char, c_int, CStr};
use std::mem::{align_of, size_of};
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::{HostsFile, HOSTS_FILE};

/// `enum nss_status`.
#[allow(non_camel_case_types)]
pub type nss_status = c_int;
const NSS_STATUS_TRYAGAIN: nss_status = -2;
const NSS_STATUS_UNAVAIL: nss_status = -1;
const NSS_STATUS_NOTFOUND: nss_status = 0;
const NSS_STATUS_SUCCESS: nss_status = 1;

/// `h_errno` values (netdb.h).
const NETDB_INTERNAL: c_int = -1;
const HOST_NOT_FOUND: c_int = 1;
const NO_DATA: c_int = 4;

/// `struct hostent` (netdb.h).
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct hostent {
    /// Official name.
    pub h_name: *mut c_char,
    /// Aliases, NULL-terminated.
    pub h_aliases: *mut *mut c_char,
    /// `AF_INET` or `AF_INET6`.
    pub h_addrtype: c_int,
    /// 4 or 16.
    pub h_length: c_int,
    /// Addresses, NULL-terminated.
    pub h_addr_list: *mut *mut c_char,
}

/// `struct gaih_addrtuple` (glibc's nss.h): one address of a `gethostbyname4_r` answer.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct gaih_addrtuple {
    /// The next address, or NULL.
    pub next: *mut gaih_addrtuple,
    /// The canonical name (on the first tuple), or NULL.
    pub name: *mut c_char,
    /// `AF_INET` or `AF_INET6`.
    pub family: c_int,
    /// The address in network order (IPv4 in the first word).
    pub addr: [u32; 4],
    /// IPv6 scope.
    pub scopeid: u32,
}

/// The caller's buffer, handed out front to back.
struct Arena {
    base: *mut u8,
    len: usize,
    used: usize,
}

impl Arena {
    /// Room for `size` bytes aligned to `align`, or `None` when the buffer is too small.
    fn take(&mut self, size: usize, align: usize) -> Option<*mut u8> {
        let start = self.base as usize + self.used;
        let pad = (align - start % align) % align;
        let end = self.used.checked_add(pad)?.checked_add(size)?;
        if end > self.len {
            return None;
        }
        // SAFETY: `used + pad + size <= len`: inside the caller's buffer.
        let p = unsafe { self.base.add(self.used + pad) };
        self.used = end;
        Some(p)
    }

    /// A NUL-terminated copy of `s`.
    fn string(&mut self, s: &str) -> Option<*mut c_char> {
        let p = self.take(s.len() + 1, 1)?;
        // SAFETY: `p` has room for `s.len() + 1` bytes.
        unsafe {
            ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
            *p.add(s.len()) = 0;
        }
        Some(p.cast())
    }

    /// Room for `n` values of `T`, aligned for it.
    fn array<T>(&mut self, n: usize) -> Option<*mut T> {
        Some(
            self.take(size_of::<T>().checked_mul(n)?, align_of::<T>())?
                .cast(),
        )
    }
}

/// Why a look-up gave no answer.
enum Miss {
    /// The name is not in the file (or there is no file).
    NotFound,
    /// The name is there, with no address of the asked family.
    NoData,
    /// The caller's buffer is too small.
    Range,
}

/// The name and its addresses (of `family`, when given) from the file.
fn find(name: *const c_char, family: Option<c_int>) -> Result<(String, Vec<IpAddr>), Miss> {
    if name.is_null() {
        return Err(Miss::NotFound);
    }
    // SAFETY: glibc passes a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(name) };
    let Ok(name) = name.to_str() else {
        return Err(Miss::NotFound);
    };
    let text = std::fs::read_to_string(HOSTS_FILE).map_err(|_| Miss::NotFound)?;
    let (canonical, addrs) = HostsFile::parse(&text).lookup(name).ok_or(Miss::NotFound)?;
    let addrs: Vec<IpAddr> = addrs
        .into_iter()
        .filter(|a| family.is_none_or(|f| family_of(a) == f))
        .collect();
    if addrs.is_empty() {
        return Err(Miss::NoData);
    }
    Ok((canonical, addrs))
}

fn family_of(addr: &IpAddr) -> c_int {
    match addr {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    }
}

/// Writes `status`'s `errno` and `h_errno` for a miss.
///
/// # Safety
/// `errnop` and `herrnop` are valid or NULL.
unsafe fn missed(miss: Miss, errnop: *mut c_int, herrnop: *mut c_int) -> nss_status {
    let (status, errno, herrno) = match miss {
        Miss::NotFound => (NSS_STATUS_NOTFOUND, libc::ENOENT, HOST_NOT_FOUND),
        Miss::NoData => (NSS_STATUS_NOTFOUND, libc::ENOENT, NO_DATA),
        Miss::Range => (NSS_STATUS_TRYAGAIN, libc::ERANGE, NETDB_INTERNAL),
    };
    if !errnop.is_null() {
        *errnop = errno;
    }
    if !herrnop.is_null() {
        *herrnop = herrno;
    }
    status
}

/// Runs `f`, answering `NSS_STATUS_UNAVAIL` if it panicked.
fn guarded(f: impl FnOnce() -> nss_status) -> nss_status {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(NSS_STATUS_UNAVAIL)
}

/// Fills `result` with `name`'s addresses of family `af` in the caller's buffer.
///
/// # Safety
/// glibc's contract for `gethostbyname3_r`: `result` and `buffer[..buflen]` are writable.
#[allow(clippy::too_many_arguments)]
unsafe fn fill_hostent(
    name: *const c_char,
    af: c_int,
    result: *mut hostent,
    buffer: *mut c_char,
    buflen: usize,
    errnop: *mut c_int,
    herrnop: *mut c_int,
    ttlp: *mut i32,
    canonp: *mut *mut c_char,
) -> nss_status {
    if af != libc::AF_INET && af != libc::AF_INET6 {
        if !errnop.is_null() {
            *errnop = libc::EAFNOSUPPORT;
        }
        if !herrnop.is_null() {
            *herrnop = NO_DATA;
        }
        return NSS_STATUS_UNAVAIL;
    }
    let (canonical, addrs) = match find(name, Some(af)) {
        Ok(found) => found,
        Err(miss) => return missed(miss, errnop, herrnop),
    };
    write_hostent(
        &canonical, &addrs, af, result, buffer, buflen, errnop, herrnop, ttlp, canonp,
    )
}

/// Lays `canonical` and `addrs` (all of family `af`) out in the caller's buffer as `result`.
///
/// # Safety
/// As [`fill_hostent`].
#[allow(clippy::too_many_arguments)]
unsafe fn write_hostent(
    canonical: &str,
    addrs: &[IpAddr],
    af: c_int,
    result: *mut hostent,
    buffer: *mut c_char,
    buflen: usize,
    errnop: *mut c_int,
    herrnop: *mut c_int,
    ttlp: *mut i32,
    canonp: *mut *mut c_char,
) -> nss_status {
    let mut arena = Arena {
        base: buffer.cast(),
        len: buflen,
        used: 0,
    };
    let addr_len = if af == libc::AF_INET { 4 } else { 16 };
    let layout = (|| {
        let h_name = arena.string(canonical)?;
        let aliases = arena.array::<*mut c_char>(1)?;
        let list = arena.array::<*mut c_char>(addrs.len() + 1)?;
        let mut filled = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let p = arena.take(addr_len, 4)?;
            let bytes: Vec<u8> = match addr {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            // SAFETY: `p` has room for `addr_len` bytes, the length of `bytes`.
            unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), p, addr_len) };
            filled.push(p.cast::<c_char>());
        }
        Some((h_name, aliases, list, filled))
    })();
    let Some((h_name, aliases, list, filled)) = layout else {
        return missed(Miss::Range, errnop, herrnop);
    };
    *aliases = ptr::null_mut();
    for (i, p) in filled.iter().enumerate() {
        *list.add(i) = *p;
    }
    *list.add(filled.len()) = ptr::null_mut();
    *result = hostent {
        h_name,
        h_aliases: aliases,
        h_addrtype: af,
        h_length: addr_len as c_int,
        h_addr_list: list,
    };
    if !ttlp.is_null() {
        *ttlp = 0;
    }
    if !canonp.is_null() {
        *canonp = h_name;
    }
    NSS_STATUS_SUCCESS
}

/// `gethostbyname3_r`: `name`'s addresses of family `af`, with TTL and canonical name.
///
/// # Safety
/// glibc's contract: valid pointers, `buffer` of `buflen` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn _nss_virtnet_gethostbyname3_r(
    name: *const c_char,
    af: c_int,
    result: *mut hostent,
    buffer: *mut c_char,
    buflen: usize,
    errnop: *mut c_int,
    herrnop: *mut c_int,
    ttlp: *mut i32,
    canonp: *mut *mut c_char,
) -> nss_status {
    guarded(|| unsafe {
        fill_hostent(
            name, af, result, buffer, buflen, errnop, herrnop, ttlp, canonp,
        )
    })
}

/// `gethostbyname2_r`: `name`'s addresses of family `af`.
///
/// # Safety
/// As [`_nss_virtnet_gethostbyname3_r`].
#[no_mangle]
pub unsafe extern "C" fn _nss_virtnet_gethostbyname2_r(
    name: *const c_char,
    af: c_int,
    result: *mut hostent,
    buffer: *mut c_char,
    buflen: usize,
    errnop: *mut c_int,
    herrnop: *mut c_int,
) -> nss_status {
    _nss_virtnet_gethostbyname3_r(
        name,
        af,
        result,
        buffer,
        buflen,
        errnop,
        herrnop,
        ptr::null_mut(),
        ptr::null_mut(),
    )
}

/// `gethostbyname_r`: `name`'s IPv4 addresses.
///
/// # Safety
/// As [`_nss_virtnet_gethostbyname3_r`].
#[no_mangle]
pub unsafe extern "C" fn _nss_virtnet_gethostbyname_r(
    name: *const c_char,
    result: *mut hostent,
    buffer: *mut c_char,
    buflen: usize,
    errnop: *mut c_int,
    herrnop: *mut c_int,
) -> nss_status {
    _nss_virtnet_gethostbyname2_r(name, libc::AF_INET, result, buffer, buflen, errnop, herrnop)
}

/// `gethostbyname4_r` (`getaddrinfo`): every address of `name`, as a list of tuples in the
/// caller's buffer. When `*pat` already points at a tuple, the first answer is copied into
/// it (glibc may hand one in).
///
/// # Safety
/// glibc's contract: valid pointers, `buffer` of `buflen` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn _nss_virtnet_gethostbyname4_r(
    name: *const c_char,
    pat: *mut *mut gaih_addrtuple,
    buffer: *mut c_char,
    buflen: usize,
    errnop: *mut c_int,
    herrnop: *mut c_int,
    ttlp: *mut i32,
) -> nss_status {
    guarded(|| unsafe { fill_tuples(name, pat, buffer, buflen, errnop, herrnop, ttlp) })
}

/// The body of [`_nss_virtnet_gethostbyname4_r`].
///
/// # Safety
/// As there.
unsafe fn fill_tuples(
    name: *const c_char,
    pat: *mut *mut gaih_addrtuple,
    buffer: *mut c_char,
    buflen: usize,
    errnop: *mut c_int,
    herrnop: *mut c_int,
    ttlp: *mut i32,
) -> nss_status {
    if pat.is_null() {
        return missed(Miss::NotFound, errnop, herrnop);
    }
    let (canonical, addrs) = match find(name, None) {
        Ok(found) => found,
        Err(miss) => return missed(miss, errnop, herrnop),
    };
    let mut arena = Arena {
        base: buffer.cast(),
        len: buflen,
        used: 0,
    };
    let Some(h_name) = arena.string(&canonical) else {
        return missed(Miss::Range, errnop, herrnop);
    };
    let Some(tuples) = arena.array::<gaih_addrtuple>(addrs.len()) else {
        return missed(Miss::Range, errnop, herrnop);
    };
    for (i, addr) in addrs.iter().enumerate() {
        let mut words = [0u32; 4];
        match addr {
            IpAddr::V4(a) => words[0] = u32::from_ne_bytes(a.octets()),
            IpAddr::V6(a) => {
                for (w, chunk) in words.iter_mut().zip(a.octets().chunks_exact(4)) {
                    *w = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                }
            }
        }
        let next = if i + 1 < addrs.len() {
            tuples.add(i + 1)
        } else {
            ptr::null_mut()
        };
        *tuples.add(i) = gaih_addrtuple {
            next,
            name: if i == 0 { h_name } else { ptr::null_mut() },
            family: family_of(addr),
            addr: words,
            scopeid: 0,
        };
    }
    if (*pat).is_null() {
        *pat = tuples;
    } else {
        ptr::copy_nonoverlapping(tuples, *pat, 1);
    }
    if !ttlp.is_null() {
        *ttlp = 0;
    }
    NSS_STATUS_SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer too small is `TRYAGAIN` with `ERANGE` (glibc then retries with a bigger
    /// one); a big enough one holds every pointer of the answer inside it.
    #[test]
    fn answers_fit_the_callers_buffer_or_ask_for_a_bigger_one() {
        let addrs: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()];
        let mut result = std::mem::MaybeUninit::<hostent>::zeroed();
        let (mut errno, mut herrno) = (0, 0);
        let mut small = [0 as c_char; 16];
        // SAFETY: valid pointers, `small` is 16 writable bytes.
        let status = unsafe {
            write_hostent(
                "a-guest-name",
                &addrs,
                libc::AF_INET,
                result.as_mut_ptr(),
                small.as_mut_ptr(),
                small.len(),
                &mut errno,
                &mut herrno,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        assert_eq!(
            (status, errno, herrno),
            (NSS_STATUS_TRYAGAIN, libc::ERANGE, NETDB_INTERNAL)
        );

        let mut big = vec![0 as c_char; 256];
        let mut canon: *mut c_char = ptr::null_mut();
        let mut ttl = -1;
        // SAFETY: as above, with 256 bytes.
        let status = unsafe {
            write_hostent(
                "a-guest-name",
                &addrs,
                libc::AF_INET,
                result.as_mut_ptr(),
                big.as_mut_ptr(),
                big.len(),
                &mut errno,
                &mut herrno,
                &mut ttl,
                &mut canon,
            )
        };
        assert_eq!(status, NSS_STATUS_SUCCESS);
        // SAFETY: filled in by the successful call above.
        let h = unsafe { result.assume_init_ref() };
        let inside = |p: *const c_char| {
            let (lo, hi) = (big.as_ptr() as usize, big.as_ptr() as usize + big.len());
            (lo..hi).contains(&(p as usize))
        };
        assert!(inside(h.h_name) && canon == h.h_name && ttl == 0);
        // SAFETY: the pointers were checked to be in `big`, laid out by write_hostent.
        unsafe {
            assert_eq!(CStr::from_ptr(h.h_name).to_str(), Ok("a-guest-name"));
            assert!((*h.h_aliases).is_null());
            assert_eq!((h.h_addrtype, h.h_length), (libc::AF_INET, 4));
            for (i, want) in [[192u8, 0, 2, 1], [192, 0, 2, 2]].iter().enumerate() {
                let p = *h.h_addr_list.add(i);
                assert!(inside(p));
                assert_eq!(std::slice::from_raw_parts(p.cast::<u8>(), 4), want);
            }
            assert!((*h.h_addr_list.add(2)).is_null());
        }
    }
}
