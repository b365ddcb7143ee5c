//! Annex B byte streams ↔ length-prefixed (AVCC) samples, and access-unit splitting
//! (H.264 Annex B, §7.4.1.2.3).

use super::{H264Error, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SEI, NAL_SPS, is_vcl, nal_unit_type};

/// Iterates the NAL units of an Annex B byte stream (start codes `00 00 01` or `00 00 00 01`).
/// Trailing zero bytes before a start code are not part of a NAL unit and are dropped; empty NAL
/// units are skipped. Data before the first start code other than zero bytes is an error.
#[derive(Debug, Clone)]
pub struct AnnexBNals<'a> {
    data: &'a [u8],
    /// Start of the next NAL unit's payload, or `None` when done.
    next: Option<usize>,
    error: Option<H264Error>,
}

/// Returns (start code position, payload start) of the first start code at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(window) = data.get(i..i + 3) {
        if window[2] > 1 {
            i += 3;
        } else if window == [0, 0, 1] {
            return Some((i, i + 3));
        } else {
            i += 1;
        }
    }
    None
}

impl<'a> AnnexBNals<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        match find_start_code(data, 0) {
            Some((pos, payload)) => {
                let junk = data.get(..pos).unwrap_or_default();
                if junk.iter().any(|&b| b != 0) {
                    Self::failed(data, H264Error::NoStartCode(pos))
                } else {
                    Self {
                        data,
                        next: Some(payload),
                        error: None,
                    }
                }
            }
            None if data.iter().all(|&b| b == 0) => Self {
                data,
                next: None,
                error: None,
            },
            None => Self::failed(data, H264Error::NoStartCode(data.len())),
        }
    }

    fn failed(data: &'a [u8], e: H264Error) -> Self {
        Self {
            data,
            next: None,
            error: Some(e),
        }
    }
}

impl<'a> Iterator for AnnexBNals<'a> {
    type Item = Result<&'a [u8], H264Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        loop {
            let start = self.next?;
            let (end, next) = match find_start_code(self.data, start) {
                Some((pos, payload)) => (pos, Some(payload)),
                None => (self.data.len(), None),
            };
            self.next = next;
            let mut nal = self.data.get(start..end).unwrap_or_default();
            while let [rest @ .., 0] = nal {
                nal = rest;
            }
            if !nal.is_empty() {
                return Some(Ok(nal));
            }
        }
    }
}

/// Converts Annex B data to 4-byte length-prefixed NAL units, appending to `out`.
pub fn annexb_to_avcc_into(annexb: &[u8], out: &mut Vec<u8>) -> Result<(), H264Error> {
    out.reserve(annexb.len() + 16);
    for nal in AnnexBNals::new(annexb) {
        push_length_prefixed(nal?, out)?;
    }
    Ok(())
}

/// Converts Annex B data (one access unit, or any run of NAL units) to 4-byte length-prefixed
/// NAL units, the sample format of `avc1` tracks.
pub fn annexb_to_avcc(annexb: &[u8]) -> Result<Vec<u8>, H264Error> {
    let mut out = Vec::with_capacity(annexb.len() + 16);
    annexb_to_avcc_into(annexb, &mut out)?;
    Ok(out)
}

/// Converts a list of NAL units (without start codes) to one 4-byte length-prefixed sample.
pub fn nals_to_avcc(nals: &[&[u8]]) -> Result<Vec<u8>, H264Error> {
    let mut out = Vec::with_capacity(nals.iter().map(|n| n.len() + 4).sum());
    for nal in nals {
        push_length_prefixed(nal, &mut out)?;
    }
    Ok(out)
}

fn push_length_prefixed(nal: &[u8], out: &mut Vec<u8>) -> Result<(), H264Error> {
    let len = u32::try_from(nal.len()).map_err(|_| H264Error::NalTooLarge(nal.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(nal);
    Ok(())
}

/// Splits an Annex B elementary stream into access units (lists of NAL units), using the
/// boundary rules of §7.4.1.2.3 that matter for single-layer streams: an AUD, SPS, PPS or SEI
/// after a picture's slices, or a slice with `first_mb_in_slice == 0`, starts a new access unit.
pub fn split_access_units(annexb: &[u8]) -> Result<Vec<Vec<&[u8]>>, H264Error> {
    let mut units: Vec<Vec<&[u8]>> = Vec::new();
    let mut current: Vec<&[u8]> = Vec::new();
    let mut seen_vcl = false;
    for nal in AnnexBNals::new(annexb) {
        let nal = nal?;
        let t = nal_unit_type(nal).unwrap_or(0);
        let starts_new = if is_vcl(t) {
            // first_mb_in_slice is ue(v); value 0 is the single bit '1'.
            let first_mb_zero = nal.get(1).is_some_and(|b| b & 0x80 != 0);
            seen_vcl && first_mb_zero
        } else {
            seen_vcl && matches!(t, NAL_SEI | NAL_SPS | NAL_PPS | NAL_AUD | 14..=18)
        };
        if starts_new {
            units.push(std::mem::take(&mut current));
            seen_vcl = false;
        }
        seen_vcl |= is_vcl(t);
        current.push(nal);
    }
    if !current.is_empty() {
        units.push(current);
    }
    Ok(units)
}

// ---------------------------------------------------------------------------------------------
// Length-prefixed (AVCC) samples

/// Iterates the NAL units of a length-prefixed sample. Stops after the first error.
#[derive(Debug, Clone)]
pub struct AvccNals<'a> {
    data: &'a [u8],
    offset: usize,
    length_size: usize,
}

impl<'a> AvccNals<'a> {
    /// NAL units with 4-byte length prefixes (what this crate always writes).
    pub fn new(sample: &'a [u8]) -> Self {
        Self {
            data: sample,
            offset: 0,
            length_size: 4,
        }
    }

    /// NAL units with 1-, 2- or 4-byte length prefixes (`lengthSizeMinusOne + 1` of `avcC`).
    pub fn with_length_size(sample: &'a [u8], length_size: u8) -> Result<Self, H264Error> {
        if !matches!(length_size, 1 | 2 | 4) {
            return Err(H264Error::LengthSize(length_size));
        }
        Ok(Self {
            data: sample,
            offset: 0,
            length_size: usize::from(length_size),
        })
    }
}

impl<'a> Iterator for AvccNals<'a> {
    type Item = Result<&'a [u8], H264Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.offset..)?;
        if rest.is_empty() {
            return None;
        }
        let offset = self.offset;
        let Some(prefix) = rest.get(..self.length_size) else {
            self.offset = self.data.len();
            return Some(Err(H264Error::Truncated {
                what: "NAL length prefix",
                offset,
                needed: self.length_size,
                available: rest.len(),
            }));
        };
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let Some(nal) = rest.get(self.length_size..self.length_size + len) else {
            self.offset = self.data.len();
            return Some(Err(H264Error::Truncated {
                what: "NAL unit",
                offset,
                needed: self.length_size + len,
                available: rest.len(),
            }));
        };
        if nal.is_empty() {
            self.offset = self.data.len();
            return Some(Err(H264Error::EmptyNal(offset)));
        }
        self.offset += self.length_size + len;
        Some(Ok(nal))
    }
}

/// True when a 4-byte length-prefixed sample holds an IDR slice.
pub fn is_idr(sample: &[u8]) -> Result<bool, H264Error> {
    for nal in AvccNals::new(sample) {
        if nal_unit_type(nal?) == Some(NAL_IDR) {
            return Ok(true);
        }
    }
    Ok(false)
}
