"""The simulated LeKiwi (MuJoCo): the project's embedded default robot.

`SimLeKiwi` (robot.py) follows the host's robot protocol; `SimConfig` (config.py) sets it up;
`ScriptedExpert` (expert.py) solves the task from privileged state. Submodules import MuJoCo, this
package file does not, so `lekiwi_drift.sim.config` stays cheap to import.
"""

from __future__ import annotations

import logging
import os

# MuJoCo picks its OpenGL backend when it is first imported. Without a display the only backend that
# works is EGL, so default to it here (an explicit MUJOCO_GL always wins).
if not os.environ.get("MUJOCO_GL") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ["MUJOCO_GL"] = "egl"
# PyOpenGL (pulled in by MuJoCo's EGL backend) logs at INFO that an optional speed-up is missing.
logging.getLogger("OpenGL.acceleratesupport").setLevel(logging.WARNING)

_EXPORTS = {
    "SimConfig": "lekiwi_drift.sim.config",
    "ITEMS": "lekiwi_drift.sim.config",
    "SimLeKiwi": "lekiwi_drift.sim.robot",
    "ScriptedExpert": "lekiwi_drift.sim.expert",
    "SimGLError": "lekiwi_drift.sim.gl",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lekiwi_drift.sim' has no attribute {name!r}")


__all__ = list(_EXPORTS)
