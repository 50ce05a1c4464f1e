"""LeRobot plugin: importing this registers `--env.type=lekiwi_shop` and the gymnasium id `LeKiwiShop-v0`
(lekiwi_drift.sim.lerobot_env), the simulated shop for lerobot-eval and lerobot-train.

LeRobot's scripts import it by distribution name (`register_third_party_plugins`) before they parse
`--env.type`.
"""

from lekiwi_drift.sim.lerobot_env import LeKiwiShopEnvConfig

__all__ = ["LeKiwiShopEnvConfig"]
