"""`--display-data`: watch the robot live in Rerun, through LeRobot's own integration.

`LiveView` hands each tick's observation and the command sent to LeRobot's `log_rerun_data`, so the
cameras, the 9 state values and the 9 commands appear under the same names as in `lerobot-record
--display_data=true` (`observation.front`, `observation.arm_shoulder_pan.pos`, `action.x.vel`, ...).
On top of that, from a policy run's telemetry records: `policy/chunk` (the index of each chunk, logged
when it takes over: a step in the plot marks the boundary), `policy/keystone_spread` (KeyStone's spread
of the K candidates, when the preset samples more than one), `policy/latency_ms`, `policy/boundary_jump_deg`
and a `policy/events` text log.

The time axes are `tick` (the control tick within the episode, restarted each episode) and `episode_time`
(the same in seconds, 1/30 s a tick: sim time in a sim-time run); `wall_time` is logged too.

Where it goes: by default LeRobot's `init_rerun` spawns a Rerun viewer on this machine; with an address
it streams to a viewer elsewhere (`rerun --serve-web` on a laptop while the loop runs on the robot);
`save_path` writes a `.rrd` file instead, to open later with `rerun FILE.rrd` (the tests read it back).

Logging costs the loop thread time (three camera frames a tick); a failure to log never stops the robot:
the first one is reported and the view is switched off.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

from lekiwi_drift.robots.features import STATE_KEYS

log = logging.getLogger(__name__)

SESSION_NAME = "lekiwi_drift"


class LiveViewError(RuntimeError):
    """Rerun is missing or the viewer cannot be reached."""


class LiveView:
    def __init__(
        self,
        session_name: str = SESSION_NAME,
        ip: str | None = None,
        port: int | None = None,
        save_path: str | Path | None = None,
        hz: float = 30.0,
    ):
        try:
            import rerun as rr
        except ImportError as exc:
            raise LiveViewError(
                "--display-data needs the Rerun SDK: pip install 'rerun-sdk>=0.24,<0.34' (lekiwi-drift installs it)"
            ) from exc
        # Imported here, in the caller's thread: imported from the loop thread on its first tick, LeRobot's
        # module (which pulls in `datasets`) can deadlock on the import lock with the inference thread.
        from lerobot.utils.visualization_utils import init_rerun, log_rerun_data

        self._rr, self._log_rerun_data = rr, log_rerun_data
        self.hz = hz
        # Over a network, JPEG frames: raw 640x480 cameras at 30 Hz are ~80 MB/s.
        self.compress = ip is not None
        self.enabled = True
        self._tick = 0
        if save_path is not None:
            rr.init(session_name)
            rr.save(str(save_path))
        else:
            _viewer_on_path()
            try:
                init_rerun(session_name=session_name, ip=ip, port=port)
            except Exception as exc:  # no viewer binary, no display, nothing listening at ip:port
                raise LiveViewError(
                    f"could not start or reach the Rerun viewer: {exc}. Stream to a viewer elsewhere with "
                    "--display-ip, or write a file to open later with --display-save FILE.rrd"
                ) from exc

    # -- per episode / per tick --------------------------------------------------------------------
    def start(self) -> None:
        """A new episode: the tick axis starts again at 0."""
        self._tick = 0

    def add(self, obs, sent: dict[str, float] | None = None) -> None:
        """One tick: the observation and (teleop, run) the command that went to the robot."""
        if not self.enabled:
            return
        observation = {k: float(v) for k, v in zip(STATE_KEYS, obs.state)}
        observation.update(obs.images)
        try:
            self._time()
            self._log_rerun_data(observation=observation, action=sent, compress_images=self.compress)
        except Exception as exc:  # noqa: BLE001 - the view is optional; the robot is not
            self._fail(exc)
        self._tick += 1

    def telemetry(self, record: dict) -> None:
        """A ControlLoop telemetry record (control/telemetry.py): chunks, boundary jumps, episode ends."""
        if not self.enabled:
            return
        rr, kind = self._rr, record.get("kind")
        try:
            self._time()
            if kind == "chunk":
                rr.log("policy/chunk", rr.Scalars(float(record.get("chunk") or 0)))
                _scalar(rr, "policy/latency_ms", record.get("latency_ms"))
                _scalar(rr, "policy/keystone_spread", record.get("spread"))
                spread = record.get("spread")
                tail = "" if spread is None else f", KeyStone spread {float(spread):.2f}"
                rr.log(
                    "policy/events",
                    rr.TextLog(f"chunk {record.get('chunk')} took over ({record.get('mode')}){tail}"),
                )
            elif kind == "boundary":
                _scalar(rr, "policy/boundary_jump_deg", record.get("jump_arm_deg"))
            elif kind == "episode":
                rr.log("policy/events", rr.TextLog(f"episode {record.get('episode')}: {record.get('outcome')}"))
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def _time(self) -> None:
        self._rr.set_time("tick", sequence=self._tick)
        self._rr.set_time("episode_time", duration=self._tick / self.hz)  # the tick as seconds
        self._rr.set_time("wall_time", timestamp=time.time())

    def _fail(self, exc: BaseException) -> None:
        log.error("live view (--display-data) switched off: %s", exc)
        self.enabled = False

    def close(self) -> None:
        """Flush what was logged (a `.rrd` file is complete after this)."""
        try:
            self._rr.disconnect()
        except Exception as exc:  # noqa: BLE001
            log.debug("rerun disconnect: %s", exc)


def _viewer_on_path() -> None:
    """rerun-sdk installs the viewer as `rerun` next to this Python; `.venv/bin/lekiwi-drift` run without
    the virtual environment activated would not find it on PATH, and LeRobot's `init_rerun` spawns it by
    name."""
    here = Path(sys.executable).parent
    if shutil.which("rerun") is None and (here / "rerun").is_file():
        os.environ["PATH"] = f"{here}{os.pathsep}{os.environ.get('PATH', '')}"


def _scalar(rr, path: str, value) -> None:
    if value is None:
        return
    value = float(value[0] if isinstance(value, list | tuple) else value)
    if not math.isnan(value):
        rr.log(path, rr.Scalars(value))


# -- the command-line options, the same on `run`, `teleop` and `watch` ---------------------------------
def add_display_arguments(parser) -> None:
    g = parser.add_argument_group("live view (Rerun)")
    g.add_argument(
        "--display-data",
        action="store_true",
        help="show cameras, state and commands live in a Rerun viewer (LeRobot's --display_data)",
    )
    g.add_argument("--display-ip", help="stream to a Rerun viewer at this address instead of spawning one here")
    g.add_argument("--display-port", type=int, default=9876, help="that viewer's port (default: 9876)")
    g.add_argument("--display-save", metavar="FILE.rrd", help="write the live view to this file (open: rerun FILE.rrd)")


def live_view_from_args(args, hz: float = 30.0) -> LiveView | None:
    """The LiveView the options ask for (None: none). Raises LiveViewError with what to do."""
    if not (args.display_data or args.display_save):
        return None
    if args.display_save:
        return LiveView(save_path=args.display_save, hz=hz)
    return LiveView(ip=args.display_ip, port=args.display_port if args.display_ip else None, hz=hz)
