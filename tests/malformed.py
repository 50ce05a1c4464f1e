"""The malformed messages the fault tests throw at both sockets, each with the kind it must be counted as."""

from __future__ import annotations

import json

import numpy as np

from lekiwi_drift.link import wire
from lekiwi_drift.robots.features import STATE_KEYS

GOOD_STATE = {k: 1.0 for k in STATE_KEYS}


def jpeg(h=24, w=32) -> bytes:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = 200
    return wire.encode_jpeg(img)


def observation(state=None, cams=("front", "wrist", "top"), extras=None) -> list[bytes]:
    return wire.encode_observation(state or GOOD_STATE, {c: jpeg() for c in cams}, extras or {"_seq": 1})


def _header(**changes) -> bytes:
    h = {"_cams": ["front", "wrist", "top"], **GOOD_STATE, **changes}
    return json.dumps(h).encode()


def bad_observations(max_bytes: int) -> list[tuple[str, list[bytes]]]:
    j = jpeg()
    no_key = dict(GOOD_STATE)
    del no_key["x.vel"]
    return [
        (wire.BAD_JSON, [b'{"_cams": ["front",', j, j, j]),
        (wire.NOT_UTF8, [b"\xff\xfe\x00garbage", j, j, j]),
        (wire.FRAME_COUNT, [_header(), j, j]),
        (wire.BAD_JPEG, [_header(), j, j[: len(j) // 3], j]),  # truncated JPEG
        (wire.EMPTY_FRAME, [_header(), j, b"", j]),
        (wire.NON_FINITE, [_header(**{"arm_elbow_flex.pos": float("nan")}), j, j, j]),
        (wire.NON_FINITE, [_header(**{"x.vel": float("inf")}), j, j, j]),
        (wire.MISSING_KEY, [json.dumps({"_cams": ["front", "wrist", "top"], **no_key}).encode(), j, j, j]),
        (wire.WRONG_TYPE, [_header(**{"arm_gripper.pos": "open"}), j, j, j]),
        (wire.WRONG_TYPE, [_header(_cams="front"), j, j, j]),
        (wire.UNKNOWN_CAMERA, [_header(_cams=["front", "wrist", "belly"]), j, j, j]),
        (wire.OVERSIZED, [_header(), j, j, b"\xff\xd8" + b"\0" * max_bytes]),
        (wire.BAD_JPEG, [_header(), j, b"not a jpeg at all", j]),
    ]


def bad_commands(max_bytes: int) -> list[tuple[str, bytes | list[bytes]]]:
    no_key = dict(GOOD_STATE)
    del no_key["theta.vel"]
    return [
        (wire.BAD_JSON, b'{"x.vel": 0.1,'),
        (wire.NOT_UTF8, b"\xff\xfe\xfd"),
        (wire.WRONG_TYPE, b"[1, 2, 3]"),
        (wire.MISSING_KEY, json.dumps(no_key).encode()),
        (wire.NON_FINITE, json.dumps({**GOOD_STATE, "x.vel": float("nan")}).encode()),
        (wire.NON_FINITE, json.dumps({**GOOD_STATE, "arm_wrist_roll.pos": float("-inf")}).encode()),
        (wire.WRONG_TYPE, json.dumps({**GOOD_STATE, "y.vel": "fast"}).encode()),
        (wire.WRONG_TYPE, json.dumps({**GOOD_STATE, "arm_gripper.pos": True}).encode()),
        (wire.UNKNOWN_KEY, json.dumps({**GOOD_STATE, "arm_elbow.pos": 3.0}).encode()),
        (wire.OVERSIZED, json.dumps({**GOOD_STATE, "_pad": "x" * max_bytes}).encode()),
        (wire.MISSING_KEY, b"{}"),
        (wire.WRONG_TYPE, json.dumps({"_request": "reset"}).encode()),
        (wire.EMPTY_FRAME, b""),
        (wire.FRAME_COUNT, [json.dumps(GOOD_STATE).encode(), b"extra frame"]),
    ]
