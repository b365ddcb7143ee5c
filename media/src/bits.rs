//! Bit fields, most significant bit first, as MPEG systems tables and SCTE 35 lay them out.
//! Fields are up to 64 bits wide; a reader never reads past its slice (an error says which
//! field ran out).

/// Writes fields into bytes; `finish` pads the last byte with zero bits.
#[derive(Debug, Default)]
pub struct BitWriter {
    out: Vec<u8>,
    acc: u8,
    n: u32,
}

impl BitWriter {
    pub fn new() -> BitWriter {
        BitWriter::default()
    }

    /// The low `bits` bits of `v` (bits ≤ 64; higher bits of `v` are ignored).
    pub fn put(&mut self, v: u64, bits: u32) {
        for i in (0..bits.min(64)).rev() {
            self.acc = (self.acc << 1) | ((v >> i) & 1) as u8;
            self.n += 1;
            if self.n == 8 {
                self.out.push(self.acc);
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    pub fn flag(&mut self, b: bool) {
        self.put(u64::from(b), 1);
    }

    /// `bits` one bits (the "reserved" fields of SCTE 35 and MPEG systems).
    pub fn ones(&mut self, bits: u32) {
        self.put(u64::MAX, bits);
    }

    /// Whole bytes; the writer must be on a byte boundary (it is, between SCTE 35 fields).
    pub fn bytes(&mut self, b: &[u8]) {
        if self.n == 0 {
            self.out.extend_from_slice(b);
        } else {
            for &x in b {
                self.put(u64::from(x), 8);
            }
        }
    }

    /// True between whole bytes.
    pub fn is_aligned(&self) -> bool {
        self.n == 0
    }

    pub fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            let pad = 8 - self.n;
            self.put(0, pad);
        }
        self.out
    }
}

/// A field the data ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated(pub &'static str);

/// Reads fields from a slice.
#[derive(Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, bit: 0 }
    }

    /// `bits` ≤ 64 bits as a number.
    pub fn get(&mut self, bits: u32, what: &'static str) -> Result<u64, Truncated> {
        if self.bit + bits as usize > self.data.len() * 8 {
            return Err(Truncated(what));
        }
        let mut v = 0u64;
        for _ in 0..bits.min(64) {
            let byte = self.data[self.bit / 8];
            v = (v << 1) | u64::from((byte >> (7 - self.bit % 8)) & 1);
            self.bit += 1;
        }
        Ok(v)
    }

    pub fn flag(&mut self, what: &'static str) -> Result<bool, Truncated> {
        Ok(self.get(1, what)? == 1)
    }

    pub fn skip(&mut self, bits: u32, what: &'static str) -> Result<(), Truncated> {
        self.get(bits, what).map(|_| ())
    }

    /// `n` whole bytes (from a byte boundary).
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Truncated> {
        let start = self.bit.div_ceil(8);
        let end = start.checked_add(n).ok_or(Truncated(what))?;
        let b = self.data.get(start..end).ok_or(Truncated(what))?;
        self.bit = end * 8;
        Ok(b)
    }

    /// Bytes left from the next byte boundary.
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.bit.div_ceil(8))
    }

    /// The byte offset of the next byte boundary.
    pub fn position(&self) -> usize {
        self.bit.div_ceil(8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_across_byte_boundaries() {
        let mut w = BitWriter::new();
        w.put(0xFC, 8);
        w.flag(true);
        w.put(0x1_2345_6789, 33);
        w.ones(6);
        w.put(0xAB_CDEF_0123, 40);
        let b = w.finish();
        assert_eq!(b.len(), (8 + 1 + 33 + 6 + 40usize).div_ceil(8));
        let mut r = BitReader::new(&b);
        assert_eq!(r.get(8, "a"), Ok(0xFC));
        assert_eq!(r.flag("b"), Ok(true));
        assert_eq!(r.get(33, "c"), Ok(0x1_2345_6789));
        assert_eq!(r.get(6, "d"), Ok(0x3F));
        assert_eq!(r.get(40, "e"), Ok(0xAB_CDEF_0123));
        assert_eq!(r.get(1, "f"), Err(Truncated("f")));
        assert_eq!(r.bytes(1, "g"), Err(Truncated("g")));
    }
}
