#!/usr/bin/python3
"""An RTSP server peer for the e2e tests (tests/e2e_input.rs): gst-rtsp-server with its default
settings, serving one mount, /test, on 127.0.0.1 only.

The picture is the tests' marked source: a flat grey (luma ~200 in, ~185 after x264) far from
the slate's luma, encoded by x264enc (tune=zerolatency, an IDR every 15 frames), no audio.

usage: rtsp_server.py PORT

Prints "ready rtsp://127.0.0.1:PORT/test" on stdout once it is listening; runs until killed.
Needs Debian python3-gi and gir1.2-gst-rtsp-server-1.0 (scripts/install-deps).
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

LAUNCH = (
    "( videotestsrc is-live=true pattern=solid-color foreground-color=0xFFC8C8C8 "
    "! video/x-raw,width=320,height=180,framerate=30/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 "
    "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
)


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    port = sys.argv[1]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(LAUNCH)
    factory.set_shared(True)
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    print(f"ready rtsp://127.0.0.1:{port}/test", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
