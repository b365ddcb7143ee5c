# vah264enc, the VA-API H.264 encoder `encoder = "vaapi"` and `auto` pick on Intel/AMD boxes
# (src/capture/elements.rs), comes with the va plugin, off by default (libva is in oe-core).
# Only in builds that opt in with DISTROOVERRIDES:append = ":twincast-box" (README.md), so
# adding the layer alone changes no openembedded-core recipe.
PACKAGECONFIG:append:twincast-box = " va"
