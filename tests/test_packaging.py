"""jssl installs as a wheel and works outside the repository, recipes included."""

import os
import pathlib
import subprocess
import sys
import sysconfig
import tomllib

import pytest
from conftest import REPO

from jssl import config as config_lib
from jssl.errors import MissingError


def test_the_wheel_lists_every_package_and_ships_the_recipes():
  setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
  packages = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "jssl").rglob("__init__.py")}
  assert packages <= set(setuptools["packages"]), "a package the wheel would leave out"
  assert setuptools["package-dir"] == {"jssl.configs": "configs"} and "jssl.configs" in setuptools["packages"]


def test_shipped_recipes_load_by_name_from_any_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert config_lib.load_config("smoke").task == "simclr"
  assert config_lib.load_config("pretext_cpu.py:mae").task == "mae"
  assert config_lib.load_config("configs/reconstruction_cpu.py:inpainting").task == "inpainting"
  (tmp_path / "smoke.py").write_text((REPO / "configs" / "smoke.py").read_text().replace('"simclr"', '"rotation"'))
  if config_lib.load_config("smoke.py").task != "rotation":
    pytest.fail("a file in the working directory comes before the shipped recipe of that name")
  with pytest.raises(MissingError, match="recipes jssl ships, by name.*pretext_cpu.*smoke"):
    config_lib.load_config("no_such_recipe")
  with pytest.raises(MissingError):
    config_lib.load_config("elsewhere/smoke.py")  # a path that names a folder is taken as given


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_virtualenv_and_pretrains(tmp_path):
  """Builds the wheel, installs it (no deps) into a new virtualenv that borrows the
  dependencies of the running one (no downloads), then runs `jssl --help` and a smoke
  pretraining from a directory outside the repository."""
  wheels = tmp_path / "wheels"
  build = [
    sys.executable,
    "-m",
    "pip",
    "wheel",
    "-q",
    "--no-deps",
    "--no-build-isolation",
    "-w",
    str(wheels),
    str(REPO),
  ]
  subprocess.run(build, check=True, capture_output=True)
  (wheel,) = wheels.glob("jssl-*.whl")
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
  python = venv / "bin" / "python"
  site = subprocess.run(
    [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
    check=True,
    capture_output=True,
    text=True,
  ).stdout.strip()
  # Dependencies from the running environment: a plain path line, so the repository's own
  # editable-install hook there (a .pth of that directory) is not run.
  (pathlib.Path(site) / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
  subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
  outside = tmp_path / "elsewhere"
  outside.mkdir()
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}

  def run(*args):
    return subprocess.run(args, cwd=outside, env=env, capture_output=True, text=True, timeout=600)

  where = run(str(python), "-c", "import jssl; print(jssl.__file__)")
  assert where.returncode == 0 and where.stdout.startswith(str(venv)), where
  helped = run(str(venv / "bin" / "jssl"), "--help")
  assert helped.returncode == 0 and "pretrain" in helped.stdout
  trained = run(
    str(venv / "bin" / "jssl"), "pretrain", "--config", "smoke", "--workdir", "run", "--config.train.steps=2"
  )
  assert trained.returncode == 0, trained.stderr[-3000:]
  assert (outside / "run" / "metrics.jsonl").read_text().count("\n") == 2
