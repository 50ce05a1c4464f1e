"""Importing MuJoCo with a clear message when its OpenGL backend is missing.

With MUJOCO_GL set, `import mujoco` loads that OpenGL backend at once, and a missing library (no
libEGL on a headless box, say) surfaces as a bare AttributeError deep inside PyOpenGL. Every sim module
imports MuJoCo through `import_mujoco()` so the user sees what to install instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

GL_HELP = (
    "the simulator could not set up OpenGL for its cameras ({error}). On a headless machine set "
    "MUJOCO_GL=egl (before Python starts) and install Mesa's EGL driver, e.g. "
    "`sudo apt-get install libegl1 libgl1-mesa-dri` (Debian/Ubuntu) or `mesa-libEGL` (Fedora); with a "
    "display, MUJOCO_GL=glfw also works. MUJOCO_GL is now {backend!r}."
)


class SimGLError(RuntimeError):
    """No usable OpenGL for MuJoCo."""


def gl_error(error: str) -> SimGLError:
    return SimGLError(GL_HELP.format(error=error, backend=os.environ.get("MUJOCO_GL", "")))


def import_mujoco():
    if importlib.util.find_spec("mujoco") is None:
        raise ImportError("the simulator needs MuJoCo: `pip install mujoco` (it is a lekiwi-drift dependency)")
    try:
        return importlib.import_module("mujoco")
    except (ImportError, AttributeError, RuntimeError, OSError) as exc:
        raise gl_error(f"importing mujoco failed: {type(exc).__name__}: {exc}") from exc
