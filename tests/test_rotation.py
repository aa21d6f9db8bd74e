"""RotNet: the rotations against NumPy, 1 vs 8 devices, and the smoke run (export and eval of
every task: tests/test_task_runs.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO

from jssl import cli, parallel, train
from jssl.config import load_config
from jssl.tasks.rotation import rotate
from jssl.workdir import read_metrics

SMOKE = str(REPO / "configs" / "smoke.py:rotation")


def _batch(config, seed=0):
  rng = np.random.default_rng(seed)
  size, batch = config.data.image_size, config.train.batch_size
  return {
    "image": rng.integers(0, 256, (batch, size, size, 3)).astype(np.uint8),
    "label": rng.integers(0, 8, batch).astype(np.int32),
  }


def test_rotate_turns_each_image_by_its_own_quarter_turns():
  images = np.random.default_rng(0).random((8, 5, 5, 2))
  turns = np.array([0, 1, 2, 3, 3, 2, 1, 0])
  expected = np.stack([np.rot90(image, k, axes=(0, 1)) for image, k in zip(images, turns)])
  np.testing.assert_allclose(np.asarray(rotate(jnp.asarray(images), jnp.asarray(turns))), expected, atol=1e-7)


@pytest.mark.parametrize("mode", ["all", "random"])
def test_rotated_batches_and_their_labels(mode):
  config = load_config(SMOKE)
  config.rotation.rotations = mode
  setup = train.make_setup(config)
  batch = _batch(config)
  images, turns = (np.asarray(x) for x in setup.task.rotated(jax.tree.map(jnp.asarray, batch), jax.random.key(1)))
  originals = batch["image"] / 255.0
  if mode == "all":
    assert images.shape == (4 * len(originals), *originals.shape[1:])
    np.testing.assert_array_equal(turns, np.repeat(np.arange(4), len(originals)))
    originals = np.concatenate([originals] * 4)
  else:
    assert images.shape == originals.shape and set(turns) == {0, 1, 2, 3}, turns  # 32 draws hit every class
  expected = np.stack([np.rot90(image, k, axes=(0, 1)) for image, k in zip(originals, turns)])
  np.testing.assert_allclose(images, expected, atol=1e-7)


@pytest.mark.slow
def test_eight_devices_match_one_device():
  """Same global batch, one SGD step on 1 and on 8 devices: same loss and parameters
  (random rotations, drawn per example by global index, included)."""
  config = load_config(SMOKE)
  config.rotation.rotations = "random"
  config.optim.name, config.optim.base_lr = "sgd", 0.1
  results = {}
  for devices in (jax.devices()[:1], jax.devices()):
    setup = train.make_setup(config, mesh=parallel.make_mesh(devices))
    state, metrics = train.make_train_step(setup)(
      train.create_state(setup, seed=0), parallel.global_batch(_batch(config), setup.mesh)
    )
    results[len(devices)] = jax.device_get((state, metrics["loss"]))
  for a, b in zip(jax.tree.leaves(results[1]), jax.tree.leaves(results[8])):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=2e-5)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("rotation")
  assert cli.main(["pretrain", "--config", SMOKE, "--workdir", str(workdir)]) == 0
  return workdir


@pytest.mark.slow
def test_smoke_run_learns_rotations(smoke_run):
  metrics = read_metrics(smoke_run)
  assert [m["step"] for m in metrics] == list(range(1, 17))
  for key in ("loss", "rotation_accuracy"):
    first, last = np.mean([m[key] for m in metrics[:4]]), np.mean([m[key] for m in metrics[-4:]])
    assert (last < first - 0.1) if key == "loss" else (last > max(first + 0.05, 0.3)), (key, first, last)
  for name in ("augmentations.png", "curves.png"):
    assert (smoke_run / name).stat().st_size > 1000, name
