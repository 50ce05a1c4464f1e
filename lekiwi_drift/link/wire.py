"""The LeKiwi wire format (LeRobot 0.6.1 `lekiwi_host.py`) plus our optional `_` header keys.

Observation: a multipart message, frame 0 a UTF-8 JSON header `{"_cams": [...], <9 state keys>, _seq,
_stamp, _sent, _proto, ...}`, then one JPEG (quality 90) per camera in `_cams` order. Command: one JSON
object with the 9 action keys as floats, optionally a `_request` object for host requests (sim reset).

Colour order: the stock host hands its RGB frames straight to `cv2.imencode` (which assumes BGR) and the
stock client decodes with `cv2.imdecode` straight back, so the RGB array survives the round trip. We do
exactly the same on both sides to stay byte-compatible with stock peers.

Everything a peer sends is untrusted: decoding raises `WireError(kind, detail)` and never anything else.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from lekiwi_drift.link.clock import observation_age
from lekiwi_drift.robots.features import STATE_KEYS

PROTO = "lekiwi-drift/1"
JPEG_QUALITY = 90

# The kinds of malformed message we count (both directions).
BAD_JSON = "bad_json"
NOT_UTF8 = "not_utf8"
FRAME_COUNT = "wrong_frame_count"
BAD_JPEG = "undecodable_jpeg"
EMPTY_FRAME = "empty_frame"
NON_FINITE = "non_finite_state"
MISSING_KEY = "missing_key"
WRONG_TYPE = "wrong_type"
UNKNOWN_CAMERA = "unknown_camera"
MISSING_CAMERA = "missing_camera"
OVERSIZED = "oversized"
UNKNOWN_KEY = "unknown_key"


class WireError(ValueError):
    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass
class Observation:
    """One validated observation. `state` follows features.STATE_KEYS; images are HxWx3 uint8 RGB."""

    state: np.ndarray
    images: dict[str, np.ndarray]
    seq: int | None = None
    stamp: float | None = None  # host wall-clock time at capture (`_stamp`), if the host sent it
    recv_time: float = field(default_factory=time.time)  # local wall-clock time at receipt
    extras: dict[str, Any] = field(default_factory=dict)  # other `_` header keys (e.g. `_success`)
    sent: float | None = None  # host wall-clock time when it was ready to send (`_sent`), if sent
    # Host clock minus local clock, as RobotLink estimated it when this arrived (link/clock.py); 0 for
    # observations stamped in this process.
    clock_offset_s: float = 0.0

    def age_s(self, now: float | None = None) -> float:
        """Seconds since capture on our clock: the host stamp corrected by `clock_offset_s` (reads low by
        the smallest one-way delay, ~ms on a LAN; see link/clock.py), never below the receipt age;
        without a stamp (stock host), since receipt."""
        now = time.time() if now is None else now
        return observation_age(now, self.recv_time, self.stamp, self.clock_offset_s)

    def state_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in zip(STATE_KEYS, self.state)}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), JPEG_QUALITY])
    return buf.tobytes() if ok else b""


def encode_observation(
    state: Mapping[str, float], jpegs: Mapping[str, bytes], extras: Mapping[str, Any] | None = None
) -> list[bytes]:
    """Header + JPEG frames, in `jpegs` order. `extras` keys must start with `_`."""
    header: dict[str, Any] = {"_cams": list(jpegs)}
    header.update({k: float(state[k]) for k in STATE_KEYS})
    for k, v in (extras or {}).items():
        if not k.startswith("_"):
            raise ValueError(f"header extra {k!r} must start with '_' so stock clients ignore it")
        header[k] = v
    return [json.dumps(header).encode()] + [bytes(j) for j in jpegs.values()]


def _parse_json_object(raw: bytes, what: str) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(NOT_UTF8, f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WireError(BAD_JSON, f"{what} is not valid JSON: {exc.msg} at {exc.pos}") from None
    if not isinstance(obj, dict):
        raise WireError(WRONG_TYPE, f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


def _read_state(obj: Mapping[str, Any], what: str) -> np.ndarray:
    values = np.empty(len(STATE_KEYS), dtype=np.float32)
    for i, key in enumerate(STATE_KEYS):
        if key not in obj:
            raise WireError(MISSING_KEY, f"{what} lacks {key!r}")
        v = obj[key]
        if not _is_number(v):
            raise WireError(WRONG_TYPE, f"{what} {key!r} must be a number, got {type(v).__name__}")
        if not math.isfinite(v):
            raise WireError(NON_FINITE, f"{what} {key!r} is {v}")
        values[i] = v
    return values


def _imdecode(buf: np.ndarray) -> np.ndarray | None:
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def decode_observation(
    frames: list[bytes],
    expected_cameras: list[str] | tuple[str, ...] | None = None,
    max_bytes: int = 8 * 1024 * 1024,
    recv_time: float | None = None,
    pool: Executor | None = None,
) -> Observation:
    """Validate and decode one multipart observation; raises WireError naming what was wrong."""
    size = sum(len(f) for f in frames)
    if size > max_bytes:
        raise WireError(OVERSIZED, f"observation is {size} bytes, over the {max_bytes}-byte limit")
    if not frames:
        raise WireError(FRAME_COUNT, "empty multipart message")
    header = _parse_json_object(frames[0], "observation header")
    cams = header.get("_cams")
    if cams is None:
        raise WireError(MISSING_KEY, "observation header lacks '_cams'")
    if not isinstance(cams, list) or not all(isinstance(c, str) for c in cams):
        raise WireError(WRONG_TYPE, "'_cams' must be a list of camera names")
    if len(frames) != len(cams) + 1:
        raise WireError(FRAME_COUNT, f"header names {len(cams)} cameras but {len(frames) - 1} image frames came")
    if expected_cameras is not None:
        unknown = [c for c in cams if c not in expected_cameras]
        if unknown:
            raise WireError(UNKNOWN_CAMERA, f"cameras {unknown} are not in the config {list(expected_cameras)}")
        missing = [c for c in expected_cameras if c not in cams]
        if missing:
            raise WireError(MISSING_CAMERA, f"cameras {missing} are missing from the observation")
    state = _read_state(header, "observation")
    seq, stamp, sent = header.get("_seq"), header.get("_stamp"), header.get("_sent")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
        raise WireError(WRONG_TYPE, "'_seq' must be an integer")
    for key, value in (("_stamp", stamp), ("_sent", sent)):
        if value is not None and not (_is_number(value) and math.isfinite(value)):
            raise WireError(WRONG_TYPE, f"{key!r} must be a finite number")
    for name, jpeg in zip(cams, frames[1:]):
        if len(jpeg) == 0:
            raise WireError(EMPTY_FRAME, f"camera {name!r} sent an empty frame")
    jpegs = [np.frombuffer(j, dtype=np.uint8) for j in frames[1:]]
    # cv2.imdecode releases the GIL, so a pool decodes the cameras in parallel (lower observation age).
    decoded = list(pool.map(_imdecode, jpegs)) if pool is not None and len(jpegs) > 1 else map(_imdecode, jpegs)
    images = {}
    for name, jpeg, img in zip(cams, frames[1:], decoded):
        if img is None or img.ndim != 3 or img.shape[2] != 3:
            raise WireError(BAD_JPEG, f"camera {name!r}: frame of {len(jpeg)} bytes is not a decodable JPEG")
        images[name] = img
    known = ("_cams", "_seq", "_stamp", "_sent")
    extras = {k: v for k, v in header.items() if k.startswith("_") and k not in known}
    return Observation(
        state=state,
        images=images,
        seq=seq,
        stamp=float(stamp) if stamp is not None else None,
        sent=float(sent) if sent is not None else None,
        recv_time=time.time() if recv_time is None else recv_time,
        extras=extras,
    )


def encode_command(action: Mapping[str, float] | None = None, request: Mapping[str, Any] | None = None) -> bytes:
    """Float-only JSON, as the stock client sends (torch/numpy scalars become plain floats)."""
    msg: dict[str, Any] = {}
    if action is not None:
        msg.update({k: float(action[k]) for k in STATE_KEYS})
    if request is not None:
        msg["_request"] = dict(request)
    return json.dumps(msg).encode()


def decode_command(raw: bytes | list[bytes], max_bytes: int = 64 * 1024) -> tuple[dict[str, float] | None, dict | None]:
    """-> (action or None, request or None). An action must carry all 9 keys as finite numbers: a
    command is applied whole or not at all. Unknown non-`_` keys are rejected (likely a typo)."""
    if isinstance(raw, list):  # as received by recv_multipart: a command is exactly one frame
        if len(raw) != 1:
            raise WireError(FRAME_COUNT, f"a command is one frame, got {len(raw)}")
        raw = raw[0]
    if len(raw) > max_bytes:
        raise WireError(OVERSIZED, f"command is {len(raw)} bytes, over the {max_bytes}-byte limit")
    if not raw:
        raise WireError(EMPTY_FRAME, "empty command")
    obj = _parse_json_object(raw, "command")
    request = obj.get("_request")
    if request is not None and not isinstance(request, dict):
        raise WireError(WRONG_TYPE, "'_request' must be a JSON object")
    plain = [k for k in obj if not k.startswith("_")]
    unknown = [k for k in plain if k not in STATE_KEYS]
    if unknown:
        raise WireError(UNKNOWN_KEY, f"command has unknown keys {unknown}; valid keys are {list(STATE_KEYS)}")
    if not plain:
        if request is None:
            raise WireError(MISSING_KEY, f"command has none of {list(STATE_KEYS)}")
        return None, request
    values = _read_state(obj, "command")
    return {k: float(v) for k, v in zip(STATE_KEYS, values)}, request
