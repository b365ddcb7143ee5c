# v4l2-ctl and v4l2-compliance, to check a capture card by hand (meta-oe).
RDEPENDS:${PN} += "v4l-utils"
