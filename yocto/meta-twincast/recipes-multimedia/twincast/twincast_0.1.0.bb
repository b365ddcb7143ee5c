SUMMARY = "Epoch-locked multi-bitrate live encoder with double push and a local origin"
DESCRIPTION = "twincast captures a camera or feed with GStreamer, encodes an H.264/AAC ladder \
               whose timestamps are locked to the UNIX epoch, pushes it to a primary and a \
               secondary ingest and serves it as HLS/DASH from a local origin."
HOMEPAGE = "https://github.com/twincast/twincast"
BUGTRACKER = "https://github.com/twincast/twincast/issues"
SECTION = "multimedia"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=9;endline=9;md5=86b31c7756a1a7962f28b62856ed4f05"

DEPENDS += "gstreamer1.0 gstreamer1.0-plugins-base"

PV .= "+git"

SRC_URI = "git://github.com/twincast/twincast.git;protocol=https;branch=main"
# The commit a release is built from; bump it together with twincast-crates.inc.
SRCREV = "ef28cb7e89c99ab9c0af95c3c86e242aa9399a97"

require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates pkgconfig systemd useradd

# The daemon crate is at the workspace root; the media crate comes with the source.
CARGO_BUILD_FLAGS += "--bin twincast"

SYSTEMD_SERVICE:${PN} = "twincast.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/twincast --no-create-home \
                       --shell /sbin/nologin --user-group --groups video,audio,render twincast"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/twincast.service ${D}${systemd_system_unitdir}/twincast.service
    install -d ${D}${sysconfdir}/twincast
    install -m 0644 ${S}/config/twincast.toml ${D}${sysconfdir}/twincast/twincast.toml
    install -d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${S}/systemd/twincast.tmpfiles ${D}${nonarch_libdir}/tmpfiles.d/twincast.conf
    install -d ${D}${bindir}
    for script in twincast-diag twincast-set-ingest twincast-pair-check twincast-watch; do
        install -m 0755 ${S}/scripts/$script ${D}${bindir}/$script
    done
}

FILES:${PN} += "${systemd_system_unitdir}/twincast.service ${nonarch_libdir}/tmpfiles.d/twincast.conf"
CONFFILES:${PN} = "${sysconfdir}/twincast/twincast.toml"

# The elements the capture pipeline builds (src/capture/elements.rs): sources, conversion,
# x264/openh264 H.264, libav/voaac AAC, RTP/MPEG-TS and RTSP input.
RDEPENDS:${PN} = "bash \
                  curl \
                  gstreamer1.0-libav \
                  gstreamer1.0-plugins-bad-mpegtsdemux \
                  gstreamer1.0-plugins-bad-videoparsersbad \
                  gstreamer1.0-plugins-base-app \
                  gstreamer1.0-plugins-base-audioconvert \
                  gstreamer1.0-plugins-base-audioresample \
                  gstreamer1.0-plugins-base-audiotestsrc \
                  gstreamer1.0-plugins-base-playback \
                  gstreamer1.0-plugins-base-typefindfunctions \
                  gstreamer1.0-plugins-base-videoconvertscale \
                  gstreamer1.0-plugins-base-videorate \
                  gstreamer1.0-plugins-base-videotestsrc \
                  gstreamer1.0-plugins-good-audioparsers \
                  gstreamer1.0-plugins-good-isomp4 \
                  gstreamer1.0-plugins-good-rtp \
                  gstreamer1.0-plugins-good-rtpmanager \
                  gstreamer1.0-plugins-good-rtsp \
                  gstreamer1.0-plugins-good-udp \
                  gstreamer1.0-plugins-good-video4linux2 \
                  gstreamer1.0-plugins-ugly-x264 \
                  "
RRECOMMENDS:${PN} = "chrony \
                     gstreamer1.0-plugins-bad-va \
                     gstreamer1.0-plugins-base-alsa \
                     gstreamer1.0-plugins-base-pango \
                     gstreamer1.0-plugins-good-imagefreeze \
                     gstreamer1.0-plugins-good-jpeg \
                     gstreamer1.0-plugins-good-png \
                     "
