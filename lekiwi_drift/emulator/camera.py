"""Sim camera frames into LeRobot's LeKiwi: a registered LeRobot `Camera` type (`lekiwi_emu`) that reads the
frames `lekiwi-drift sim buses` renders, from a shared-memory file per camera.

Why a file in /dev/shm and not a socket: the host reads the newest frame whenever it wants one
(`read_latest`), like a V4L2 camera's buffer; a memory-mapped slot gives exactly that, with no
queue to drain. The writer uses a sequence counter as a seqlock (odd while writing), so a reader never
returns a half-written frame.

Layout: 32-byte header (seq u64, stamp f64 wall time, height u32, width u32, 8 spare) then H*W*3 RGB.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
from lerobot.cameras.camera import Camera

from lekiwi_drift.emulator.config_camera import EmulatedCameraConfig

_HEADER = struct.Struct("<QdII8x")


class FrameSlot:
    """One camera's shared frame: `write` on the sim side, `read` on the host side."""

    def __init__(self, path: str | Path, height: int, width: int, create: bool = False):
        self.path, self.shape = Path(path), (height, width, 3)
        size = _HEADER.size + height * width * 3
        if create:
            self.path.write_bytes(_HEADER.pack(0, 0.0, height, width) + bytes(size - _HEADER.size))
        elif not self.path.exists():
            raise FileNotFoundError(
                f"no emulated camera frames at {self.path}; start `lekiwi-drift sim buses` (it writes them) "
                "and use the config it writes"
            )
        self._mm = np.memmap(self.path, dtype=np.uint8, mode="r+" if create else "r", shape=(size,))
        _, _, h, w = _HEADER.unpack(self._mm[: _HEADER.size].tobytes())
        if (h, w) != (height, width):
            raise ValueError(f"{self.path} holds {w}x{h} frames, the camera config asks for {width}x{height}")

    def _header(self) -> tuple[int, float]:
        seq, stamp, _, _ = _HEADER.unpack(self._mm[: _HEADER.size].tobytes())
        return seq, stamp

    def write(self, frame: np.ndarray) -> None:
        seq, _ = self._header()
        h, w, _ = self.shape
        self._mm[: _HEADER.size] = np.frombuffer(_HEADER.pack(seq + 1, time.time(), h, w), np.uint8)
        self._mm[_HEADER.size :] = np.ascontiguousarray(frame, dtype=np.uint8).reshape(-1)
        self._mm[: _HEADER.size] = np.frombuffer(_HEADER.pack(seq + 2, time.time(), h, w), np.uint8)

    def read(self, timeout_s: float = 1.0) -> tuple[int, float, np.ndarray]:
        """(seq, stamp, frame) of a complete frame; TimeoutError if none is written within timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            seq, stamp = self._header()
            if seq and seq % 2 == 0:
                frame = np.array(self._mm[_HEADER.size :]).reshape(self.shape)
                if self._header()[0] == seq:
                    return seq, stamp, frame
            if time.monotonic() > deadline:
                raise TimeoutError(f"no complete frame in {self.path} within {timeout_s} s (is `sim buses` running?)")
            time.sleep(0.002)

    def close(self) -> None:
        del self._mm


class EmulatedCamera(Camera):
    def __init__(self, config: EmulatedCameraConfig):
        super().__init__(config)
        self.config = config
        self._slot: FrameSlot | None = None
        self._last_seq = 0

    @property
    def is_connected(self) -> bool:
        return self._slot is not None

    @staticmethod
    def find_cameras() -> list[dict]:
        return [{"type": "lekiwi_emu", "id": str(p)} for p in sorted(Path("/dev/shm").glob("lekiwi_emu_*"))]

    def connect(self, warmup: bool = True) -> None:
        self._slot = FrameSlot(self.config.path, self.config.height, self.config.width)
        if warmup:
            self._slot.read(timeout_s=5.0)

    def read(self) -> np.ndarray:
        return self.async_read()

    def async_read(self, timeout_ms: float = 1000) -> np.ndarray:
        """The next frame not returned before (waits for one)."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            seq, _, frame = self._slot.read(timeout_s=max(0.0, deadline - time.monotonic()))
            if seq != self._last_seq:
                self._last_seq = seq
                return frame
            if time.monotonic() > deadline:
                raise TimeoutError(f"no new frame in {self.config.path} within {timeout_ms} ms")
            time.sleep(0.002)

    def read_latest(self, max_age_ms: int = 500) -> np.ndarray:
        seq, stamp, frame = self._slot.read()
        age_ms = (time.time() - stamp) * 1000
        if age_ms > max_age_ms:
            raise TimeoutError(f"latest frame in {self.config.path} is {age_ms:.0f} ms old (> {max_age_ms} ms)")
        self._last_seq = seq
        return frame

    def disconnect(self) -> None:
        if self._slot is not None:
            self._slot.close()
            self._slot = None
