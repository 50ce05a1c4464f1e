import numpy as np
import pytest

from lekiwi_drift.link import wire
from lekiwi_drift.robots.features import STATE_KEYS
from tests.malformed import GOOD_STATE, bad_commands, bad_observations, observation


def test_observation_round_trip_keeps_rgb_array_and_extras():
    img = np.zeros((48, 64, 3), np.uint8)
    img[..., 0] = 220  # a red image must come back red (stock BGR-agnostic round trip)
    frames = wire.encode_observation(
        GOOD_STATE, {"front": wire.encode_jpeg(img)}, {"_seq": 7, "_stamp": 123.5, "_success": True}
    )
    obs = wire.decode_observation(frames, ["front"])
    assert obs.seq == 7 and obs.stamp == 123.5 and obs.extras["_success"] is True
    assert obs.images["front"].shape == (48, 64, 3)
    assert abs(int(obs.images["front"][..., 0].mean()) - 220) <= 3 and obs.images["front"][..., 2].mean() < 5
    assert obs.state.shape == (9,) and obs.state_dict() == GOOD_STATE


def test_age_falls_back_to_receive_time_without_stamp():
    obs = wire.decode_observation(observation(extras={}), recv_time=100.0)
    assert obs.stamp is None and obs.age_s(now=100.25) == pytest.approx(0.25)


@pytest.mark.parametrize("kind, frames", bad_observations(max_bytes=4096))
def test_bad_observation_raises_wire_error_of_its_kind(kind, frames):
    with pytest.raises(wire.WireError) as err:
        wire.decode_observation(frames, ["front", "wrist", "top"], max_bytes=4096)
    assert err.value.kind == kind


@pytest.mark.parametrize("kind, raw", bad_commands(max_bytes=2048))
def test_bad_command_raises_wire_error_of_its_kind(kind, raw):
    with pytest.raises(wire.WireError) as err:
        wire.decode_command(raw, max_bytes=2048)
    assert err.value.kind == kind


def test_command_is_float_only_json_and_round_trips():
    import torch

    action = {k: torch.tensor(float(i)) for i, k in enumerate(STATE_KEYS)}
    raw = wire.encode_command(action, request={"op": "reset"})
    decoded, request = wire.decode_command(raw)
    assert decoded == {k: float(i) for i, k in enumerate(STATE_KEYS)}
    assert request == {"op": "reset"}
    assert wire.decode_command(wire.encode_command(request={"op": "reset"})) == (None, {"op": "reset"})
