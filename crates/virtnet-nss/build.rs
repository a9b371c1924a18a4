//! Gives the NSS module the soname glibc loads it by (`libnss_virtnet.so.2`: NSS modules are
//! `libnss_<module>.so.2` for glibc's interface version 2), as Debian's packaging tools expect
//! of a shared object in the library directory.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnss_virtnet.so.2");
}
