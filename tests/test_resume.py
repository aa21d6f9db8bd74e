"""Checkpoints that never lose a run: round trip, kill -9 and resume, SIGTERM, torn saves,
restore on another device count, and non-finite steps."""

import signal
import subprocess
import sys
import time

import flax.serialization
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import REPO
from view_methods import KEEPS_EXTRA

from jssl import parallel, train
from jssl.checkpoint import Checkpointer
from jssl.errors import ConfigError
from jssl.tasks.simclr import SimCLR
from jssl.workdir import read_metrics

SMOKE = str(REPO / "configs" / "smoke.py")
STEPS = 24  # configs/smoke.py


def _command(workdir, *overrides, config=SMOKE):
  return [sys.executable, "-m", "jssl.cli", "pretrain", "--config", config, "--workdir", str(workdir), *overrides]


def _run(workdir, *overrides, config=SMOKE):
  result = subprocess.run(
    _command(workdir, *overrides, config=config), capture_output=True, text=True, timeout=300, cwd=REPO
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def _start(workdir, *overrides, config=SMOKE):
  return subprocess.Popen(
    _command(workdir, *overrides, config=config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO
  )


def _wait_for_steps(workdir, count, process, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if len(read_metrics(workdir)) >= count:
      return
    assert process.poll() is None, f"run ended early: {process.stderr.read()[-2000:]}"
    time.sleep(0.05)
  raise TimeoutError(f"{workdir} did not reach step {count}")


def _losses(workdir):
  return {m["step"]: m["loss"] for m in read_metrics(workdir)}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  """The losses of a whole smoke run, step by step."""
  workdir = tmp_path_factory.mktemp("uninterrupted")
  _run(workdir)
  return _losses(workdir)


def test_checkpoint_round_trip_is_bit_identical(smoke_config, tmp_path):
  setup = train.make_setup(smoke_config)
  state = train.create_state(setup, seed=0)
  step = train.make_train_step(setup)
  rng = np.random.default_rng(0)
  batch = {
    "view1": rng.random((32, 16, 16, 3), dtype=np.float32),
    "view2": rng.random((32, 16, 16, 3), dtype=np.float32),
    "label": rng.integers(0, 10, 32).astype(np.int32),
  }
  for _ in range(2):
    state, _ = step(state, parallel.global_batch(batch, setup.mesh))
  checkpointer = Checkpointer(tmp_path)
  checkpointer.save(2, state, force=True)
  checkpointer.wait()
  restored = checkpointer.restore(train.abstract_state(setup))
  saved_leaves, restored_leaves = jax.tree.leaves(state), jax.tree.leaves(restored)
  assert len(saved_leaves) == len(restored_leaves)
  for a, b in zip(saved_leaves, restored_leaves):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # The data position is the step: the pipeline is a pure function of (seed, step).
  assert int(restored.step) == 2 and int(restored.skipped_steps) == 0


@pytest.mark.slow
# SimCLR and the view methods that keep extra state (an EMA target, DINO's center). SimSiam,
# Barlow Twins and VICReg keep only SimCLR's kinds of state; each is restored bit for bit in
# process by tests/test_view_methods.py (all seven passed this test on 2026-12-04, before the
# three were left out to keep make test-all within its 25 minutes).
@pytest.mark.parametrize("method", ["simclr", *KEEPS_EXTRA])
def test_kill_9_then_resume_recomputes_the_same_losses(method, tmp_path):
  """A run killed a step or more after a checkpoint resumes from it and recomputes the steps it
  had logged with the same losses, so everything the method keeps came back exactly. Two
  processes, not three: the killed run's own log is the uninterrupted reference for the steps
  after the checkpoint. (SIGTERM's test compares a whole resumed run with an uninterrupted one.)"""
  config, every = f"{SMOKE}:{method}", "--config.train.checkpoint_every_steps=4"
  steps = STEPS if method == "simclr" else 16  # configs/smoke.py
  process = _start(tmp_path, every, config=config)
  _wait_for_steps(tmp_path, 6, process)
  process.kill()
  process.wait()
  before_kill = _losses(tmp_path)
  killed_at = max(before_kill)
  resumed = _run(tmp_path, every, config=config)
  resumed_from = int(resumed.stderr.split("Resuming from the checkpoint at step ")[1].split()[0])
  assert 4 <= resumed_from < killed_at < steps, "the kill came a step or more after a checkpoint"
  losses = _losses(tmp_path)
  assert sorted(losses) == list(range(1, steps + 1))
  assert {s: losses[s] for s in before_kill} == before_kill


@pytest.mark.slow
def test_sigterm_finishes_the_step_saves_and_exits_zero(uninterrupted, tmp_path):
  process = _start(tmp_path)
  _wait_for_steps(tmp_path, 6, process)
  process.send_signal(signal.SIGTERM)
  assert process.wait(timeout=120) == 0, process.stderr.read()[-2000:]
  reached = max(_losses(tmp_path))
  assert reached < STEPS
  assert Checkpointer(tmp_path).latest_step() == reached
  _run(tmp_path)
  assert _losses(tmp_path) == uninterrupted


def test_torn_save_directory_is_never_restored(tmp_path):
  checkpointer = Checkpointer(tmp_path)
  checkpointer.save(STEPS, {"w": np.arange(3.0)}, force=True)
  checkpointer.wait()
  # What a save killed mid-write leaves behind: a temporary directory for a later step.
  torn = tmp_path / "checkpoints" / f"{STEPS + 4}.orbax-checkpoint-tmp-1234567890"
  (torn / "default").mkdir(parents=True)
  (torn / "default" / "partial").write_bytes(b"\0" * 10)
  assert Checkpointer(tmp_path).latest_step() == STEPS


@pytest.mark.slow
def test_sigkill_during_async_save_leaves_the_previous_checkpoint(tmp_path):
  steps, overrides = 12, ("--config.train.steps=12", "--config.train.checkpoint_every_steps=1")
  process = _start(tmp_path, *overrides)
  checkpoints, deadline, caught = tmp_path / "checkpoints", time.time() + 240, False
  while time.time() < deadline and process.poll() is None:
    names = [p.name for p in checkpoints.iterdir()] if checkpoints.exists() else []
    # Kill while a later save is being written, once an earlier one is complete.
    if any(n.isdigit() for n in names) and any("tmp" in n for n in names):
      process.kill()
      caught = True
      break
  process.kill()
  process.wait()
  assert caught, "never saw a save in progress"
  complete = [int(n) for n in (p.name for p in checkpoints.iterdir()) if n.isdigit()]
  step = Checkpointer(tmp_path).latest_step()
  assert step is not None and step == max(complete) and step < steps
  _run(tmp_path, *overrides)
  assert sorted(_losses(tmp_path)) == list(range(1, steps + 1))


@pytest.mark.slow
def test_restore_on_fewer_devices_continues_training(smoke_config, tmp_path):
  smoke_config.train.steps = 8
  train.pretrain(smoke_config, tmp_path, mesh=parallel.make_mesh(jax.devices()[:2]))
  smoke_config.train.steps = 12
  state = train.pretrain(smoke_config, tmp_path, mesh=parallel.make_mesh(jax.devices()[:1]))
  assert int(state.step) == 12
  records = read_metrics(tmp_path)
  assert [m["step"] for m in records] == list(range(1, 13))
  assert all(np.isfinite(m["loss"]) for m in records)


def test_non_finite_step_changes_nothing_but_the_counters(smoke_config):
  setup = train.make_setup(smoke_config)
  state = train.create_state(setup, seed=0)
  before = jax.device_get(state)
  batch = {
    "view1": np.full((32, 16, 16, 3), np.nan, np.float32),
    "view2": np.zeros((32, 16, 16, 3), np.float32),
    "label": np.zeros(32, np.int32),
  }
  after, metrics = train.make_train_step(setup)(state, parallel.global_batch(batch, setup.mesh))
  assert not bool(metrics["finite"])
  assert int(after.step) == 1 and int(after.skipped_steps) == 1
  for a, b in zip(
    jax.tree.leaves((before.params, before.batch_stats, before.opt_state)),
    jax.tree.leaves(jax.device_get((after.params, after.batch_stats, after.opt_state))),
  ):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_too_many_non_finite_steps_stop_with_a_checkpoint(smoke_config, tmp_path, monkeypatch):
  original = SimCLR.loss

  def poisoned(self, params, batch_stats, extra, batch, rng, step):
    loss, aux = original(self, params, batch_stats, extra, batch, rng, step)
    return loss * np.nan, aux

  monkeypatch.setattr(SimCLR, "loss", poisoned)
  smoke_config.train.max_consecutive_nonfinite = 3
  with pytest.raises(train.NonFiniteError, match="max_consecutive_nonfinite=3"):
    train.pretrain(smoke_config, tmp_path)
  saved = Checkpointer(tmp_path).latest_step()
  assert saved is not None and 3 <= saved < STEPS
  records = read_metrics(tmp_path)
  assert records and records[-1]["skipped_steps"] >= 3


def test_checkpoint_from_before_extra_state_restores_or_says_why(smoke_config, tmp_path):
  """A checkpoint written before the state had ``extra`` restores for a task that keeps none
  (SimCLR); for a task that does, the error says the run must be pretrained again."""
  setup = train.make_setup(smoke_config)
  state = train.create_state(setup, seed=0)
  old = {k: v for k, v in flax.serialization.to_state_dict(state).items() if k != "extra"}
  manager = ocp.CheckpointManager(tmp_path.resolve() / "checkpoints", options=ocp.CheckpointManagerOptions(create=True))
  manager.save(1, args=ocp.args.StandardSave(old))
  manager.wait_until_finished()
  restored = Checkpointer(tmp_path).restore(train.abstract_state(setup))
  assert restored.extra == {}
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with_extra = train.abstract_state(setup).replace(
    extra={"labels": jax.ShapeDtypeStruct((4,), np.int32, sharding=parallel.replicated(setup.mesh))}
  )
  with pytest.raises(ConfigError, match="older jssl"):
    Checkpointer(tmp_path).restore(with_extra)
