//! AAC helpers: the AudioSpecificConfig (what `esds` and FLV sequence headers carry), ADTS
//! framing (what encoders and `.aac` files emit), and RFC 6381 codec strings.
//!
//! References: ISO/IEC 14496-3 §1.6.2.1 (AudioSpecificConfig), §1.6.3.4 (sampling frequency
//! index, Table 1.16), §1.6.3.5 (channelConfiguration), §4.4.1 (GASpecificConfig), §1.A.2.2
//! (ADTS: `adts_fixed_header`, `adts_variable_header`); RFC 6381 §3.3 (`mp4a.40.<AOT>`).
//!
//! Parsers return [`AacError`] on malformed input; nothing here panics on bytes from outside.

use thiserror::Error;

/// AAC Low Complexity, the only object type twincast encodes.
pub const AOT_AAC_LC: u8 = 2;

/// Sampling frequencies by `samplingFrequencyIndex` (Table 1.16); 13 and 14 are reserved and 15
/// means an explicit 24-bit rate follows.
pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Why AAC data could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AacError {
    #[error("truncated {what}: needs {needed} bytes, {available} available")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("ADTS sync word missing at offset {0}")]
    AdtsSync(usize),
    #[error("ADTS layer {0}, expected 0")]
    AdtsLayer(u8),
    #[error("ADTS frame length {frame_length} shorter than its {header_len}-byte header")]
    AdtsFrameLength {
        frame_length: usize,
        header_len: usize,
    },
    #[error("ADTS frame with {0} raw data blocks: one AAC frame per ADTS frame is supported")]
    AdtsRawBlocks(u8),
    #[error("reserved sampling frequency index {0}")]
    ReservedRateIndex(u8),
    #[error("sample rate {0} Hz cannot be signalled")]
    SampleRate(u32),
    #[error("channel count {0} has no channelConfiguration (1..=6 and 8 are valid)")]
    Channels(u16),
    #[error("audio object type {0} is not valid")]
    ObjectType(u8),
}

fn truncated(what: &'static str, needed: usize, available: usize) -> AacError {
    AacError::Truncated {
        what,
        needed,
        available,
    }
}

/// `samplingFrequencyIndex` of a rate, if the table has it.
pub fn sample_rate_index(rate: u32) -> Option<u8> {
    SAMPLE_RATES
        .iter()
        .position(|&r| r == rate)
        .map(|i| i as u8)
}

/// `channelConfiguration` for a plain channel count (§1.6.3.5): 1..=6 map to themselves,
/// 8 channels (7.1) is configuration 7.
pub fn channel_configuration(channels: u16) -> Result<u8, AacError> {
    match channels {
        1..=6 => Ok(channels as u8),
        8 => Ok(7),
        _ => Err(AacError::Channels(channels)),
    }
}

/// Channel count of a `channelConfiguration` (0 means "in a program config element").
pub fn channel_count(config: u8) -> u16 {
    match config {
        7 => 8,
        c => u16::from(c),
    }
}

/// The fields of an AudioSpecificConfig that describe plain AAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// Audio object type (2 for AAC-LC).
    pub object_type: u8,
    /// Sampling frequency in Hz.
    pub sample_rate: u32,
    /// `channelConfiguration` (0 = defined by a program config element).
    pub channel_config: u8,
    /// Samples per frame: 1024, or 960 when `frameLengthFlag` is set.
    pub frame_length: u16,
}

impl AudioSpecificConfig {
    /// AAC-LC with 1024-sample frames.
    pub fn aac_lc(sample_rate: u32, channels: u16) -> Result<Self, AacError> {
        if sample_rate == 0 || sample_rate > 0x00ff_ffff {
            return Err(AacError::SampleRate(sample_rate));
        }
        Ok(Self {
            object_type: AOT_AAC_LC,
            sample_rate,
            channel_config: channel_configuration(channels)?,
            frame_length: 1024,
        })
    }

    /// Serialises it; rates outside the table use the explicit 24-bit form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = crate::bits::BitWriter::new();
        if self.object_type >= 31 {
            w.put(31, 5);
            w.put(u64::from(self.object_type - 32) & 0x3f, 6);
        } else {
            w.put(u64::from(self.object_type), 5);
        }
        match sample_rate_index(self.sample_rate) {
            Some(i) => w.put(u64::from(i), 4),
            None => {
                w.put(15, 4);
                w.put(u64::from(self.sample_rate & 0x00ff_ffff), 24);
            }
        }
        w.put(u64::from(self.channel_config & 0x0f), 4);
        if is_general_audio(self.object_type) {
            // GASpecificConfig: frameLengthFlag, dependsOnCoreCoder, extensionFlag.
            w.flag(self.frame_length == 960);
            w.put(0, 2);
        }
        w.finish()
    }

    /// Parses the leading fields of an AudioSpecificConfig. Later extension fields are ignored.
    pub fn parse(data: &[u8]) -> Result<Self, AacError> {
        let mut r = BitCursor { data, bit: 0 };
        let mut object_type = r.get(5)? as u8;
        if object_type == 31 {
            object_type = 32 + r.get(6)? as u8;
        }
        if object_type == 0 {
            return Err(AacError::ObjectType(0));
        }
        let sample_rate = match r.get(4)? as u8 {
            15 => r.get(24)?,
            i => *SAMPLE_RATES
                .get(usize::from(i))
                .ok_or(AacError::ReservedRateIndex(i))?,
        };
        if sample_rate == 0 {
            return Err(AacError::SampleRate(0));
        }
        let channel_config = r.get(4)? as u8;
        let frame_length = if is_general_audio(object_type) && r.get(1)? == 1 {
            960
        } else {
            1024
        };
        Ok(Self {
            object_type,
            sample_rate,
            channel_config,
            frame_length,
        })
    }

    /// Channel count, or 0 when a program config element defines it.
    pub fn channels(&self) -> u16 {
        channel_count(self.channel_config)
    }

    /// RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn rfc6381_codec(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

/// Object types whose AudioSpecificConfig continues with a GASpecificConfig (§1.6.2.1).
fn is_general_audio(object_type: u8) -> bool {
    matches!(object_type, 1..=4 | 6 | 7 | 17 | 19..=23)
}

/// RFC 6381 codec string from AudioSpecificConfig bytes, e.g. `mp4a.40.2`.
pub fn rfc6381_codec(asc: &[u8]) -> Result<String, AacError> {
    Ok(AudioSpecificConfig::parse(asc)?.rfc6381_codec())
}

struct BitCursor<'a> {
    data: &'a [u8],
    bit: usize,
}

impl BitCursor<'_> {
    fn get(&mut self, bits: u32) -> Result<u32, AacError> {
        let mut v = 0u32;
        for _ in 0..bits {
            let byte = self.data.get(self.bit / 8).ok_or(truncated(
                "AudioSpecificConfig",
                (self.bit + bits as usize).div_ceil(8),
                self.data.len(),
            ))?;
            v = (v << 1) | u32::from((byte >> (7 - self.bit % 8)) & 1);
            self.bit += 1;
        }
        Ok(v)
    }
}

// ---------------------------------------------------------------------------------------------
// ADTS (§1.A.2.2)

/// The fields of an ADTS header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdtsHeader {
    /// MPEG-2 (`ID` = 1) or MPEG-4 (0) signalling; the payload is the same.
    pub mpeg2: bool,
    /// Audio object type (`profile` + 1).
    pub object_type: u8,
    pub sample_rate_index: u8,
    pub sample_rate: u32,
    pub channel_config: u8,
    /// Whole frame length including the header.
    pub frame_length: usize,
    /// 7, or 9 with a CRC.
    pub header_len: usize,
}

impl AdtsHeader {
    /// Parses the header at the start of `data`.
    pub fn parse(data: &[u8]) -> Result<Self, AacError> {
        let h = data
            .get(..7)
            .ok_or(truncated("ADTS header", 7, data.len()))?;
        if h[0] != 0xff || h[1] & 0xf0 != 0xf0 {
            return Err(AacError::AdtsSync(0));
        }
        let layer = (h[1] >> 1) & 0x03;
        if layer != 0 {
            return Err(AacError::AdtsLayer(layer));
        }
        let protection_absent = h[1] & 0x01 == 1;
        let object_type = (h[2] >> 6) + 1;
        let sample_rate_index = (h[2] >> 2) & 0x0f;
        let sample_rate = *SAMPLE_RATES
            .get(usize::from(sample_rate_index))
            .ok_or(AacError::ReservedRateIndex(sample_rate_index))?;
        let channel_config = ((h[2] & 0x01) << 2) | (h[3] >> 6);
        let frame_length =
            (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        let raw_blocks = h[6] & 0x03;
        let header_len = if protection_absent { 7 } else { 9 };
        if raw_blocks != 0 {
            return Err(AacError::AdtsRawBlocks(raw_blocks + 1));
        }
        if frame_length < header_len {
            return Err(AacError::AdtsFrameLength {
                frame_length,
                header_len,
            });
        }
        Ok(Self {
            mpeg2: h[1] & 0x08 != 0,
            object_type,
            sample_rate_index,
            sample_rate,
            channel_config,
            frame_length,
            header_len,
        })
    }

    /// The AudioSpecificConfig this header implies (1024-sample frames).
    pub fn audio_specific_config(&self) -> AudioSpecificConfig {
        AudioSpecificConfig {
            object_type: self.object_type,
            sample_rate: self.sample_rate,
            channel_config: self.channel_config,
            frame_length: 1024,
        }
    }
}

/// One ADTS frame: its header and the raw AAC frame after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdtsFrame<'a> {
    pub header: AdtsHeader,
    pub payload: &'a [u8],
}

/// Parses one ADTS frame at the start of `data`; returns it and the bytes after it.
pub fn parse_adts_frame(data: &[u8]) -> Result<(AdtsFrame<'_>, &[u8]), AacError> {
    let header = AdtsHeader::parse(data)?;
    let frame = data.get(..header.frame_length).ok_or(truncated(
        "ADTS frame",
        header.frame_length,
        data.len(),
    ))?;
    let payload = frame.get(header.header_len..).unwrap_or_default();
    let rest = data.get(header.frame_length..).unwrap_or_default();
    Ok((AdtsFrame { header, payload }, rest))
}

/// Strips the ADTS header from one complete ADTS frame, returning the raw AAC frame.
pub fn strip_adts(frame: &[u8]) -> Result<&[u8], AacError> {
    let (frame, _) = parse_adts_frame(frame)?;
    Ok(frame.payload)
}

/// Iterates the frames of an ADTS stream. Stops after the first error.
#[derive(Debug, Clone)]
pub struct AdtsFrames<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> AdtsFrames<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            rest: data,
            offset: 0,
        }
    }
}

impl<'a> Iterator for AdtsFrames<'a> {
    type Item = Result<AdtsFrame<'a>, AacError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match parse_adts_frame(self.rest) {
            Ok((frame, rest)) => {
                self.offset += frame.header.frame_length;
                self.rest = rest;
                Some(Ok(frame))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(match e {
                    AacError::AdtsSync(_) => AacError::AdtsSync(self.offset),
                    e => e,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADTS: &[u8] = include_bytes!("../testdata/ffmpeg_aac_lc_48k_stereo_sine.adts");

    #[test]
    fn lc_48k_stereo_is_1190() {
        let asc = AudioSpecificConfig::aac_lc(48000, 2).unwrap();
        assert_eq!(asc.to_bytes(), [0x11, 0x90]);
        assert_eq!(AudioSpecificConfig::parse(&[0x11, 0x90]).unwrap(), asc);
        assert_eq!(rfc6381_codec(&[0x11, 0x90]).unwrap(), "mp4a.40.2");
        assert_eq!(
            AudioSpecificConfig::aac_lc(44100, 1).unwrap().to_bytes(),
            [0x12, 0x08]
        );
    }

    #[test]
    fn explicit_rate_round_trips() {
        let asc = AudioSpecificConfig::aac_lc(50000, 8).unwrap();
        let bytes = asc.to_bytes();
        assert_eq!(bytes.len(), 5);
        let back = AudioSpecificConfig::parse(&bytes).unwrap();
        assert_eq!(back, asc);
        assert_eq!(back.channels(), 8);
        for n in 0..bytes.len() {
            assert!(
                AudioSpecificConfig::parse(&bytes[..n]).is_err(),
                "cut at {n}"
            );
        }
    }

    #[test]
    fn escaped_object_type_and_960_frames() {
        let asc = AudioSpecificConfig {
            object_type: 42,
            sample_rate: 48000,
            channel_config: 2,
            frame_length: 1024,
        };
        assert_eq!(AudioSpecificConfig::parse(&asc.to_bytes()).unwrap(), asc);
        let asc = AudioSpecificConfig {
            frame_length: 960,
            ..AudioSpecificConfig::aac_lc(48000, 2).unwrap()
        };
        assert_eq!(AudioSpecificConfig::parse(&asc.to_bytes()).unwrap(), asc);
    }

    #[test]
    fn bad_configs_are_errors() {
        assert_eq!(
            AudioSpecificConfig::aac_lc(48000, 7),
            Err(AacError::Channels(7))
        );
        assert_eq!(
            AudioSpecificConfig::aac_lc(0, 2),
            Err(AacError::SampleRate(0))
        );
        assert_eq!(
            AudioSpecificConfig::parse(&[0x16, 0x90]),
            Err(AacError::ReservedRateIndex(13))
        );
        assert_eq!(
            AudioSpecificConfig::parse(&[0, 0]),
            Err(AacError::ObjectType(0))
        );
        assert!(rfc6381_codec(&[0x11]).is_err());
    }

    #[test]
    fn ffmpeg_adts_file_parses() {
        let frames: Vec<AdtsFrame<'_>> = AdtsFrames::new(ADTS).map(Result::unwrap).collect();
        // 2 s at 48 kHz is 93.75 frames; ffmpeg emits whole frames plus the priming frame.
        assert!((94..=96).contains(&frames.len()), "{} frames", frames.len());
        let total: usize = frames.iter().map(|f| f.header.frame_length).sum();
        assert_eq!(total, ADTS.len());
        let h = &frames[0].header;
        assert_eq!(
            (h.object_type, h.sample_rate, h.channel_config),
            (2, 48000, 2)
        );
        assert_eq!(h.audio_specific_config().to_bytes(), [0x11, 0x90]);
        assert_eq!(
            strip_adts(&ADTS[..h.frame_length]).unwrap(),
            frames[0].payload
        );
        assert_eq!(frames[0].payload.len(), h.frame_length - h.header_len);
    }

    #[test]
    fn bad_adts_is_an_error() {
        let first = AdtsHeader::parse(ADTS).unwrap();
        for n in 0..first.frame_length {
            assert!(strip_adts(&ADTS[..n]).is_err(), "cut at {n}");
        }
        let mut bad = ADTS[..first.frame_length].to_vec();
        bad[1] |= 0x06;
        assert_eq!(AdtsHeader::parse(&bad), Err(AacError::AdtsLayer(3)));
        let mut bad = ADTS.to_vec();
        bad[first.frame_length] = 0;
        let res: Vec<_> = AdtsFrames::new(&bad).collect();
        assert_eq!(res.len(), 2);
        assert_eq!(res[1], Err(AacError::AdtsSync(first.frame_length)));
        let mut bad = ADTS[..first.frame_length].to_vec();
        bad[6] |= 0x01;
        assert_eq!(AdtsHeader::parse(&bad), Err(AacError::AdtsRawBlocks(2)));
        let mut bad = ADTS[..first.frame_length].to_vec();
        bad[3] &= 0xfc;
        bad[4] = 0;
        bad[5] &= 0x1f;
        assert!(matches!(
            AdtsHeader::parse(&bad),
            Err(AacError::AdtsFrameLength { .. })
        ));
    }
}
