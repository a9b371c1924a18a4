//! libvirt network XML: [`load`] reads the text with the input limits, [`parse`] reads the
//! model out of it, [`format`] writes libvirt's normalised form.

pub(crate) mod format;
pub(crate) mod load;
pub(crate) mod parse;
pub(crate) mod stored;

/// Largest network document accepted, in bytes. Real definitions are a few KiB; the limit keeps
/// hostile input from costing memory or time.
pub const MAX_XML_BYTES: usize = 1024 * 1024;
