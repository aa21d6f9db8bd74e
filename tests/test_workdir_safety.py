"""A workdir is never lost and never shared by accident: a resume whose state would not fit
the run's checkpoints is refused before anything is written, a resume with changed settings
keeps the configs it replaces, ``--restart`` moves the old run aside, and a workdir is held by
one run at a time (``jssl.workdir_guard``)."""

import copy
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import REPO
from random_runs import write_random_run

from jssl import cli, train, workdir_guard
from jssl import workdir as workdir_lib
from jssl.errors import ConfigError
from jssl.workdir import read_metrics

SMOKE = str(REPO / "configs" / "smoke.py")


def _files(workdir) -> dict:
  """Every file under ``workdir`` (but the lock) and its bytes."""
  return {
    str(p.relative_to(workdir)): p.read_bytes()
    for p in sorted(workdir.rglob("*"))
    if p.is_file() and p.name != workdir_guard.LOCK_FILE
  }


@pytest.fixture
def eight_step_run(smoke_config, tmp_path):
  """A finished 8-step smoke run (random weights at step 8) and its config."""
  smoke_config.train.steps = 8
  write_random_run(smoke_config, tmp_path / "run", steps=(8,))
  return tmp_path / "run", smoke_config


def test_a_resume_that_changes_the_state_is_refused_before_anything_is_written(eight_step_run):
  workdir, config = eight_step_run
  before = _files(workdir)
  wider = copy.deepcopy(config)
  wider.model.width_multiplier, wider.train.steps = 2.0, 12
  with pytest.raises(ConfigError) as refused:
    train.pretrain(wider, workdir)
  message = str(refused.value)
  assert "\n" not in message
  assert "model.width_multiplier 1.0 -> 2.0" in message and "train.steps 8 -> 12" in message
  assert "--restart" in message and "another --workdir" in message
  assert _files(workdir) == before, "the run's config.json and checkpoints are as they were"
  assert workdir_lib.read_run_config(workdir).model.width_multiplier == 1.0


def test_a_change_of_classes_or_task_is_refused(eight_step_run):
  workdir, config = eight_step_run
  # The run was trained on data with 4 classes; the data now has 10: the probe's kernel is [F, classes].
  record = workdir_lib.read_run_record(workdir)
  record["data_facts"]["num_classes"] = 4
  (workdir / "config.json").write_text(json.dumps(record))
  with pytest.raises(ConfigError, match=r"data_facts.num_classes 4 -> 10.*probe"):
    workdir_guard.check_resume(workdir, config, train.make_setup(config))
  record["data_facts"]["num_classes"] = 10
  (workdir / "config.json").write_text(json.dumps(record))
  other_task = copy.deepcopy(config)
  other_task.task = "rotation"
  with pytest.raises(ConfigError, match='task "simclr" -> "rotation"'):
    workdir_guard.check_resume(workdir, other_task, train.make_setup(other_task))
  assert workdir_guard.check_resume(workdir, config, train.make_setup(config)) == []


def test_a_resume_with_changed_settings_is_logged_and_keeps_the_old_config(eight_step_run, caplog):
  workdir, config = eight_step_run
  first = workdir_lib.read_run_record(workdir)
  changed = copy.deepcopy(config)
  changed.optim.base_lr, changed.train.log_every = 1e-3, 2
  with caplog.at_level(logging.INFO, logger="jssl"):
    state = train.pretrain(changed, workdir)  # finished at step 8: restores, trains nothing
  assert int(state.step) == 8
  expected = f"optim.base_lr {config.optim.base_lr} -> 0.001, train.log_every 1 -> 2"
  assert f"resuming with changed settings: {expected}" in caplog.text
  assert workdir_lib.read_run_config(workdir).optim.base_lr == 1e-3
  assert workdir_lib.read_config_history(workdir) == [first]
  # The same settings again: nothing changed, nothing more kept.
  train.pretrain(changed, workdir)
  assert workdir_lib.read_config_history(workdir) == [first]
  train.pretrain(config, workdir)  # back to the first settings: the second ones are kept too
  history = workdir_lib.read_config_history(workdir)
  assert len(history) == 2 and history[0] == first and history[1]["optim"]["base_lr"] == 1e-3
  assert workdir_lib.read_run_record(workdir) == first


def test_config_changes_are_named_field_by_field():
  old = {"train": {"steps": 8, "lr": 0.1}, "task": "simclr", "data_facts": {"num_examples": {"train": 256}}}
  new = {"train": {"steps": 12, "lr": 0.1, "new": [1, 2]}, "task": "simclr", "data_facts": {"num_examples": {}}}
  assert workdir_guard.config_changes(old, new) == [
    ("data_facts.num_examples.train", 256, workdir_guard.ABSENT),
    ("train.new", workdir_guard.ABSENT, [1, 2]),
    ("train.steps", 8, 12),
  ]
  assert workdir_guard.describe_changes(workdir_guard.config_changes(old, new)) == (
    "data_facts.num_examples.train 256 -> (absent), train.new (absent) -> [1, 2], train.steps 8 -> 12"
  )


def test_restart_moves_the_old_run_aside_and_deletes_nothing(eight_step_run):
  workdir, _ = eight_step_run
  before = _files(workdir)
  with workdir_guard.lock(workdir):
    moved = workdir_guard.move_aside(workdir)
  assert moved.parent == workdir / workdir_guard.PREVIOUS_DIR
  assert _files(moved) == before
  assert sorted(p.name for p in workdir.iterdir()) == sorted([workdir_guard.LOCK_FILE, workdir_guard.PREVIOUS_DIR])
  (workdir / "config.json").write_text("{}")
  again = workdir_guard.move_aside(workdir)  # within the same second: another folder
  assert again != moved and (again / "config.json").read_text() == "{}" and _files(moved) == before
  assert workdir_guard.move_aside(workdir) is None  # nothing left to move


def test_a_held_lock_refuses_a_second_run_naming_the_holder(tmp_path):
  with workdir_guard.lock(tmp_path):
    with pytest.raises(ConfigError) as refused:
      with workdir_guard.lock(tmp_path):
        pass
  message = str(refused.value)
  assert f"pid {os.getpid()} on {socket.gethostname()}" in message and "\n" not in message
  with workdir_guard.lock(tmp_path):  # released on exit
    pass


def test_the_lock_of_a_dead_process_does_not_block(tmp_path):
  # A bare flock on the lock file, as a run holds it (no jssl import: the process starts in milliseconds).
  hold = (
    "import fcntl, os, sys, time\n"
    f"fd = os.open({str(tmp_path / workdir_guard.LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
    "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(600)"
  )
  holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "held"
  with pytest.raises(ConfigError, match="is in use by another `jssl pretrain`"):
    with workdir_guard.lock(tmp_path):
      pass
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  with workdir_guard.lock(tmp_path):  # the dead process's lock died with it
    pass


def test_pretrain_on_a_workdir_in_use_is_refused_before_writing(smoke_config, tmp_path, capsys):
  with workdir_guard.lock(tmp_path):
    assert cli.main(["pretrain", "--config", SMOKE, "--workdir", str(tmp_path)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith(f"jssl pretrain: error: {tmp_path} is in use by pid {os.getpid()}")
  assert not (tmp_path / "config.json").exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
  "where, first_line",
  [
    ("file", "jssl pretrain: error: --workdir {w} is a file, not a folder"),
    ("under_file", "jssl pretrain: error: --workdir {w} is under {f}, which is a file"),
    ("proc", "jssl pretrain: error: cannot create --workdir {w}"),
  ],
)
def test_a_workdir_that_cannot_be_a_folder_is_one_line(tmp_path, capsys, where, first_line):
  file = tmp_path / "a_file"
  file.write_text("not a folder")
  workdir = {"file": file, "under_file": file / "run", "proc": "/proc/jssl-run"}[where]
  assert cli.main(["pretrain", "--config", SMOKE, "--workdir", str(workdir)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith(first_line.format(w=workdir, f=file)), err
  assert file.read_text() == "not a folder"


def _command(workdir, *overrides):
  return [sys.executable, "-m", "jssl.cli", "pretrain", "--config", SMOKE, "--workdir", str(workdir), *overrides]


@pytest.mark.slow
def test_two_pretrains_on_one_workdir_the_second_is_refused(tmp_path):
  # The first run is far from done when the second starts; once the second is refused it is
  # stopped with SIGTERM (a preemption: save and exit 0) rather than trained to the end.
  first = subprocess.Popen(
    _command(tmp_path, "--config.train.steps=100000"),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
    cwd=REPO,
  )
  deadline = time.time() + 240
  while len(read_metrics(tmp_path)) < 2:
    assert first.poll() is None and time.time() < deadline, first.stderr.read()[-3000:]
    time.sleep(0.1)
  second = subprocess.run(
    _command(tmp_path, "--config.train.steps=100000"), capture_output=True, text=True, timeout=240, cwd=REPO
  )
  assert second.returncode == 2
  last = second.stderr.strip().splitlines()[-1]
  assert last.startswith(f"jssl pretrain: error: {tmp_path} is in use by pid {first.pid} on {socket.gethostname()}")
  assert first.poll() is None, "the first run is still training"
  first.send_signal(signal.SIGTERM)
  assert first.wait(timeout=300) == 0, first.stderr.read()[-3000:]
  steps = [m["step"] for m in read_metrics(tmp_path)]
  assert steps == list(range(1, len(steps) + 1)), "one line per step, none from the refused run"
  assert len(steps) < 100000


@pytest.mark.slow
def test_resume_refusal_history_and_restart_through_the_command_line(tmp_path, capsys):
  workdir = tmp_path / "run"
  assert cli.main(["pretrain", "--config", SMOKE, "--workdir", str(workdir), "--config.train.steps=3"]) == 0
  first = workdir_lib.read_run_record(workdir)
  wider = ["--config.model.width_multiplier=2.0", "--config.train.steps=5"]
  capsys.readouterr()
  assert cli.main(["pretrain", "--config", SMOKE, "--workdir", str(workdir), *wider]) == 2
  assert "model.width_multiplier 1.0 -> 2.0" in capsys.readouterr().err
  assert workdir_lib.read_run_record(workdir) == first
  assert cli.main(["export", "--workdir", str(workdir), "--out", str(tmp_path / "export")]) == 0  # still whole

  assert cli.main(["pretrain", "--config", SMOKE, "--workdir", str(workdir), "--config.train.steps=5"]) == 0
  assert [m["step"] for m in read_metrics(workdir)] == list(range(1, 6))
  assert workdir_lib.read_config_history(workdir) == [first]

  assert cli.main(["pretrain", "--config", SMOKE, "--workdir", str(workdir), *wider, "--restart"]) == 0
  (previous,) = (workdir / workdir_guard.PREVIOUS_DIR).iterdir()
  assert workdir_lib.read_run_record(previous)["train"]["steps"] == 5
  assert workdir_lib.read_config_history(previous) == [first]
  assert [m["step"] for m in read_metrics(previous)] == list(range(1, 6))
  assert workdir_lib.read_run_config(workdir).model.width_multiplier == 2.0
  assert workdir_lib.read_config_history(workdir) == []
  assert [m["step"] for m in read_metrics(workdir)] == list(range(1, 6))
  assert json.loads((workdir / "config.json").read_text())["train"]["steps"] == 5
