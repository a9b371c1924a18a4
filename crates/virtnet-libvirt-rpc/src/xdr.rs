//! XDR (RFC 4506) as libvirt's `.x` files use it: big-endian 4-byte units, strings and
//! variable opaques padded to 4 bytes, optional data (`*`) as a boolean followed by the value.
//!
//! Every variable-length read checks two bounds before it allocates anything: the limit the
//! `.x` file gives (`string<REMOTE_STRING_MAX>`, `nets<REMOTE_NETWORK_LIST_MAX>`) and the bytes
//! actually left in the frame (each element of a list takes at least 4 bytes), so a frame can
//! never make the decoder allocate more than a small multiple of its own size.

use crate::DecodeError;

/// `remote_nonnull_string`'s limit (`REMOTE_STRING_MAX`, equal to virnetprotocol's
/// `VIR_NET_MESSAGE_STRING_MAX`).
pub const STRING_MAX: u32 = 4_194_304;

/// Reads XDR values from one frame's bytes.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes not read yet, consumed.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }

    /// Fails unless every byte was read (a body longer than its type is malformed).
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                needed: n,
                left: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array4(&mut self) -> Result<[u8; 4], DecodeError> {
        let mut out = [0; 4];
        out.copy_from_slice(self.take(4)?);
        Ok(out)
    }

    /// `unsigned int`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array4()?))
    }

    /// `int`.
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array4()?))
    }

    /// `unsigned hyper`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let hi = u64::from(self.u32()?);
        let lo = u64::from(self.u32()?);
        Ok(hi << 32 | lo)
    }

    /// `opaque[N]`: fixed length, no length word.
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        self.skip_padding(N)?;
        Ok(out)
    }

    /// `opaque<max>`: a length word, the bytes, padding.
    pub fn opaque(&mut self, max: u32) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()?;
        if len > max {
            return Err(DecodeError::TooLong { len, max });
        }
        let bytes = self.take(len as usize)?;
        self.skip_padding(len as usize)?;
        Ok(bytes)
    }

    /// `string<max>`: as `opaque<max>`, in UTF-8 (libvirt's strings are XML, names, paths).
    pub fn string(&mut self, max: u32) -> Result<String, DecodeError> {
        let bytes = self.opaque(max)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NotUtf8)
    }

    /// The length word of `T list<max>`, checked against `max` and against what is left
    /// (every element takes at least `min_size` bytes) before the caller allocates.
    pub fn list_len(&mut self, max: u32, min_size: usize) -> Result<usize, DecodeError> {
        let len = self.u32()?;
        if len > max {
            return Err(DecodeError::TooLong { len, max });
        }
        let len = len as usize;
        if len.saturating_mul(min_size.max(1)) > self.remaining() {
            return Err(DecodeError::Truncated {
                needed: len.saturating_mul(min_size.max(1)),
                left: self.remaining(),
            });
        }
        Ok(len)
    }

    /// XDR's boolean discriminant of optional data: 0 or 1.
    pub fn present(&mut self) -> Result<bool, DecodeError> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(DecodeError::BadDiscriminant(n as i32)),
        }
    }

    fn skip_padding(&mut self, len: usize) -> Result<(), DecodeError> {
        // libvirt (glibc's xdr) ignores the padding's contents; so do we.
        self.take((4 - len % 4) % 4).map(|_| ())
    }
}

/// Writes XDR values into a growing buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Appends raw bytes (an already-encoded body).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// `unsigned int`.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// `int`.
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// `unsigned hyper`.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// `opaque[N]`.
    pub fn fixed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.pad(bytes.len());
    }

    /// `opaque<>` / `string<>`: length, bytes, zero padding.
    pub fn opaque(&mut self, bytes: &[u8]) {
        // Lengths past u32 cannot be framed anyway (frames are far smaller).
        self.u32(bytes.len() as u32);
        self.fixed(bytes);
    }

    fn pad(&mut self, len: usize) {
        for _ in 0..(4 - len % 4) % 4 {
            self.buf.push(0);
        }
    }
}

/// A type with an XDR encoding.
pub trait Xdr: Sized {
    /// Appends the encoding of `self`.
    fn encode(&self, w: &mut Writer);
    /// Reads one value.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// Fewest bytes one value takes (bounds list lengths before allocating).
    const MIN_SIZE: usize = 4;
}

impl Xdr for () {
    fn encode(&self, _: &mut Writer) {}
    fn decode(_: &mut Reader<'_>) -> Result<(), DecodeError> {
        Ok(())
    }
    const MIN_SIZE: usize = 0;
}

impl Xdr for u32 {
    fn encode(&self, w: &mut Writer) {
        w.u32(*self)
    }
    fn decode(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
        r.u32()
    }
}

impl Xdr for i32 {
    fn encode(&self, w: &mut Writer) {
        w.i32(*self)
    }
    fn decode(r: &mut Reader<'_>) -> Result<i32, DecodeError> {
        r.i32()
    }
}

impl Xdr for u64 {
    fn encode(&self, w: &mut Writer) {
        w.u64(*self)
    }
    fn decode(r: &mut Reader<'_>) -> Result<u64, DecodeError> {
        r.u64()
    }
    const MIN_SIZE: usize = 8;
}

impl Xdr for i64 {
    fn encode(&self, w: &mut Writer) {
        w.u64(*self as u64)
    }
    fn decode(r: &mut Reader<'_>) -> Result<i64, DecodeError> {
        Ok(r.u64()? as i64)
    }
    const MIN_SIZE: usize = 8;
}

impl Xdr for f64 {
    fn encode(&self, w: &mut Writer) {
        w.u64(self.to_bits())
    }
    fn decode(r: &mut Reader<'_>) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(r.u64()?))
    }
    const MIN_SIZE: usize = 8;
}

/// `remote_uuid` (`opaque[VIR_UUID_BUFLEN]`).
impl Xdr for [u8; 16] {
    fn encode(&self, w: &mut Writer) {
        w.fixed(self)
    }
    fn decode(r: &mut Reader<'_>) -> Result<[u8; 16], DecodeError> {
        r.fixed()
    }
    const MIN_SIZE: usize = 16;
}

/// `remote_nonnull_string` (`string<REMOTE_STRING_MAX>`).
impl Xdr for String {
    fn encode(&self, w: &mut Writer) {
        w.opaque(self.as_bytes())
    }
    fn decode(r: &mut Reader<'_>) -> Result<String, DecodeError> {
        r.string(STRING_MAX)
    }
}

/// Optional data (`T *`): `remote_string`, `remote_network`.
impl<T: Xdr> Xdr for Option<T> {
    fn encode(&self, w: &mut Writer) {
        match self {
            None => w.u32(0),
            Some(v) => {
                w.u32(1);
                v.encode(w);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Option<T>, DecodeError> {
        if r.present()? {
            Ok(Some(T::decode(r)?))
        } else {
            Ok(None)
        }
    }
}

/// `T name<MAX>`: a variable-length array with the `.x` file's limit in its type.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T, const MAX: u32>(pub Vec<T>);

impl<T, const MAX: u32> Default for List<T, MAX> {
    fn default() -> Self {
        List(Vec::new())
    }
}

impl<T: Xdr, const MAX: u32> Xdr for List<T, MAX> {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.0.len() as u32);
        for v in &self.0 {
            v.encode(w);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = r.list_len(MAX, T::MIN_SIZE)?;
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            out.push(T::decode(r)?);
        }
        Ok(List(out))
    }
}

/// Declares XDR structs: the fields are encoded in order, as the `.x` file lists them.
#[macro_export]
macro_rules! xdr_struct {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident { $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)? }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name { $( $(#[$fmeta])* pub $field: $ty ),* }

        impl $crate::xdr::Xdr for $name {
            fn encode(&self, _w: &mut $crate::xdr::Writer) {
                $( $crate::xdr::Xdr::encode(&self.$field, _w); )*
            }
            fn decode(_r: &mut $crate::xdr::Reader<'_>) -> Result<Self, $crate::DecodeError> {
                Ok($name { $( $field: <$ty as $crate::xdr::Xdr>::decode(_r)? ),* })
            }
            // The sum of the fields' least sizes: a list of these is bounded by the frame.
            const MIN_SIZE: usize = 0 $( + <$ty as $crate::xdr::Xdr>::MIN_SIZE )*;
        }
    )*};
}
