"""Every test sees 8 CPU devices, so sharded code paths run in the whole suite."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def smoke_config():
  from jssl.config import load_config  # noqa: PLC0415
  return load_config(REPO / "configs" / "smoke.py")
