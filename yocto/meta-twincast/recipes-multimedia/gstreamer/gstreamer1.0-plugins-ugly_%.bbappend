# x264enc, the default software H.264 encoder (src/capture/elements.rs), is not built with
# openembedded-core's default PACKAGECONFIG. x264 and this recipe carry LICENSE_FLAGS
# "commercial": the image's local.conf must accept it (README.md).
# Only in builds that opt in with DISTROOVERRIDES:append = ":twincast-box" (README.md), so
# adding the layer alone changes no openembedded-core recipe.
PACKAGECONFIG:append:twincast-box = " x264"
