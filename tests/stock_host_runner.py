"""Run LeRobot 0.6.1's own LeKiwi host loop (`lekiwi_host.main`) over our fake robot.

Only the hardware is replaced: the host module builds `LeKiwi(cfg.robot)`, which would open a serial bus
and USB cameras, so the test swaps in a fake with the same interface. Everything else — sockets, the loop,
JPEG encoding, the watchdog — is LeRobot's code. Usage: python stock_host_runner.py PORT_CMD PORT_OBS SECONDS
"""

import sys

from lerobot.robots.lekiwi import lekiwi_host

from lekiwi_drift.robots.fake import FakeLeKiwi, FakeRobotConfig


class FakeHardwareLeKiwi(FakeLeKiwi):
    def __init__(self, config):  # receives LeRobot's LeKiwiConfig; keep its camera names
        super().__init__(FakeRobotConfig(camera_names=tuple(config.cameras), width=160, height=120))


if __name__ == "__main__":
    port_cmd, port_obs, seconds = sys.argv[1:4]
    lekiwi_host.LeKiwi = FakeHardwareLeKiwi
    sys.argv = [
        sys.argv[0],
        f"--host.port_zmq_cmd={port_cmd}",
        f"--host.port_zmq_observations={port_obs}",
        f"--host.connection_time_s={seconds}",
    ]
    print("stock host starting", flush=True)
    lekiwi_host.main()
