"""The six view methods (BYOL, SimSiam, MoCo v3, Barlow Twins, VICReg, DINO) on any layout and
across a restart: global batch statistics (batch norm, contrastive keys, cross-correlation,
variance and covariance, DINO's center) make a step on 8 devices, and for the methods with extra
state on 2 processes x 2 devices (gloo between them), equal the step on 1; a run saved and restored continues exactly as
one that was not interrupted (EMA targets, center, optimizer routes included). kill -9 and
resume through the command line: tests/test_resume.py.

The fast guard of the global statistics is in tests/test_ssl_losses.py: the losses on a batch
split over 8 devices, values and gradients, against their float64 references."""

import jax
import multiprocess_driver
import numpy as np
import pytest
from view_methods import KEEPS_EXTRA, METHODS, flat_state, method_config, steps_on_fixed_batches

from benchmarks.random_batch import random_batch
from jssl import parallel, train
from jssl.checkpoint import Checkpointer


def _run_with_restart(config, checkpoint_dir, steps: int = 4, restart_at: int = 2):
  """``steps`` steps on one device with a checkpoint after ``restart_at``, then the same steps
  again from that checkpoint restored into the abstract state (as a new process would).

  Returns ``(state after step 1, losses, final state, resumed losses, resumed final state)``,
  states on the host."""
  setup = train.make_setup(config, mesh=parallel.make_mesh(jax.devices()[:1]))
  step = train.make_train_step(setup)
  batches = [random_batch(setup, jax.random.key(seed)) for seed in range(steps)]
  state = train.create_state(setup, seed=0)
  losses = []
  for i, batch in enumerate(batches, start=1):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
    if i == 1:
      first = train.to_host(state)
    if i == restart_at:
      checkpointer = Checkpointer(checkpoint_dir)
      checkpointer.save(restart_at, state, force=True)
      checkpointer.wait()
  restored = Checkpointer(checkpoint_dir).restore(train.abstract_state(setup))
  assert int(restored.step) == restart_at
  resumed_losses = []
  for batch in batches[restart_at:]:
    restored, metrics = step(restored, batch)
    resumed_losses.append(float(metrics["loss"]))
  return first, losses, train.to_host(state), resumed_losses, train.to_host(restored)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_one_device_eight_devices_two_processes_and_a_restart_agree(method, tmp_path):
  """1 vs 8 devices, and (methods with extra state) vs 2 processes x 2 devices (gloo): same global batch, same loss,
  parameters, BN statistics and extra state (EMA target, center) after one step, same second
  loss. A statistic taken per device (or an all-reduce without its backward pass) breaks this at
  the first step; a collective the processes do not share breaks the 2-process run.

  Restart: two steps, a checkpoint, a restore, two more steps: bit-identical to four
  uninterrupted steps, every leaf of the state (optimizer state, RNG, counters too). Killing
  the process between save and restore is tests/test_resume.py's business."""
  config = method_config(method)
  # Two processes for the methods that keep extra state (an EMA target, DINO's center, sharded
  # over both processes); the others keep SimCLR's kinds of state, whose 2-process step is
  # tests/test_multiprocess.py's, and their global statistics are the 8-device check's.
  two = method in KEEPS_EXTRA
  processes = multiprocess_driver.start("methods", tmp_path / "processes", method) if two else []  # runs meanwhile
  first, losses, final, resumed_losses, resumed = _run_with_restart(config, tmp_path / "checkpoints")
  one = flat_state(first)
  assert any(key.startswith("['extra']") for key in one) == (method in KEEPS_EXTRA)

  eight, losses_eight = steps_on_fixed_batches(config, parallel.make_mesh(jax.devices()))
  layouts = {"8 devices": (flat_state(eight), losses_eight)}
  if two:
    codes = [p.wait(timeout=600) for p in processes]
    assert codes == [0, 0], [p.stderr.read()[-3000:] for p in processes]
    two_processes = dict(np.load(tmp_path / "processes" / f"{method}.npz"))
    layouts["2 processes"] = (two_processes, two_processes.pop("losses"))
  for name, (state, other_losses) in layouts.items():
    assert state.keys() == one.keys(), name
    for key in one:
      np.testing.assert_allclose(state[key], one[key], rtol=1e-5, atol=1e-5, err_msg=f"{name}: {key}")
    # atol: SimSiam's loss can sit near 0 (seen: 0.006, 7e-8 apart).
    np.testing.assert_allclose(other_losses, losses[:2], rtol=1e-5, atol=1e-6, err_msg=name)

  assert resumed_losses == losses[2:]
  for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(b, a)
