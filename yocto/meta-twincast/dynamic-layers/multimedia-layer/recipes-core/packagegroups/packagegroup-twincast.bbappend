# The plugins that need meta-multimedia's libraries (gstreamer1.0-plugins-bad_%.bbappend here).
RDEPENDS:${PN} += "gstreamer1.0-plugins-bad-openh264 \
                   gstreamer1.0-plugins-bad-srt \
                   gstreamer1.0-plugins-bad-voaacenc \
                   "
