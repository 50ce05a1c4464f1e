"""A video encode must not leave our threads real-time (record/thread_policy.py).

SVT-AV1 (LeRobot's default codec, libsvtav1) switches the thread that opens an encoder to SCHED_FIFO 99
when the process runs as root. The recorder's thread (the teleop loop) and every process it starts
afterwards would then run real-time; in the test suite that made the `trials` children of
tests/test_trials_e2e.py real-time, and two of their busy threads starved the machine (the hang of
issue 12). Root is needed to see the effect at all: elsewhere the encoder cannot raise a thread.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from lekiwi_drift.record.thread_policy import describe, keep_thread_scheduling, thread_scheduling

av = pytest.importorskip("av")

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="only a root process lets SVT-AV1 make a thread real-time, so there is nothing to undo",
)


def _encode_av1(path) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libsvtav1", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _in_a_thread(fn) -> tuple:
    """Run fn in a fresh thread (so the test process's own thread is never touched) and return that
    thread's scheduling before and after."""
    seen = {}

    def run():
        seen["before"] = thread_scheduling()
        fn()
        seen["after"] = thread_scheduling()

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    return seen["before"], seen["after"]


@needs_root
def test_keep_thread_scheduling_undoes_what_svt_av1_does(tmp_path):
    try:
        av.codec.Codec("libsvtav1", "w")
    except Exception:  # noqa: BLE001 - this FFmpeg build has no SVT-AV1: LeRobot would not use it either
        pytest.skip("this PyAV has no libsvtav1 encoder")
    before, after = _in_a_thread(lambda: _encode_av1(tmp_path / "raw.mp4"))
    if after == before:
        pytest.skip(f"this SVT-AV1 leaves the thread at {describe(after)}: nothing to undo")
    assert after[0] == os.SCHED_FIFO, describe(after)  # what the guard exists for

    def guarded():
        with keep_thread_scheduling():
            _encode_av1(tmp_path / "guarded.mp4")

    before, after = _in_a_thread(guarded)
    assert after == before, f"{describe(before)} became {describe(after)}"


@needs_root
def test_a_user_chosen_real_time_policy_is_kept():
    """Only what the block changed is undone: a loop started with `chrt -r 10` stays there."""

    def chosen():
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))
        with keep_thread_scheduling():
            pass
        assert thread_scheduling() == (os.SCHED_RR, 10)

    _in_a_thread(chosen)


def test_saving_an_episode_leaves_the_recording_thread_as_it_was(tmp_path):
    """The recorder saves from the thread that runs the teleop loop: after a save (LeRobot encodes the
    episode's video with libsvtav1 there) that thread must be scheduled as before."""
    from lekiwi_drift.record.recorder import EpisodeRecorder, RecorderConfig

    def record():
        rng = np.random.default_rng(0)
        rec = EpisodeRecorder(RecorderConfig(root=tmp_path / "ds", task="t"), {"front": (48, 64)}).open()
        try:
            for _ in range(5):
                rec.add(rng.standard_normal(9), {"front": rng.integers(0, 255, (48, 64, 3), np.uint8)}, np.zeros(9))
            assert rec.save_episode() == 5
        finally:
            rec.close()

    before, after = _in_a_thread(record)
    assert after == before, f"{describe(before)} became {describe(after)}"
    assert list((tmp_path / "ds" / "videos").rglob("*.mp4"))  # the episode's video was encoded


@needs_root
def test_streaming_encoding_as_root_is_warned_about(tmp_path, caplog):
    """LeRobot's streaming encoder threads become real-time inside LeRobot, out of our reach: say so."""
    from lekiwi_drift.record.recorder import EpisodeRecorder, RecorderConfig

    config = RecorderConfig(root=tmp_path / "ds", task="t", streaming_encoding=True)
    with caplog.at_level("WARNING", logger="lekiwi_drift.record.recorder"):
        EpisodeRecorder(config, {"front": (48, 64)}).open().close()
    assert "SCHED_FIFO 99" in caplog.text and "--streaming-encoding" in caplog.text
