"""What watches an episode besides telemetry: the rollout MP4 and the per-tick taps.

`ControlLoop` and the sim-time episode feed one `EpisodeWatchers`: `start()` per episode, `frame()` per
tick for the video (chunk boundaries marked), `sent()` per command for the taps (record/rollout.py's
RolloutRecorder for `--record`, live_view.py for `--display-data`), `save_video()` at the end. With no
video and no taps every call returns at once, so the plain 30 Hz tick pays nothing for them.
"""

from __future__ import annotations

import logging

from lekiwi_drift.link.wire import Observation

log = logging.getLogger(__name__)


class EpisodeWatchers:
    def __init__(self, video=None, taps=()):
        self.video = video  # a RolloutVideo (control/rollout_video.py: an MP4 per episode) or None
        self.taps = tuple(taps)  # each: start() per episode, add(obs, sent) per command

    def start(self) -> None:
        if self.video is not None:
            self.video.start()
        for tap in self.taps:
            tap.start()

    def frame(self, obs: Observation, t: float, new_chunk: bool) -> None:
        """One video frame at episode time `t` (wall clock or sim time)."""
        if self.video is not None:
            self.video.add(obs, t, new_chunk=new_chunk)

    def sent(self, obs: Observation | None, action: dict[str, float]) -> None:
        """The command that went out for the tick whose observation was `obs` (None: not a policy tick)."""
        if obs is not None:
            for tap in self.taps:
                tap.add(obs, action)

    def save_video(self, episode: int, obs: Observation | None, outcome: str, title: str) -> str | None:
        """The episode's MP4, named so a folder listing reads like a results table; None when there is no
        video or it could not be written (a lost video must not lose the episode's result)."""
        if self.video is None:
            return None
        seed = obs.extras.get("_seed") if obs is not None else None
        name = f"episode{episode:03d}{'' if seed is None else f'_seed{seed}'}_{outcome}"
        try:
            path = self.video.save(name, title)
        except Exception as exc:
            log.error("rollout video not saved: %s", exc)
            return None
        return None if path is None else str(path)
