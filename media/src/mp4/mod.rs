//! CMAF / fragmented MP4 writing: the CMAF header (`ftyp` + `moov`) and CMAF fragments
//! (`styp`, `prft`, `moof`, `mdat`) for one track, written into plain byte buffers.
//!
//! References: ISO/IEC 14496-12 (ISO BMFF) §4.2 box structure, §8 boxes; ISO/IEC 14496-14 §3
//! (MP4 `esds`); ISO/IEC 14496-15 §5.3.4 (`avc1` sample entry); ISO/IEC 23000-19 (CMAF) §7.3
//! (CMAF header and fragment structure) and §7.2 (brands).
//!
//! Layout of this module: [`writer`] is the one size-backpatching box writer; [`init`] writes
//! the header, with the sample entries in [`sample_entry`]; [`fragment`] writes fragments.

pub mod emsg;
pub mod event_track;
pub mod fragment;
pub mod init;
pub mod sample_entry;
pub mod writer;

pub use emsg::EventMessage;
pub use fragment::{
    FragmentBrands, FragmentParams, Prft, ntp_from_unix_ns, write_fragment, write_fragment_into,
};
pub use init::write_init;
pub use writer::{BoxPos, BoxWriter};
pub mod smooth;
pub mod smooth_sparse;
