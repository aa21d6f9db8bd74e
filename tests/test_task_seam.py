"""The task seam: a method with state that is not trained and an after-update hook needs
nothing but its task class. The example here is SimCLR plus an EMA of its encoder (the
target network of BYOL / MoCo v3 / DINO), defined in this file alone."""

import dataclasses
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from random_runs import write_random_run

from benchmarks.random_batch import random_batch
from jssl import parallel, train
from jssl.config import load_config
from jssl.errors import ConfigError
from jssl.tasks.base import Task
from jssl.tasks.simclr import SimCLR

REPO = pathlib.Path(__file__).resolve().parents[1]
BASE_MOMENTUM = 0.9


def momentum(step, total):
  """BYOL's cosine schedule from BASE_MOMENTUM at step 0 to 1 at ``total``."""
  return 1 - (1 - BASE_MOMENTUM) * (jnp.cos(jnp.pi * step / total) + 1) / 2


class EmaSimCLR(SimCLR):
  name = ""  # not registered: a test task

  def init(self, rng, batch):
    variables = super().init(rng, batch)
    return {**variables, "extra": {"target": variables["params"]["encoder"], "seen_steps": jnp.zeros((), jnp.int32)}}

  def loss(self, params, batch_stats, extra, batch, rng, step):
    loss, (batch_stats, extra, metrics, features) = super().loss(params, batch_stats, extra, batch, rng, step)
    return loss, (batch_stats, {**extra, "seen_steps": step + 1}, metrics, features)

  def after_update(self, params, extra, step):
    target = optax.incremental_update(params["encoder"], extra["target"], 1 - momentum(step, self.total_steps))
    return {**extra, "target": target}

  networks = ("target", "online")

  def encoder_variables(self, params, batch_stats, extra=None, network=None):
    """The EMA encoder is the one exported and evaluated by default (as DINO exports its
    teacher); ``network="online"`` gives the trained one."""
    if self.network_name(network) == "online":
      return super().encoder_variables(params, batch_stats, extra)
    return {"params": extra["target"], "batch_stats": batch_stats["encoder"]}


def _setup():
  config = load_config(REPO / "configs" / "smoke.py")  # one device, as the smoke runs
  config.train.batch_size = 8  # the steps' arithmetic, not their size, is under test (seconds saved)
  setup = train.make_setup(config, mesh=parallel.make_mesh(jax.devices()[:1]))
  return dataclasses.replace(setup, task=EmaSimCLR(config, mesh=setup.mesh, source=setup.source))


def _host(tree):
  return jax.tree.map(lambda x: np.asarray(x, np.float64), jax.device_get(tree))


def test_extra_state_follows_the_ema_of_the_encoder_and_survives_a_nonfinite_step():
  setup = _setup()
  assert (setup.task.total_steps, setup.task.steps_per_epoch) == (setup.total_steps, setup.steps_per_epoch)
  state = train.create_state(setup, seed=0)
  step = train.make_train_step(setup)
  target = _host(state.params["encoder"])
  np.testing.assert_array_equal(jax.tree.leaves(_host(state.extra["target"]))[0], jax.tree.leaves(target)[0])
  for s in range(3):
    batch = random_batch(setup, jax.random.key(s))
    state, metrics = step(state, batch)
    assert bool(metrics["finite"])
    m = 1 - (1 - BASE_MOMENTUM) * (math.cos(math.pi * s / setup.total_steps) + 1) / 2
    online = _host(state.params["encoder"])
    target = jax.tree.map(lambda t, o, m=m: m * t + (1 - m) * o, target, online)
    assert int(state.extra["seen_steps"]) == s + 1  # the loss saw the step number
  for want, got in zip(jax.tree.leaves(target), jax.tree.leaves(_host(state.extra["target"]))):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  online = _host(state.params["encoder"])
  assert not np.allclose(jax.tree.leaves(online)[0], jax.tree.leaves(target)[0]), "the target lags the online net"

  # A step whose loss is not finite leaves the extra state as it was.
  before = _host(state.extra)
  batch = random_batch(setup, jax.random.key(9))
  batch = {k: (v * jnp.nan if jnp.issubdtype(v.dtype, jnp.floating) else v) for k, v in batch.items()}
  state, metrics = step(state, batch)
  assert not bool(metrics["finite"])
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(_host(state.extra))):
    np.testing.assert_array_equal(a, b)


def test_extra_state_is_sharded_by_the_params_rules():
  """With fsdp the EMA target is split over the fsdp axis exactly as the encoder it follows."""
  config = load_config(REPO / "configs" / "smoke.py")
  config.parallel.fsdp = 2
  config.parallel.fsdp_min_size = 0
  setup = train.make_setup(config, mesh=parallel.make_mesh(jax.devices()[:8], fsdp=2))
  setup = dataclasses.replace(setup, task=EmaSimCLR(config, mesh=setup.mesh, source=setup.source))
  shardings = train.state_sharding(setup)
  for a, b in zip(jax.tree.leaves(shardings.params["encoder"]), jax.tree.leaves(shardings.extra["target"])):
    assert a == b
  assert any("fsdp" in str(s.spec) for s in jax.tree.leaves(shardings.extra["target"]))


def test_a_task_that_forgets_part_of_the_contract_fails_at_construction():
  class Forgetful(Task):
    name = ""

    def loss(self, params, batch_stats, extra, batch, rng, step):
      return 0.0, (batch_stats, extra, {}, None)

  with pytest.raises(TypeError, match="host_example, batch_spec, init, augmentation_rows"):
    Forgetful(load_config(REPO / "configs" / "smoke.py"))


def test_export_takes_the_encoder_the_task_keeps_in_extra(tmp_path, monkeypatch):
  """Registered under a name (as a module in jssl/tasks would be), the EMA task's export holds
  its extra state's target network, not the trained encoder."""
  from jssl import export, tasks  # noqa: PLC0415

  monkeypatch.setitem(tasks.TASKS, "ema_simclr", EmaSimCLR)
  config = load_config(REPO / "configs" / "smoke.py")
  config.task = "ema_simclr"
  _, states = write_random_run(config, tmp_path / "run", steps=(4,))
  out = export.export_encoder(tmp_path / "run", tmp_path / "export", format="npz")
  loaded = export.load_encoder(out)
  state = jax.device_get(states[4])

  def by_path(tree):
    return {jax.tree_util.keystr(path): v for path, v in jax.tree_util.tree_leaves_with_path(tree)}

  flat, target, online = by_path(loaded.params), by_path(state.extra["target"]), by_path(state.params["encoder"])
  assert flat.keys() == target.keys()
  for key in flat:
    np.testing.assert_array_equal(flat[key], target[key])
  assert any(not np.array_equal(flat[k], online[k]) for k in flat), "the target differs from the online encoder"

  # The other network on request; a name the task does not have is a one-line error.
  out = export.export_encoder(tmp_path / "run", tmp_path / "online", format="npz", network="online")
  online_export = by_path(export.load_encoder(out).params)
  for key in flat:
    np.testing.assert_array_equal(online_export[key], online[key])
  assert json.loads((out / "jssl_encoder.json").read_text())["source_run"]["network"] == "online"
  with pytest.raises(ConfigError, match="has no network 'student'; it exports target, online"):
    export.export_encoder(tmp_path / "run", tmp_path / "student", format="npz", network="student")
