"""Each benchmark's --smoke mode runs and prints the JSON it promises."""

import json
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow  # the benchmark scripts' smoke runs: make test-all


def _last_json(script, *args):
  result = subprocess.run(
    [sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True, text=True, timeout=300, cwd=REPO
  )
  assert result.returncode == 0, result.stderr[-2000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_loss_memory_smoke():
  summary = _last_json("loss_memory.py", "--smoke")
  assert summary["batch_growth"] == 2
  assert summary["chunked_memory_growth"] < summary["dense_memory_growth"]
  assert summary["backend"] == "cpu"


def test_compile_check_reports_memory_for_a_topology(capsys):
  from jssl import cli  # noqa: PLC0415
  from jssl.compile_check import devices_for_topology  # noqa: PLC0415

  assert devices_for_topology("v4-64") == 32 and devices_for_topology("v5e-16") == 16
  assert cli.main(["compile-check", "--config", str(REPO / "configs" / "smoke.py"), "--topology", "v3-8"]) == 0
  report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert report["devices"] == 8 and report["per_device_batch"] == 4
  assert report["temp_mib"] > 0 and report["argument_mib"] > 0
  assert "forced CPU devices" in report["compiled_for"]


def test_compile_check_rejects_unknown_topology(capsys):
  from jssl import cli  # noqa: PLC0415

  assert cli.main(["compile-check", "--config", str(REPO / "configs" / "smoke.py"), "--topology", "v9x-3"]) == 2
  assert "Unknown TPU topology" in capsys.readouterr().err


def test_step_throughput_smoke():
  # Two forced devices and augmentation inside the step: the least-trodden path, in one run.
  result = _last_json("step_throughput.py", "--smoke", "--devices", "2", "--augment-on", "device")
  for key in (
    "images_per_s",
    "step_s",
    "model_flops_per_step",
    "peak_flops",
    "mfu",
    "devices",
    "backend",
    "jax_version",
  ):
    assert key in result, key
  assert 0 < result["mfu"] <= 1 and 0 < result["mfu_cost_analysis"] <= 1
  assert result["backend"] == "cpu" and result["devices"] == 2 and result["augment_on"] == "device"
  # The compiled step's FLOPs and the analytic 3x-forward count describe the same step.
  ratio = result["model_flops_per_step"] / result["analytic_flops_per_step"]
  assert 0.5 < ratio < 2.0 and result["flop_counts_disagree"] == (abs(ratio - 1) > 0.1)
  assert result["images_per_s"] > 0 and result["step_s"] > 0


def test_input_pipeline_smoke():
  summary = _last_json("input_pipeline.py", "--smoke")["summary"]
  assert {(r["image_size"], r["augment_on"]) for r in summary} == {
    (16, "host"),
    (16, "device"),
    (48, "host"),
    (48, "device"),
  }
  assert any(r["source"].startswith("image_folder:") for r in summary), "JPEG decoding measured"
  for r in summary:
    assert r["host_images_per_s"] > 0 and r["cores"] >= 1
    assert (r["augment_on"] == "device") == ("device_augment_images_per_s" in r)


def test_profile_step_smoke():
  result = _last_json("profile_step.py", "--smoke")
  kinds = result["by_kind"]
  assert kinds["convolution forward"] > 0 and kinds["convolution input gradient"] > 0
  assert kinds.get("matmul backward", 0) > 0, "CPU kernel gradients are GEMMs"
