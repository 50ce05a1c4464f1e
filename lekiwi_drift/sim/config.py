"""Settings of the simulated LeKiwi (`SimConfig`) and the names of the shop items."""

from __future__ import annotations

from dataclasses import dataclass

# The three things on the shelf; the task asks for one of them to go into the basket.
ITEMS = ("salt_bottle", "matcha_tin", "chocolate_bar")
CAMERA_NAMES = ("front", "wrist", "top")
CLOCKS = ("realtime", "lockstep")
CONTROL_HZ = 30.0  # one action per 1/30 s, as on the real LeKiwi


@dataclass
class SimConfig:
    item: str = "salt_bottle"  # the requested item (what `_success` checks)
    seed: int = 0  # scene randomisation: robot start pose, item and basket positions
    scene: int | None = None  # a fixed layout (its seed) that `seed` only jitters; None: `seed` draws the layout
    clock: str = "realtime"  # "realtime": physics follows wall time; "lockstep": 1/30 s per send_action
    width: int = 640
    height: int = 480
    camera_names: tuple[str, ...] = CAMERA_NAMES
    render: bool = True  # False: get_observation returns no images (fast expert evaluation)
    camera_fps: float = 30.0  # real-time clock: render at most this often (the real cameras' 30 fps); 0 = no cap
    timestep: float = 0.002  # requested physics step; rounded so a control period is a whole number of steps
    realtime_factor: float = 1.0  # real-time clock only: sim seconds per wall second

    def __post_init__(self) -> None:
        if self.item not in ITEMS:
            raise ValueError(f"unknown sim item {self.item!r}; choose one of {', '.join(ITEMS)}")
        if self.clock not in CLOCKS:
            raise ValueError(f"unknown sim clock {self.clock!r}; choose 'realtime' or 'lockstep'")
        unknown = [c for c in self.camera_names if c not in CAMERA_NAMES]
        if unknown:
            raise ValueError(f"unknown sim camera(s) {unknown}; the sim has {', '.join(CAMERA_NAMES)}")
        if self.width < 16 or self.height < 16:
            raise ValueError(f"sim camera size {self.width}x{self.height} is too small (16x16 at least)")
        if not 1e-4 <= self.timestep <= 0.01:
            raise ValueError(f"sim timestep {self.timestep} s is out of range (1e-4 .. 0.01 s)")
        self.camera_names = tuple(self.camera_names)

    @property
    def substeps(self) -> int:
        """Physics steps per control period (1/30 s)."""
        return max(1, round(1.0 / CONTROL_HZ / self.timestep))

    @property
    def physics_dt(self) -> float:
        """The physics step actually used: exactly 1/30 s divided by `substeps`."""
        return 1.0 / CONTROL_HZ / self.substeps
