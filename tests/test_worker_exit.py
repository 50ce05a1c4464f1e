"""The inference thread ends with its loop: a process that exits while a chunk is still being computed
must exit cleanly, not abort in torch's native threads ("terminate called without an active exception",
seen after real-time runs against a remote host)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import time, torch
    from lekiwi_drift.control.worker import InferenceWorker

    class BusyRuntime:  # real torch work standing in for a policy: the thread is inside torch at exit
        def infer(self, obs, t_obs):  # about 2 s of torch work, however fast the machine is
            a, end = torch.randn(600, 600), time.monotonic() + 2.0
            while time.monotonic() < end:
                a = (a @ a).tanh()
            return a

    torch.set_num_threads(2)
    worker = InferenceWorker(BusyRuntime())
    worker.submit("episode", None, 0.0)
    time.sleep(0.3)  # the chunk is in flight now
    print("busy at close:", worker.busy, flush=True)
    print("thread ended:", worker.close(timeout_s=60), flush=True)
    """
)


def test_process_exits_cleanly_with_a_chunk_in_flight():
    for _ in range(2):  # without the join this aborted every time (5 of 5 runs)
        out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
        text = out.stdout + out.stderr
        if "busy at close: False" in text:
            # Seen once per CI run (never alone, here or in the CI checkout): the chunk had already ended by
            # close, so the case this test is about did not happen; reported, not passed.
            pytest.xfail(f"no chunk in flight at close on this machine: {text[-500:]}")
        assert "busy at close: True" in text, text
        assert "thread ended: True" in text, text
        assert out.returncode == 0 and "terminate called" not in text, text


def test_process_that_never_closes_the_worker_still_exits_cleanly():
    """A command that exits by another path (an exception before the loop's close, say) with a chunk in
    flight: the worker's exit hook waits for the chunk, so torch is not torn down under the thread."""
    script = SCRIPT.replace(
        'print("thread ended:", worker.close(timeout_s=60), flush=True)', 'print("leaving it running", flush=True)'
    )
    assert script != SCRIPT
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    if "busy at close: False" in text:
        pytest.xfail(f"no chunk in flight at exit on this machine: {text[-500:]}")
    assert "busy at close: True" in text and "leaving it running" in text, text
    assert out.returncode == 0 and "terminate called" not in text, text
