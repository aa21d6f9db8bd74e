"""Each benchmark's --smoke mode runs and prints the JSON it promises."""

import json
import subprocess
import sys

from conftest import REPO


def _last_json(script, *args):
  result = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True,
                          text=True, timeout=300, cwd=REPO)
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
