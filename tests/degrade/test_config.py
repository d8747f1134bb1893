"""Tests for `DegradationConfig`."""

import dataclasses

import pytest

from catface_keras.degrade import DegradationConfig


def test_defaults_follow_the_paper():
    config = DegradationConfig()
    assert config.turbulence_fraction == 0.5
    assert config.d_over_r0_range == (0.25, 2.0)
    assert config.low_resolution_size_range == (14.0, 56.0)


def test_dict_round_trip_and_lists_become_tuples():
    config = DegradationConfig(jpeg_quality_range=[20, 40], turbulence_fraction=0.25)
    assert config.jpeg_quality_range == (20.0, 40.0)
    values = config.to_dict()
    assert values["jpeg_quality_range"] == [20.0, 40.0]
    assert DegradationConfig.from_dict(values) == config


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DegradationConfig().turbulence_fraction = 0.1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"turbulence_fraction": 1.5}, "Received: turbulence_fraction=1.5"),
        ({"noise_probability": -0.1}, "Received: noise_probability=-0.1"),
        ({"jpeg_probability": "high"}, "Received: jpeg_probability='high'"),
        ({"tilt_correlation": 0.0}, "Received: tilt_correlation=0.0"),
        ({"diffraction_pixels": 100.0}, "Received: diffraction_pixels=100.0"),
        ({"d_over_r0_range": (2.0, 1.0)}, "Received: d_over_r0_range=\\(2.0, 1.0\\)"),
        ({"d_over_r0_range": (0.25,)}, "must be a pair"),
        ({"jpeg_quality_range": (0, 50)}, "Received: jpeg_quality_range=\\(0, 50\\)"),
        ({"low_resolution_size_range": (14, float("nan"))}, "must hold two numbers"),
        ({"exposure_stops_range": (-7, 1)}, "Received: exposure_stops_range"),
        ({"jit_compile": 1}, "Received: jit_compile=1"),
    ],
)
def test_invalid_values_are_rejected_with_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DegradationConfig(**kwargs)


def test_unknown_keys_are_rejected():
    with pytest.raises(ValueError, match="Unknown DegradationConfig fields: \\['blur'\\]"):
        DegradationConfig.from_dict({"blur": 1.0})
