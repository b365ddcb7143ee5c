//! The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) and RFC 6381 codec strings.

use super::sps::Sps;
use super::{AVCC_EXT_PROFILES, H264Error, NAL_PPS, nal_unit_type};

/// The chroma/bit-depth extension of `avcC` for High profiles (§5.3.3.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfigExt {
    pub chroma_format: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub sps_ext: Vec<Vec<u8>>,
}

/// An AVCDecoderConfigurationRecord: the body of the `avcC` box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcDecoderConfig {
    pub profile_idc: u8,
    pub profile_compatibility: u8,
    pub level_idc: u8,
    /// Bytes per NAL length prefix in samples: 1, 2 or 4.
    pub length_size: u8,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    pub ext: Option<AvcConfigExt>,
}

/// A cursor over untrusted bytes whose reads fail instead of panicking.
struct ByteReader<'a> {
    data: &'a [u8],
    offset: usize,
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], H264Error> {
        let rest = self.data.get(self.offset..).unwrap_or_default();
        let out = rest.get(..n).ok_or(H264Error::Truncated {
            what,
            offset: self.offset,
            needed: n,
            available: rest.len(),
        })?;
        self.offset += n;
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, H264Error> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, H264Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.offset)
    }

    fn parameter_sets(&mut self, count: u8, what: &'static str) -> Result<Vec<Vec<u8>>, H264Error> {
        let mut out = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = self.u16(what)?;
            out.push(self.take(usize::from(len), what)?.to_vec());
        }
        Ok(out)
    }
}

impl AvcDecoderConfig {
    /// Parses an `avcC` body. The High-profile extension is read when present.
    pub fn parse(data: &[u8]) -> Result<Self, H264Error> {
        let mut r = ByteReader { data, offset: 0 };
        let version = r.u8("configurationVersion")?;
        if version != 1 {
            return Err(H264Error::ConfigVersion(version));
        }
        let profile_idc = r.u8("AVCProfileIndication")?;
        let profile_compatibility = r.u8("profile_compatibility")?;
        let level_idc = r.u8("AVCLevelIndication")?;
        let length_size = (r.u8("lengthSizeMinusOne")? & 0x03) + 1;
        if length_size == 3 {
            return Err(H264Error::LengthSize(3));
        }
        let num_sps = r.u8("numOfSequenceParameterSets")? & 0x1f;
        let sps = r.parameter_sets(num_sps, "sequenceParameterSetNALUnit")?;
        let num_pps = r.u8("numOfPictureParameterSets")?;
        let pps = r.parameter_sets(num_pps, "pictureParameterSetNALUnit")?;
        let ext = if r.remaining() >= 4 {
            let chroma_format = r.u8("chroma_format")? & 0x03;
            let bit_depth_luma = (r.u8("bit_depth_luma_minus8")? & 0x07) + 8;
            let bit_depth_chroma = (r.u8("bit_depth_chroma_minus8")? & 0x07) + 8;
            let n = r.u8("numOfSequenceParameterSetExt")?;
            let sps_ext = r.parameter_sets(n, "sequenceParameterSetExtNALUnit")?;
            Some(AvcConfigExt {
                chroma_format,
                bit_depth_luma,
                bit_depth_chroma,
                sps_ext,
            })
        } else {
            None
        };
        Ok(Self {
            profile_idc,
            profile_compatibility,
            level_idc,
            length_size,
            sps,
            pps,
            ext,
        })
    }

    /// Builds a configuration (4-byte NAL lengths) from parameter set NAL units. Profile,
    /// compatibility and level come from the first SPS; the High-profile extension is added for
    /// the profiles that require it.
    pub fn from_parameter_sets(sps: &[&[u8]], pps: &[&[u8]]) -> Result<Self, H264Error> {
        let first = sps.first().ok_or(H264Error::NoSps)?;
        if pps.is_empty() {
            return Err(H264Error::NoPps);
        }
        check_count("SPS", sps.len(), 31)?;
        check_count("PPS", pps.len(), 255)?;
        for p in pps {
            match nal_unit_type(p) {
                Some(NAL_PPS) => {}
                found => {
                    return Err(H264Error::NalType {
                        expected: NAL_PPS,
                        found: found.unwrap_or(0),
                    });
                }
            }
        }
        for s in sps.iter().chain(pps) {
            check_count("bytes in a parameter set", s.len(), usize::from(u16::MAX))?;
        }
        let parsed = Sps::parse(first)?;
        for s in sps.iter().skip(1) {
            Sps::parse(s)?;
        }
        let ext = AVCC_EXT_PROFILES
            .contains(&parsed.profile_idc)
            .then(|| AvcConfigExt {
                chroma_format: parsed.chroma_format_idc,
                bit_depth_luma: parsed.bit_depth_luma,
                bit_depth_chroma: parsed.bit_depth_chroma,
                sps_ext: Vec::new(),
            });
        Ok(Self {
            profile_idc: parsed.profile_idc,
            profile_compatibility: parsed.constraint_flags,
            level_idc: parsed.level_idc,
            length_size: 4,
            sps: sps.iter().map(|s| s.to_vec()).collect(),
            pps: pps.iter().map(|p| p.to_vec()).collect(),
            ext,
        })
    }

    /// Serialises the record (the `avcC` box body).
    pub fn to_bytes(&self) -> Vec<u8> {
        let sets = |v: &[Vec<u8>]| v.iter().map(|s| s.len() + 2).sum::<usize>();
        let mut out = Vec::with_capacity(16 + sets(&self.sps) + sets(&self.pps));
        out.extend_from_slice(&[
            1,
            self.profile_idc,
            self.profile_compatibility,
            self.level_idc,
            0xfc | (self.length_size.saturating_sub(1) & 0x03),
            0xe0 | (self.sps.len().min(31) as u8),
        ]);
        push_sets(&mut out, self.sps.iter().take(31));
        out.push(self.pps.len().min(255) as u8);
        push_sets(&mut out, self.pps.iter().take(255));
        if let Some(ext) = &self.ext {
            out.push(0xfc | (ext.chroma_format & 0x03));
            out.push(0xf8 | (ext.bit_depth_luma.saturating_sub(8) & 0x07));
            out.push(0xf8 | (ext.bit_depth_chroma.saturating_sub(8) & 0x07));
            out.push(ext.sps_ext.len().min(255) as u8);
            push_sets(&mut out, ext.sps_ext.iter().take(255));
        }
        out
    }

    /// Parses the first SPS for the picture size and chroma format.
    pub fn parse_sps(&self) -> Result<Sps, H264Error> {
        Sps::parse(self.sps.first().ok_or(H264Error::NoSps)?)
    }

    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn rfc6381_codec(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.profile_compatibility, self.level_idc
        )
    }
}

fn check_count(what: &'static str, count: usize, max: usize) -> Result<(), H264Error> {
    if count > max {
        return Err(H264Error::TooMany { what, count, max });
    }
    Ok(())
}

fn push_sets<'a>(out: &mut Vec<u8>, sets: impl Iterator<Item = &'a Vec<u8>>) {
    for s in sets {
        let s = s.get(..usize::from(u16::MAX)).unwrap_or(s);
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s);
    }
}

/// RFC 6381 codec string (`avc1.PPCCLL`, lower-case hex) from an `avcC` body.
pub fn rfc6381_codec(avcc: &[u8]) -> Result<String, H264Error> {
    match avcc {
        [1, profile, compat, level, ..] => Ok(format!("avc1.{profile:02x}{compat:02x}{level:02x}")),
        [version, _, _, _, ..] => Err(H264Error::ConfigVersion(*version)),
        _ => Err(H264Error::Truncated {
            what: "AVCDecoderConfigurationRecord",
            offset: 0,
            needed: 4,
            available: avcc.len(),
        }),
    }
}
