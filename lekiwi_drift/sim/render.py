"""Offscreen camera rendering for the sim, with a clear message when no OpenGL is available.

One `mujoco.Renderer` is shared by all cameras: `lekiwi-drift bench sim` measured it against one
renderer per camera (see docs/benchmarks.md) and the shared one was as fast while holding a single
GL context and framebuffer. A GL context belongs to the thread that made it, so a `CameraRig` must be
created and used in one thread (SimLeKiwi keeps a render thread for that).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time

import numpy as np

from lekiwi_drift.sim.gl import SimGLError, gl_error, import_mujoco

mujoco = import_mujoco()
log = logging.getLogger(__name__)
__all__ = ["CameraRig", "RenderWorker", "SimGLError", "check_gl_env"]


def check_gl_env() -> None:
    """Fail early (before MuJoCo's own cryptic error) when no OpenGL backend can work."""
    if not os.environ.get("MUJOCO_GL") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise gl_error("MUJOCO_GL is not set and there is no display")


class CameraRig:
    """Renders the named cameras of one model at one size."""

    def __init__(
        self, model: mujoco.MjModel, camera_names: tuple[str, ...], width: int, height: int, shared: bool = True
    ):
        check_gl_env()
        self.camera_names = tuple(camera_names)
        self._cam_ids = {n: model.camera(n).id for n in self.camera_names}
        try:
            if shared:
                r = mujoco.Renderer(model, height=height, width=width)
                self._renderers = {n: r for n in self.camera_names}
            else:
                self._renderers = {n: mujoco.Renderer(model, height=height, width=width) for n in self.camera_names}
        except Exception as exc:  # the GL backends raise assorted types (RuntimeError, ImportError, EGLError)
            raise gl_error(f"making the renderer failed: {type(exc).__name__}: {exc}") from exc
        self._opt = mujoco.MjvOption()
        # Hide the invisible helper site group; everything else as built.
        self._opt.sitegroup[:] = 0

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """Update and draw every camera; HxWx3 uint8 RGB frames keyed by camera name."""
        frames = {}
        for name in self.camera_names:
            r = self._renderers[name]
            r.update_scene(data, camera=self._cam_ids[name], scene_option=self._opt)
            frames[name] = r.render().copy()
        return frames

    def close(self) -> None:
        for r in {id(r): r for r in self._renderers.values()}.values():
            r.close()
        self._renderers = {}


class RenderWorker:
    """A thread that owns the cameras' GL context and renders snapshots of the sim.

    `continuous=True` (real-time clock): renders over and over, as fast as the machine allows (or at
    most `max_fps`: like a real camera, frames faster than the host's 30 Hz loop only cost CPU), and
    `latest()` serves the newest frames. `continuous=False` (lockstep): renders only on `render_now()`,
    so a frame always shows exactly the state it was asked for (deterministic images).
    `snapshot(dst)` must copy the sim's current poses into the MjData `dst` (under the sim's lock).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        camera_names: tuple[str, ...],
        width: int,
        height: int,
        snapshot,
        continuous: bool,
        max_fps: float = 0.0,
    ):
        self._model = model
        self._args = (tuple(camera_names), width, height)
        self._snapshot = snapshot
        self._continuous = continuous
        self._min_period = 1.0 / max_fps if max_fps > 0 else 0.0
        self._cond = threading.Condition()
        self._frames: dict[str, np.ndarray] | None = None
        self._frame_count = 0
        self._requested = 0
        self._error: BaseException | None = None
        self._stop = False
        self._ready = False
        self._thread = threading.Thread(target=self._run, name="sim-render", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        with self._cond:
            self._cond.wait_for(lambda: self._ready or self._error is not None, timeout)
        if self._error is not None:
            raise self._error
        if not self._ready:
            raise TimeoutError("the sim's render thread did not start (OpenGL context creation hung)")
        # A GL context still alive when the interpreter exits takes the process down inside the OpenGL
        # driver: MuJoCo's own exit hook terminates the EGL display under a thread that may be drawing
        # (a segfault or abort in most such exits here, docs/design.md "Shutting down"). So stop() also
        # runs at exit, before that hook: exit hooks run last-registered first, and MuJoCo registered
        # its hook when this thread made the first context.
        atexit.register(self.stop)

    def _run(self) -> None:
        try:
            rig = CameraRig(self._model, *self._args)
        except BaseException as exc:  # surfaced to start() in the caller's thread
            with self._cond:
                self._error = exc
                self._cond.notify_all()
            return
        snap = mujoco.MjData(self._model)
        with self._cond:
            self._ready = True
            self._cond.notify_all()
        next_due = time.monotonic()
        try:
            while True:
                if self._continuous and self._min_period:
                    delay = next_due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    next_due = max(next_due + self._min_period, time.monotonic())
                with self._cond:
                    if not self._continuous:
                        self._cond.wait_for(lambda: self._stop or self._requested > self._frame_count)
                    if self._stop:
                        return
                self._snapshot(snap)
                mujoco.mj_kinematics(self._model, snap)
                mujoco.mj_camlight(self._model, snap)
                frames = rig.render(snap)
                with self._cond:
                    self._frames = frames
                    self._frame_count += 1
                    self._cond.notify_all()
        except BaseException as exc:
            with self._cond:
                self._error = exc
                self._cond.notify_all()
        finally:
            rig.close()

    def _check(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"sim camera rendering failed: {self._error}") from self._error

    def render_now(self, timeout: float = 30.0) -> dict[str, np.ndarray]:
        """Lockstep: render the sim as it is now and return the frames."""
        with self._cond:
            self._check()
            self._requested = self._frame_count + 1
            target = self._requested
            self._cond.notify_all()
            if not self._cond.wait_for(
                lambda: self._frame_count >= target or self._error is not None or self._stop, timeout
            ):
                raise TimeoutError("sim camera rendering timed out")
            self._check()
            if self._frame_count < target:
                raise RuntimeError("sim cameras stopped")
            return self._frames

    def latest(self, timeout: float = 30.0) -> dict[str, np.ndarray]:
        """Real time: the newest frames (waits only for the very first)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._frames is not None or self._error is not None, timeout):
                raise TimeoutError("sim camera rendering timed out")
            self._check()
            return self._frames

    @property
    def frame_count(self) -> int:
        return self._frame_count

    def stop(self, timeout_s: float = 60.0) -> None:
        """End the thread, which frees the GL context in the thread that made it, and wait for it (a
        frame being drawn finishes first). Safe to call twice; also runs at interpreter exit."""
        atexit.unregister(self.stop)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout_s)
            if self._thread.is_alive():
                log.warning("the sim's render thread did not end within %.0f s (a frame still drawing)", timeout_s)
