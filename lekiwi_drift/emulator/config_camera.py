"""The `lekiwi_emu` camera type's config. It lives in `config_camera.py` because that is where LeRobot's
`make_cameras_from_configs` looks for the camera class of a third-party config: `config_camera` ->
`camera.EmulatedCamera` (the config class name without "Config")."""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.cameras.configs import CameraConfig


@CameraConfig.register_subclass("lekiwi_emu")
@dataclass
class EmulatedCameraConfig(CameraConfig):
    path: str = ""  # the frame file `lekiwi-drift sim buses` writes

    def __post_init__(self) -> None:
        if not self.path or not self.width or not self.height:
            raise ValueError("lekiwi_emu camera: path, width and height are required (use the config sim buses writes)")
