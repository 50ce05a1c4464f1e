"""Which video decoder LeRobot should use on this machine.

LeRobot's default, torchcodec, needs FFmpeg's shared libraries; where they are missing, every dataset
open prints a long traceback before LeRobot falls back to PyAV, which decodes several times slower
(docs/benchmarks.md, "Training data path"). We check once and say so in one line.
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)


@functools.cache
def video_backend() -> str:
    """ "torchcodec" when FFmpeg's libraries load, else "pyav" (with a warning that says how to fix it)."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads libavcodec)
    except Exception:  # noqa: BLE001 - any load failure means the same: use PyAV
        log.warning(
            "torchcodec cannot load FFmpeg's libraries; decoding videos with PyAV (slower). "
            "For the fast decoder install FFmpeg (e.g. `apt-get install ffmpeg`)."
        )
        return "pyav"
    return "torchcodec"
