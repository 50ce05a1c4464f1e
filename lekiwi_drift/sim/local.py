"""Serve a simulated LeKiwi from inside this process, for commands run with `--sim` and no host.

    handle = start_local_sim_host(cfg, item="salt_bottle", seed=0, clock="lockstep", size="96x72",
                                  expert=True)
    link = RobotLink(handle.config)   # handle.config points at the local host
    ...
    handle.stop()                     # stops the host thread, then the sim

The host is the real `RobotHost` over the real wire (ZMQ on 127.0.0.1, two free ports), so a command
run against it takes exactly the path it takes against the robot. `cfg` itself is not modified.
This API is shared by teleop and the control loop: keep its signature stable.
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass, field

from lekiwi_drift.config.robot import RobotConfig
from lekiwi_drift.link.ports import free_loopback_ports

log = logging.getLogger(__name__)


@dataclass
class LocalSimHost:
    """A running in-process sim host. `config`: a copy of the caller's config whose `host` section
    points at it (address/bind 127.0.0.1, its ports); `robot`: the SimLeKiwi; `host`: the RobotHost."""

    config: RobotConfig
    robot: object
    host: object
    thread: threading.Thread
    _closed: bool = field(default=False, repr=False)
    _disconnected: bool = field(default=False, repr=False)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop serving (the host stops the base on its way out), close the sockets, stop the sim.
        Safe to call twice."""
        self.host.stop()
        self.thread.join(timeout=timeout_s)
        if self.thread.is_alive():
            # The host is inside a capture that waits for a frame (a loaded machine): stopping the sim's
            # cameras ends that wait, so the host sees its stop flag, and no GL context outlives us.
            self._disconnect()
            self.thread.join(timeout=timeout_s)
        if self.thread.is_alive():
            log.warning("the local sim host did not stop within %.1f s", 2 * timeout_s)
            return
        if not self._closed:
            self._closed = True
            self.host.close()
        self._disconnect()

    def _disconnect(self) -> None:
        if not self._disconnected:
            self._disconnected = True
            self.robot.disconnect()

    def __enter__(self) -> LocalSimHost:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_local_sim_host(
    cfg: RobotConfig,
    item: str = "salt_bottle",
    seed: int = 0,
    clock: str = "realtime",
    size: str | tuple[int, int] | None = "320x240",
    expert: bool = False,
    scene: int | None = None,
) -> LocalSimHost:
    """Start a sim host thread on 127.0.0.1 (free ports). `clock`: "realtime" or "lockstep";
    `size`: sim camera "WxH" (None: the config's); `expert`: publish the scripted expert's action as
    header key `_expert`; `scene`: a fixed layout that `seed` jitters (sim/scene.py). Raises ConfigError
    for a bad item/clock/size, SimGLError without OpenGL."""
    from lekiwi_drift.link.host import RobotHost
    from lekiwi_drift.sim.serve import build_sim_robot

    local = copy.deepcopy(cfg)
    local.host.address = local.host.bind = "127.0.0.1"
    local.host.port_cmd, local.host.port_obs = free_loopback_ports(2)
    # A local host needs no keys: it listens on loopback only and the client in this process has none.
    local.keys = type(cfg.keys)()
    robot = build_sim_robot(local, item=item, seed=seed, clock=clock, size=size, expert=expert, scene=scene)
    robot.connect()
    try:
        host = RobotHost(robot, local)
    except Exception:
        robot.disconnect()
        raise
    thread = threading.Thread(target=host.run, name="local-sim-host", daemon=True)
    thread.start()
    log.info(
        "serving a simulated LeKiwi (%s, seed %d, %s clock) on 127.0.0.1:%d/%d",
        item,
        seed,
        clock,
        local.host.port_cmd,
        local.host.port_obs,
    )
    return LocalSimHost(local, robot, host, thread)
