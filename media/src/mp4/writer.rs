//! The one ISO BMFF box writer: boxes are opened, filled and closed over a `Vec<u8>`, and the
//! 32-bit size of each box is back-patched when it is closed.
//!
//! Box header layout: ISO/IEC 14496-12 §4.2 (`Box`, `FullBox`, `uuid` extended type).

/// Where a box starts inside the buffer; returned by the `start_*` methods, given back to
/// [`BoxWriter::end_box`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a started box must be closed with end_box"]
pub struct BoxPos(usize);

impl BoxPos {
    /// Offset of the box's first byte (its size field) in the buffer.
    pub fn offset(self) -> usize {
        self.0
    }
}

/// Appends boxes to a borrowed buffer. Everything is big-endian, as ISO BMFF requires.
///
/// Boxes nest by calling `start_*` inside another open box; close them in reverse order.
#[derive(Debug)]
pub struct BoxWriter<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> BoxWriter<'a> {
    /// Writes after whatever `buf` already holds.
    pub fn new(buf: &'a mut Vec<u8>) -> Self {
        Self { buf }
    }

    /// Reserves room for at least `additional` more bytes.
    pub fn reserve(&mut self, additional: usize) {
        self.buf.reserve(additional);
    }

    /// Current length of the whole buffer (including bytes written before this writer).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when the underlying buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Opens a plain box: writes a placeholder size and the four-character code.
    pub fn start_box(&mut self, fourcc: &[u8; 4]) -> BoxPos {
        let pos = BoxPos(self.buf.len());
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.buf.extend_from_slice(fourcc);
        pos
    }

    /// Opens a `FullBox` (§4.2): box header, then 8-bit version and 24-bit flags.
    pub fn start_full_box(&mut self, fourcc: &[u8; 4], version: u8, flags: u32) -> BoxPos {
        let pos = self.start_box(fourcc);
        self.version_flags(version, flags);
        pos
    }

    /// Opens a `uuid` box with the given 16-byte extended type.
    pub fn start_uuid_box(&mut self, uuid: &[u8; 16]) -> BoxPos {
        let pos = self.start_box(b"uuid");
        self.buf.extend_from_slice(uuid);
        pos
    }

    /// Opens a `uuid` box that is also a full box (e.g. Smooth Streaming's `tfxd`).
    pub fn start_full_uuid_box(&mut self, uuid: &[u8; 16], version: u8, flags: u32) -> BoxPos {
        let pos = self.start_uuid_box(uuid);
        self.version_flags(version, flags);
        pos
    }

    /// Closes the box opened at `pos` by patching its 32-bit size.
    ///
    /// # Panics
    /// If the box grew beyond 4 GiB − 1, which no box this crate writes can reach except
    /// `mdat`, and `mdat` is written with [`BoxWriter::write_mdat_header`] instead.
    pub fn end_box(&mut self, pos: BoxPos) {
        let size = self.buf.len() - pos.0;
        let size = u32::try_from(size).expect("box larger than 4 GiB: use a 64-bit box header");
        self.patch_u32(pos.0, size);
    }

    /// Writes a complete `mdat` header for a payload of `payload_len` bytes that the caller
    /// appends next; uses the 64-bit `largesize` form only when the 32-bit one cannot hold it.
    /// Returns the header length (8 or 16).
    pub fn write_mdat_header(&mut self, payload_len: u64) -> usize {
        match u32::try_from(payload_len + 8) {
            Ok(size) => {
                self.u32(size);
                self.fourcc(b"mdat");
                8
            }
            Err(_) => {
                self.u32(1);
                self.fourcc(b"mdat");
                self.u64(payload_len + 16);
                16
            }
        }
    }

    /// Overwrites four bytes at `offset` (e.g. a `trun` data offset known only later).
    ///
    /// # Panics
    /// If `offset + 4` is beyond the end of the buffer (a bug in the caller, never data).
    pub fn patch_u32(&mut self, offset: usize, value: u32) {
        self.buf[offset..offset + 4].copy_from_slice(&value.to_be_bytes());
    }

    pub fn version_flags(&mut self, version: u8, flags: u32) {
        self.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
    }

    pub fn fourcc(&mut self, fourcc: &[u8; 4]) {
        self.buf.extend_from_slice(fourcc);
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// The low 24 bits of `v`.
    pub fn u24(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes()[1..]);
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    pub fn bytes(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_boxes_get_their_sizes() {
        let mut buf = vec![0xAA]; // bytes before the writer's first box stay untouched
        let mut w = BoxWriter::new(&mut buf);
        let outer = w.start_box(b"moof");
        let inner = w.start_full_box(b"mfhd", 0, 0);
        w.u32(7);
        w.end_box(inner);
        w.end_box(outer);
        assert_eq!(
            buf,
            [
                &[0xAA][..],
                &[0, 0, 0, 24],
                b"moof",
                &[0, 0, 0, 16],
                b"mfhd",
                &[0, 0, 0, 0],
                &[0, 0, 0, 7],
            ]
            .concat()
        );
    }

    #[test]
    fn full_box_and_uuid_headers() {
        let mut buf = Vec::new();
        let mut w = BoxWriter::new(&mut buf);
        let uuid = [7u8; 16];
        let b = w.start_full_uuid_box(&uuid, 1, 0x0102_0304);
        w.u24(0x00ab_cdef);
        w.end_box(b);
        assert_eq!(&buf[0..4], &31u32.to_be_bytes());
        assert_eq!(&buf[4..8], b"uuid");
        assert_eq!(&buf[8..24], &uuid);
        assert_eq!(&buf[24..28], &[1, 2, 3, 4]);
        assert_eq!(&buf[28..31], &[0xab, 0xcd, 0xef]);
    }

    #[test]
    fn mdat_header_small_and_large() {
        let mut buf = Vec::new();
        let mut w = BoxWriter::new(&mut buf);
        assert_eq!(w.write_mdat_header(10), 8);
        assert_eq!(w.write_mdat_header(u64::from(u32::MAX)), 16);
        assert_eq!(&buf[0..8], &[0, 0, 0, 18, b'm', b'd', b'a', b't']);
        assert_eq!(&buf[8..12], &[0, 0, 0, 1]);
        assert_eq!(&buf[16..24], &(u64::from(u32::MAX) + 16).to_be_bytes());
    }
}
