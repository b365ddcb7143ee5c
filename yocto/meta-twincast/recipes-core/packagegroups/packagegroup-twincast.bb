SUMMARY = "twincast live encoder box"
DESCRIPTION = "The twincast daemon with the GStreamer plugins, time sync and tools a field \
               technician uses on an encoder box."
LICENSE = "MIT"

PACKAGE_ARCH = "${TUNE_PKGARCH}"

inherit packagegroup

RDEPENDS:${PN} = "chrony \
                  curl \
                  gstreamer1.0-libav \
                  gstreamer1.0-plugins-base-meta \
                  gstreamer1.0-plugins-good-meta \
                  gstreamer1.0-plugins-ugly-x264 \
                  twincast \
                  v4l-utils \
                  "
