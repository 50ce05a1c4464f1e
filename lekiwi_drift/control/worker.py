"""`InferenceWorker`: the control loop's one background inference thread.

torch releases the GIL while it computes, so the 30 Hz loop keeps ticking while a chunk is produced
here. Requests carry a tag (the episode number) so a result from an old episode is recognisable.
"""

from __future__ import annotations

import atexit
import queue
import threading
import time
import traceback
from typing import Any

from lekiwi_drift.control.runtime import PolicyRuntime
from lekiwi_drift.control.scheduler import Chunk
from lekiwi_drift.link.wire import Observation


class InferenceWorker:
    """One background thread that runs `runtime.infer`, one request at a time."""

    def __init__(self, runtime: PolicyRuntime):
        self.runtime = runtime
        self._requests: queue.Queue = queue.Queue()
        self._results: queue.Queue = queue.Queue()
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._run, name="policy-inference", daemon=True)
        self._thread.start()
        # Also at interpreter exit, whatever path a command exits by (see close()); a join that timed
        # out in close() is not retried there.
        atexit.register(self.close)

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def submit(self, tag: Any, obs: Observation, t_obs: float) -> None:
        self._busy.set()
        self._requests.put((tag, obs, t_obs))

    def poll(self) -> tuple[Any, Chunk | BaseException] | None:
        try:
            return self._results.get_nowait()
        except queue.Empty:
            return None

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self.busy

    def close(self, timeout_s: float = 30.0) -> bool:
        """Stop the thread once any chunk in flight is done, and wait for it. A daemon thread left inside
        torch when the interpreter exits aborts the process ("terminate called without an active
        exception": torch's native threads are destroyed while still joinable) after an otherwise clean
        run; real-time runs end with a chunk in flight about half the time. True when the thread ended."""
        atexit.unregister(self.close)
        self._requests.put(None)
        if self._thread is threading.current_thread():
            return False
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            item = self._requests.get()
            if item is None:
                return
            tag, obs, t_obs = item
            try:
                result: Chunk | BaseException = self.runtime.infer(obs, t_obs)
            except Exception as exc:  # handed to the loop, which stops the robot
                exc.trace = traceback.format_exc()  # type: ignore[attr-defined]
                result = exc
            self._results.put((tag, result))
            self._busy.clear()
