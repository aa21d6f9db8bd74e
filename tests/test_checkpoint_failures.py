"""Checkpoints that cannot be written or read back: a save that fails ends the run at once with
one line naming the path (never a hang), and a damaged latest checkpoint is set aside on resume
and named, with the steps that remain, by eval and export."""

import logging
import pathlib
import resource
import shutil
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import REPO
from random_runs import write_random_run

from jssl import cli, train
from jssl import workdir as workdir_lib
from jssl.checkpoint import Checkpointer
from jssl.errors import CheckpointError
from jssl.export import export_encoder

SMOKE = str(REPO / "configs" / "smoke.py")


# --- saves that fail ---------------------------------------------------------------------------


def test_a_checkpoint_path_that_is_a_file_fails_at_once_naming_it(tmp_path):
  (tmp_path / "checkpoints").write_text("x")
  started = time.perf_counter()
  with pytest.raises(CheckpointError, match=f"Cannot write checkpoints to {tmp_path / 'checkpoints'}") as caught:
    Checkpointer(tmp_path)
  assert time.perf_counter() - started < 5
  assert "\n" not in str(caught.value)
  # Reading needs no write access: eval and export of a read-only workdir still open it.
  (tmp_path / "checkpoints").unlink()
  (tmp_path / "checkpoints").mkdir()
  assert Checkpointer(tmp_path, read_only=True).all_steps() == []


def _full_disk(self, step, *args, **kwargs):
  raise OSError(28, "No space left on device")


def _assert_names_the_path_and_step_1(message: str, workdir: pathlib.Path) -> None:
  assert "\n" not in message
  assert str(workdir.resolve() / "checkpoints") in message and "step 1 " in message
  assert "No space left on device" in message


def test_a_save_that_raises_says_so_in_one_line_naming_the_path(tmp_path, monkeypatch):
  monkeypatch.setattr(ocp.CheckpointManager, "save", _full_disk)
  with pytest.raises(CheckpointError) as caught:
    Checkpointer(tmp_path).save(1, {"a": np.ones(3)}, force=True)
  _assert_names_the_path_and_step_1(str(caught.value), tmp_path)


@pytest.mark.slow
def test_a_save_that_raises_ends_pretraining(smoke_config, tmp_path, monkeypatch):
  monkeypatch.setattr(ocp.CheckpointManager, "save", _full_disk)
  smoke_config.train.steps = 2
  with pytest.raises(CheckpointError) as caught:
    train.pretrain(smoke_config, tmp_path)
  _assert_names_the_path_and_step_1(str(caught.value), tmp_path)


def _big_state():
  return {"weights": np.random.default_rng(0).random(100_000).astype(np.float32)}


def test_a_save_that_fails_in_the_background_is_raised_by_the_next_step(tmp_path):
  """A write that fails after ``save`` returned (here: files capped at 64 kB, as a full disk
  would) surfaces at the next call of ``save`` once the background save has ended, not at the
  next due save (which may be thousands of steps later) nor never."""
  checkpointer = Checkpointer(tmp_path, save_every=1000)
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))  # Python ignores SIGXFSZ: writes fail with EFBIG
  try:
    assert checkpointer.save(1, _big_state(), force=True)
    deadline = time.time() + 20
    with pytest.raises(CheckpointError) as caught:
      for step in range(2, 100_000):  # steps that are not due: no save starts
        assert not checkpointer.save(step, _big_state())
        assert time.time() < deadline, "the failed save was never reported"
        time.sleep(0.01)
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
  message = str(caught.value)
  assert "\n" not in message and "step 1 " in message and str(checkpointer.directory) in message
  assert checkpointer.all_steps() == []


def test_a_failed_save_leaves_no_thread_that_keeps_the_process_alive(tmp_path):
  """Orbax threads that wait for a directory that was never created would hold the interpreter
  for its 300 s barrier timeout after the error; the process must exit at once."""
  script = textwrap.dedent(f"""
    import pathlib, shutil
    import numpy as np
    from jssl.checkpoint import Checkpointer
    from jssl.errors import CheckpointError
    workdir = pathlib.Path({str(tmp_path)!r})
    checkpointer = Checkpointer(workdir)
    shutil.rmtree(workdir / "checkpoints")
    (workdir / "checkpoints").write_text("x")  # the folder vanished after the run started
    try:
      checkpointer.save(1, {{"a": np.ones(3)}}, force=True)
      checkpointer.wait()
    except CheckpointError as error:
      print("CheckpointError:", error)
  """)
  started = time.perf_counter()
  result = subprocess.run(
    [sys.executable, "-c", script], capture_output=True, text=True, timeout=90, cwd=REPO, env=_env()
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert "CheckpointError: " in result.stdout and str(tmp_path / "checkpoints") in result.stdout
  assert time.perf_counter() - started < 60


def _env():
  import os  # noqa: PLC0415

  return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.mark.slow
def test_pretrain_with_an_unwritable_checkpoint_path_exits_non_zero_with_one_line(tmp_path):
  (tmp_path / "checkpoints").write_text("x")
  command = [sys.executable, "-m", "jssl.cli", "pretrain", "--config", SMOKE, "--workdir", str(tmp_path)]
  result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO, env=_env())
  assert result.returncode == 2, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("jssl pretrain: error: Cannot write checkpoints to ") and str(tmp_path / "checkpoints") in last
  assert "Traceback" not in result.stderr


# --- checkpoints that cannot be read -----------------------------------------------------------


def _truncate_a_data_file(step_dir: pathlib.Path) -> None:
  data = max((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
  data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])


def _garble_metadata(step_dir: pathlib.Path) -> None:
  (step_dir / "default" / "_METADATA").write_text("garbage{")


DAMAGES = {"truncated data": _truncate_a_data_file, "garbage _METADATA": _garble_metadata}


@pytest.fixture(scope="module")
def random_run(tmp_path_factory):
  """A workdir with checkpoints at steps 4 and 8, and its states."""
  from jssl.config import load_config  # noqa: PLC0415

  workdir = tmp_path_factory.mktemp("run")
  setup, states = write_random_run(load_config(SMOKE), workdir, steps=(4, 8))
  return workdir, setup, states


@pytest.fixture(params=list(DAMAGES))
def damaged(request, random_run, tmp_path):
  """A copy of ``random_run`` whose step 8 is damaged."""
  source, setup, states = random_run
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  DAMAGES[request.param](workdir / "checkpoints" / "8")
  return workdir, setup, states


def _set_aside(workdir):
  return sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.startswith("damaged-"))


def test_resume_falls_back_to_the_newest_checkpoint_that_restores(damaged, caplog):
  workdir, setup, states = damaged
  with caplog.at_level(logging.WARNING, logger="jssl"):
    state, step = workdir_lib.restore_run(setup, workdir, resume=True)
  assert step == 4 and int(state.step) == 4
  for a, b in zip(jax.tree.leaves(states[4]), jax.tree.leaves(state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Step 8 is kept, out of Orbax's sight: a resumed run writes its own step 8.
  (aside,) = _set_aside(workdir)
  assert aside.startswith("damaged-8-") and any((workdir / "checkpoints" / aside).rglob("_METADATA"))
  assert not (workdir / "checkpoints" / "8").exists()
  assert Checkpointer(workdir).all_steps() == [4]
  warning = " ".join(r.getMessage() for r in caplog.records)
  assert "step 8" in warning and aside in warning and "step 4" in warning


def _assert_names_step_8_and_lists_4(message: str) -> None:
  assert "\n" not in message
  assert "step 8" in message and "--step 4" in message


def test_export_and_eval_name_the_damaged_step_and_the_others(damaged, tmp_path, capsys):
  workdir, _, _ = damaged
  with pytest.raises(CheckpointError) as caught:
    export_encoder(workdir, tmp_path / "export")
  _assert_names_step_8_and_lists_4(str(caught.value))
  assert cli.main(["eval", "--workdir", str(workdir)]) == 2
  (line,) = capsys.readouterr().err.strip().splitlines()
  assert line.startswith("jssl eval: error: ")
  _assert_names_step_8_and_lists_4(line)
  # Nothing is moved by a reader; the step it lists restores.
  assert (workdir / "checkpoints" / "8").is_dir() and not _set_aside(workdir)
  with pytest.raises(CheckpointError, match="step 8"):
    export_encoder(workdir, tmp_path / "export", step=8)
  assert export_encoder(workdir, tmp_path / "export", step=4, overwrite=True).is_dir()


def test_when_no_checkpoint_restores_resume_moves_nothing(random_run, tmp_path):
  """A config that no longer matches the checkpoints fails every step alike: that is no damage,
  so nothing is set aside; the error names the newest step."""
  source, _, _ = random_run
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  config = workdir_lib.read_run_config(workdir)
  config.model.head_out_dim = 2 * config.model.head_out_dim
  with pytest.raises(CheckpointError, match="step 8") as caught:
    workdir_lib.restore_run(workdir_lib.run_setup(workdir, config), workdir, resume=True)
  assert "\n" not in str(caught.value) and "steps 8, 4" in str(caught.value)
  assert not _set_aside(workdir) and Checkpointer(workdir).all_steps() == [4, 8]


@pytest.mark.slow
def test_pretrain_resumes_over_a_damaged_checkpoint(smoke_config, tmp_path, caplog):
  smoke_config.train.steps = 8  # checkpoints at 4 and 8 (and 1: Orbax saves the first step it sees)
  train.pretrain(smoke_config, tmp_path)
  assert Checkpointer(tmp_path).all_steps()[-2:] == [4, 8]
  _truncate_a_data_file(tmp_path / "checkpoints" / "8")
  smoke_config.train.steps = 12
  with caplog.at_level(logging.INFO, logger="jssl"):
    state = train.pretrain(smoke_config, tmp_path)
  assert int(state.step) == 12
  messages = " ".join(r.getMessage() for r in caplog.records)
  assert "Resuming from the checkpoint at step 4" in messages and "step 8" in messages
  assert [m["step"] for m in workdir_lib.read_metrics(tmp_path)] == list(range(1, 13))
  assert len(_set_aside(tmp_path)) == 1 and Checkpointer(tmp_path).latest_step() == 12
