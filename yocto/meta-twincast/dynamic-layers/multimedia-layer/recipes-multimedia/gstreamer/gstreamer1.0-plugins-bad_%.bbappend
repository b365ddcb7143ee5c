# srtsrc (SRT input, src/input/srt.rs), openh264enc and voaacenc (the fallback H.264 and AAC
# encoders, src/capture/elements.rs) need srt, openh264 and vo-aacenc from meta-multimedia.
# Only in builds that opt in with DISTROOVERRIDES:append = ":twincast-box" (README.md), so
# adding the layer alone changes no openembedded-core recipe.
PACKAGECONFIG:append:twincast-box = " srt openh264 voaacenc"
