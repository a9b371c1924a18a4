//! Interface names and indexes in the calling thread's network namespace: what the servers
//! (DHCPv6, RA, DNS) and the daemon's anti-spoofing ask when a datagram or a kernel
//! announcement names an interface by one and they keep it by the other.

/// The index of interface `name`; `None` when there is none (or the name cannot be one).
pub fn index_of(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// The name of interface `index`; `None` when there is none.
pub fn name_of(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    name.to_str().ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_both_ways_and_a_missing_name_is_none() {
        let lo = index_of("lo").expect("every namespace has lo");
        assert_eq!(name_of(lo).as_deref(), Some("lo"));
        assert_eq!(index_of("no-such-if-x"), None);
        assert_eq!(index_of("bad\0name"), None);
        assert_eq!(name_of(0), None);
    }
}
