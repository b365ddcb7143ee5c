//! SEI NAL units (§7.3.2.3): their messages read and written, the RBSP ↔ NAL escaping, and a NAL
//! unit put into a length-prefixed access unit before its first slice. Shared by the epoch
//! timecode (`timecode.rs`) and caption passthrough (`captions.rs`).

use super::annexb::AvccNals;
use super::{H264Error, is_vcl, nal_unit_type};

/// The messages of an SEI RBSP (without its NAL header byte): `(payloadType, payload)`.
pub fn messages(rbsp: &[u8]) -> Result<Vec<(usize, &[u8])>, H264Error> {
    let mut out = Vec::new();
    let mut pos = 0;
    while more_rbsp_data(&rbsp[pos..]) {
        let kind = read_number(rbsp, &mut pos)?;
        let size = read_number(rbsp, &mut pos)?;
        let end =
            pos.checked_add(size)
                .filter(|&e| e <= rbsp.len())
                .ok_or(H264Error::Truncated {
                    what: "SEI payload",
                    offset: pos,
                    needed: size,
                    available: rbsp.len() - pos,
                })?;
        out.push((kind, &rbsp[pos..end]));
        pos = end;
    }
    Ok(out)
}

/// An SEI NAL unit with header byte `header` holding `messages` (`(payloadType, payload)`).
pub fn nal(header: u8, messages: &[(usize, &[u8])]) -> Vec<u8> {
    let size: usize = messages.iter().map(|(_, p)| p.len() + 4).sum();
    let mut rbsp = Vec::with_capacity(size + 1);
    for &(kind, payload) in messages {
        push_number(&mut rbsp, kind);
        push_number(&mut rbsp, payload.len());
        rbsp.extend_from_slice(payload);
    }
    rbsp.push(0x80); // rbsp_trailing_bits
    rbsp_to_nal(header, &rbsp)
}

/// The access unit (`length_size`-prefixed NAL units) with `nal` before its first slice.
pub fn insert_before_first_slice(
    au: &[u8],
    length_size: u8,
    nal: &[u8],
) -> Result<Vec<u8>, H264Error> {
    let mut out = Vec::with_capacity(au.len() + nal.len() + 4);
    let mut inserted = false;
    for unit in AvccNals::with_length_size(au, length_size)? {
        let unit = unit?;
        if !inserted && is_vcl(nal_unit_type(unit).unwrap_or(0)) {
            push_prefixed(&mut out, nal, length_size)?;
            inserted = true;
        }
        push_prefixed(&mut out, unit, length_size)?;
    }
    Ok(out)
}

/// `more_rbsp_data()` (§7.2): anything left before the trailing bits (0x80, then zero bytes).
fn more_rbsp_data(rest: &[u8]) -> bool {
    match rest.split_first() {
        None => false,
        Some((&0x80, tail)) => tail.iter().any(|&b| b != 0),
        Some(_) => rest.iter().any(|&b| b != 0),
    }
}

/// `payloadType` / `payloadSize`: 0xFF per 255, then the rest (§7.3.2.3.1).
fn push_number(out: &mut Vec<u8>, mut v: usize) {
    while v >= 255 {
        out.push(0xFF);
        v -= 255;
    }
    out.push(v as u8);
}

fn read_number(rbsp: &[u8], pos: &mut usize) -> Result<usize, H264Error> {
    let mut v = 0usize;
    loop {
        let b = *rbsp.get(*pos).ok_or(H264Error::Truncated {
            what: "SEI message header",
            offset: *pos,
            needed: 1,
            available: 0,
        })?;
        *pos += 1;
        v = v.saturating_add(usize::from(b));
        if b != 0xFF {
            return Ok(v);
        }
    }
}

/// The NAL unit of an RBSP: its header byte, then the RBSP with emulation-prevention bytes
/// (`00 00 0x` → `00 00 03 0x` for x ≤ 3, §7.4.1).
pub fn rbsp_to_nal(header: u8, rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 64 + 2);
    out.push(header);
    let mut zeros = 0usize;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Appends `nal` with its `length_size`-byte length prefix.
pub fn push_prefixed(out: &mut Vec<u8>, nal: &[u8], length_size: u8) -> Result<(), H264Error> {
    let len = nal.len();
    let fits = match length_size {
        1 => len <= 0xFF,
        2 => len <= 0xFFFF,
        _ => u32::try_from(len).is_ok(),
    };
    if !fits {
        return Err(H264Error::NalTooLarge(len));
    }
    let bytes = (len as u32).to_be_bytes();
    out.extend_from_slice(&bytes[4 - usize::from(length_size)..]);
    out.extend_from_slice(nal);
    Ok(())
}
