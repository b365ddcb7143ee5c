SUMMARY = "twincast live encoder box"
DESCRIPTION = "The twincast daemon with the GStreamer plugins and tools a field technician \
               uses on an encoder box."
LICENSE = "MIT"

PACKAGE_ARCH = "${TUNE_PKGARCH}"

inherit packagegroup

# Everything here is in openembedded-core; v4l-utils, chrony and the meta-multimedia plugins
# are added by dynamic-layers/ when those layers are in the build.
RDEPENDS:${PN} = "curl \
                  gstreamer1.0-plugins-bad-va \
                  gstreamer1.0-plugins-base-alsa \
                  gstreamer1.0-plugins-base-pango \
                  gstreamer1.0-plugins-good-imagefreeze \
                  gstreamer1.0-plugins-good-jpeg \
                  gstreamer1.0-plugins-good-png \
                  gstreamer1.0-plugins-good-video4linux2 \
                  twincast \
                  "
