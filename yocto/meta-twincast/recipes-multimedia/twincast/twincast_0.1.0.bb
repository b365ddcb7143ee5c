SUMMARY = "Epoch-locked multi-bitrate live encoder with double push and a local origin"
DESCRIPTION = "twincast captures a camera or feed with GStreamer, encodes an H.264/AAC ladder \
               whose timestamps are locked to the UNIX epoch, pushes it to a primary and a \
               secondary ingest and serves it as HLS/DASH from a local origin."
HOMEPAGE = "https://github.com/twincast/twincast"
BUGTRACKER = "https://github.com/twincast/twincast/issues"
SECTION = "multimedia"
LICENSE = "Apache-2.0 OR MIT"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=9;endline=9;md5=86b31c7756a1a7962f28b62856ed4f05"

DEPENDS += "gstreamer1.0 gstreamer1.0-plugins-base"

PV .= "+git"

SRC_URI = "git://github.com/twincast/twincast.git;protocol=https;branch=main;destsuffix=${BP}"
# The commit this layer builds. twincast-crates.inc lists exactly the crates of this commit's
# Cargo.lock: scripts/bump-yocto-srcrev moves both together, tests/yocto_layer.rs checks it.
SRCREV = "a4037c09c7261a390e360cd4027950be0ac0a577"
S = "${UNPACKDIR}/${BP}"

require ${BPN}-crates.inc

inherit cargo pkgconfig systemd useradd

# The workspace needs rustc >= 1.95 (edition 2024, Cargo.toml rust-version). Say so at parse
# time instead of failing in do_compile with an edition error (README.md, "Rust").
TWINCAST_MIN_RUST = "1.95"
python () {
    if 'twincast-box' not in (d.getVar('OVERRIDES') or '').split(':'):
        raise bb.parse.SkipRecipe('meta-twincast needs DISTROOVERRIDES:append = ":twincast-box" in '
                                  'local.conf or the distro: it builds the x264 and VA plugins '
                                  'the daemon encodes with (meta-twincast/README.md)')
    rust = (d.getVar('PREFERRED_VERSION_rust-native') or d.getVar('RUSTVERSION') or '').rstrip('%')
    if rust and bb.utils.vercmp_string_op(rust, d.getVar('TWINCAST_MIN_RUST'), '<'):
        raise bb.parse.SkipRecipe("twincast needs rustc >= %s but this build selects rust %s: "
                                  "use openembedded-core blacksail (master, rust 1.97) or a mixin "
                                  "layer that sets RUSTVERSION >= %s (meta-twincast/README.md, Rust)"
                                  % (d.getVar('TWINCAST_MIN_RUST'), rust, d.getVar('TWINCAST_MIN_RUST')))
}

# The daemon crate is at the workspace root; the media crate comes with the source.
CARGO_BUILD_FLAGS += "--bin twincast"

SYSTEMD_SERVICE:${PN} = "twincast.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

USERADD_PACKAGES = "${PN}"
# video and audio come with base-passwd; render (the /dev/dri/renderD* group) only with udev's
# package, which is not installed when this user is created, so create it here too (useradd
# skips a group that already exists).
GROUPADD_PARAM:${PN} = "--system render"
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

# The GStreamer plugins of every element the daemon creates or decodebin plugs in for its inputs
# (src/capture/, src/input/); tests/yocto_layer.rs maps each element to its package and fails
# when one is not carried here or by packagegroup-twincast. x264enc needs the ugly bbappend.
RDEPENDS:${PN} = "bash \
                  curl \
                  gstreamer1.0 \
                  gstreamer1.0-libav \
                  gstreamer1.0-plugins-bad-mpegtsdemux \
                  gstreamer1.0-plugins-bad-videoparsersbad \
                  gstreamer1.0-plugins-base-app \
                  gstreamer1.0-plugins-base-audioconvert \
                  gstreamer1.0-plugins-base-audiorate \
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
# Hardware encoders and slate inputs: used when present, the daemon says what is missing.
RRECOMMENDS:${PN} = "gstreamer1.0-plugins-bad-va \
                     gstreamer1.0-plugins-base-alsa \
                     gstreamer1.0-plugins-base-pango \
                     gstreamer1.0-plugins-good-imagefreeze \
                     gstreamer1.0-plugins-good-jpeg \
                     gstreamer1.0-plugins-good-png \
                     "
