import pytest

from selfsup.train import ConfigError, PretrainConfig, parse_duration


@pytest.mark.parametrize("text,seconds", [("10m", 600), ("90s", 90), ("1h30m", 5400),
                                          ("1.5h", 5400), ("45", 45), (30, 30)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-5m", "0", "ten minutes", "10x"])
def test_bad_durations(text):
    with pytest.raises(ConfigError):
        parse_duration(text)


def test_unknown_method_lists_valid():
    with pytest.raises(ConfigError, match="barlow_twins.*simclr"):
        PretrainConfig(method="nope").validate()


def test_unknown_backbone_lists_valid():
    with pytest.raises(ConfigError, match="resnet18"):
        PretrainConfig(backbone="vgg").validate()


def test_unknown_keys_and_method_args():
    with pytest.raises(ConfigError, match="unknown config key"):
        PretrainConfig.from_dict({"metod": "simclr"})
    with pytest.raises(ConfigError, match="temperature"):
        PretrainConfig(method_args={"temprature": 0.1}).validate()
    with pytest.raises(ConfigError, match="crop_scale"):
        PretrainConfig(views={"crop": 0.5}).validate()


def test_batch_must_split_over_devices():
    with pytest.raises(ConfigError, match="divisible"):
        PretrainConfig(batch_size=255, devices=2).validate()
