"""Two local processes x 2 CPU devices (gloo collectives, coordinator on 127.0.0.1):
the same global batch gives the same step as one process, and preemption is agreed on by all.
The six view methods' 2-process checks are in tests/test_view_methods.py."""

import signal
import time

import jax
import multiprocess_driver
import numpy as np
import pytest
from multiprocess_driver import fixed_batch, steps_config

from jssl import parallel, train, workdir_guard
from jssl.checkpoint import Checkpointer
from jssl.workdir import read_metrics

pytestmark = pytest.mark.slow  # several processes, minutes: make test-all


def _start(workdir, *overrides, mode="pretrain"):
  return multiprocess_driver.start(mode, workdir, *overrides)


def test_sigterm_to_one_process_stops_all_at_the_same_step(tmp_path):
  processes = _start(tmp_path, "--config.train.steps=200", "--config.train.checkpoint_every_steps=1000")
  deadline = time.time() + 300
  while len(read_metrics(tmp_path)) < 5:
    assert time.time() < deadline, "no progress"
    for p in processes:
      assert p.poll() is None, p.stderr.read()[-3000:]
    time.sleep(0.1)
  # Only process 1 is told; process 0 (which writes the metrics) must stop with it.
  processes[1].send_signal(signal.SIGTERM)
  codes = [p.wait(timeout=180) for p in processes]
  assert codes == [0, 0], [p.stderr.read()[-3000:] for p in processes]
  reached = max(m["step"] for m in read_metrics(tmp_path))
  assert 5 <= reached < 200
  assert Checkpointer(tmp_path).latest_step() == reached

  # Both processes resume from there and finish a shorter run.
  processes = _start(tmp_path, f"--config.train.steps={reached + 3}", "--config.train.checkpoint_every_steps=1000")
  codes = [p.wait(timeout=300) for p in processes]
  assert codes == [0, 0], [p.stderr.read()[-3000:] for p in processes]
  assert [m["step"] for m in read_metrics(tmp_path)] == list(range(1, reached + 4))


def test_a_workdir_in_use_stops_every_process_of_the_run(tmp_path):
  """Process 0 alone takes the workdir's lock; when it is refused, the others are told and stop too."""
  with workdir_guard.lock(tmp_path):
    processes = _start(tmp_path)
    codes = [p.wait(timeout=180) for p in processes]
  errors = [p.stderr.read().strip().splitlines()[-1] for p in processes]
  assert codes == [2, 2], errors
  assert errors[0].startswith(f"jssl pretrain: error: {tmp_path} is in use by pid"), errors
  assert (
    errors[1] == f"jssl pretrain: error: process(es) 0 could not start the run in {tmp_path}; their message says why."
  )
  assert not (tmp_path / "config.json").exists()


def test_two_processes_match_one_process_with_the_same_devices(tmp_path):
  out = tmp_path / "two_processes.npz"
  processes = _start(out, mode="steps")
  codes = [p.wait(timeout=300) for p in processes]
  assert codes == [0, 0], [p.stderr.read()[-3000:] for p in processes]
  got = np.load(out)

  config = steps_config()
  setup = train.make_setup(config, mesh=parallel.make_mesh(jax.devices()[:4]))
  state, step = train.create_state(setup, seed=0), train.make_train_step(setup)
  losses = []
  for seed in (0, 1):
    state, metrics = step(state, parallel.global_batch(fixed_batch(config, seed), setup.mesh))
    losses.append(float(metrics["loss"]))
  # Same devices count and global batch; only the transport differs (gloo vs in-process).
  np.testing.assert_allclose(got["losses"], losses, rtol=1e-5)
  for i, leaf in enumerate(jax.tree.leaves(jax.device_get(state.params))):
    np.testing.assert_allclose(got[f"p{i}"], leaf, rtol=1e-4, atol=1e-5)
