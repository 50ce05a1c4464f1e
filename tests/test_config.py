import pytest
import yaml

from lekiwi_drift.config.robot import ConfigError, load_config


def write(tmp_path, data):
    path = tmp_path / "lekiwi.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_packaged_example_loads_with_three_cameras():
    cfg = load_config(None)
    assert cfg.camera_names == ["front", "wrist", "top"]
    assert cfg.host.port_cmd == 5555 and cfg.host.port_obs == 5556
    assert [c.rotation for c in cfg.cameras] == [0, 180, 0]


@pytest.mark.parametrize(
    "data, words",
    [
        ({"hots": {}}, ["unknown field", "hots", "host"]),
        ({"host": {"port_cmd": "5555"}}, ["host.port_cmd", "expected int"]),
        ({"host": {"port_cmd": 70000}}, ["host.port_cmd", "1-65535"]),
        ({"host": {"port_cmd": 6000, "port_obs": 6000}}, ["both 6000"]),
        ({"cameras": [{"name": "front", "rotation": 45}]}, ["cameras[0].rotation", "45"]),
        ({"cameras": [{"name": "front"}, {"name": "front"}]}, ["duplicate camera names"]),
        ({"cameras": [{"name": "front", "fourcc": "MJPEG"}]}, ["fourcc", "four characters"]),
        ({"keys": {"client_secret": "a"}}, ["host_public", "together"]),
        ({"host": {"release_on_exit": "yes"}}, ["host.release_on_exit", "expected bool"]),
        ({"host": {"loop_hz": True}}, ["host.loop_hz", "boolean"]),
    ],
)
def test_wrong_field_names_itself(tmp_path, data, words):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, data))
    for word in words:
        assert word in str(err.value)


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*--config"):
        load_config(tmp_path / "nope.yaml")


def test_bad_yaml(tmp_path):
    path = tmp_path / "lekiwi.yaml"
    path.write_text("host: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
