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
