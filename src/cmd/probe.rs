//! `twincast probe`: which GStreamer elements, encoders and devices this box has.

use std::process::ExitCode;

use crate::exit;

pub fn main() -> ExitCode {
    if let Err(e) = gstreamer::init() {
        eprintln!("GStreamer could not start: {e} (install libgstreamer1.0-0)");
        return exit::code(exit::EX_UNAVAILABLE);
    }
    print!("{}", crate::capture::elements::probe_report());
    ExitCode::SUCCESS
}
