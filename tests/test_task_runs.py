"""Every registered task, end to end after pretraining: `jssl export` -> `load_encoder` -> `jssl eval`.

Each task's smoke run (``configs/smoke.py:TASK``) is written with random-filled checkpoints
(``random_runs``): export and evaluation need the task's weights, not a trained encoder, so
nothing trains here. The tests that a task *learns* live in its own test module. A new task
module is covered with no edit here.
"""

import json

import jax
import numpy as np
import pytest
from conftest import REPO
from random_runs import write_random_run

import jssl
from jssl import cli
from jssl.config import load_config
from jssl.models import encoder_kwargs
from jssl.tasks import TASKS
from jssl.workdir import restore_run

SMOKE = str(REPO / "configs" / "smoke.py")


def _is_count(fraction: float, total: int) -> bool:
  """``fraction`` is a whole number of examples out of ``total`` (a padded or repeated row breaks this)."""
  return abs(fraction * total - round(fraction * total)) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS))
def test_export_load_and_eval_of_every_task(task, tmp_path):
  config = load_config(f"{SMOKE}:{task}")
  workdir = tmp_path / "run"
  setup, _ = write_random_run(config, workdir, steps=(config.train.steps,))

  out = tmp_path / "export"
  assert cli.main(["export", "--workdir", str(workdir), "--out", str(out)]) == 0
  metadata = json.loads((out / "jssl_encoder.json").read_text())
  assert metadata["architecture"] == {"name": config.model.encoder, "kwargs": encoder_kwargs(config)}
  assert metadata["source_run"]["step"] == config.train.steps
  encoder = jssl.load_encoder(out)
  size = config.data.image_size
  images = np.random.default_rng(0).random((4, size, size, 3)).astype(np.float32)
  state, _ = restore_run(setup, workdir)
  variables = setup.task.encoder_variables(state.params, state.batch_stats, state.extra)
  # Exactly the encoder of the task's state (no decoder, head or prototypes), BN statistics included.
  assert set(encoder.params) == set(variables["params"])
  expected = jax.jit(lambda v, x: setup.task.encoder.apply(v, x, train=False))(variables, images)
  assert np.std(np.asarray(expected), axis=0).max() > 1e-4, "features vary (the comparison means something)"
  np.testing.assert_allclose(np.asarray(encoder(images)), np.asarray(expected), rtol=1e-5, atol=1e-5)

  # Evaluation settings may change for one evaluation; the model's may not.
  assert cli.main(["eval", "--workdir", str(workdir), "--config.model.width_multiplier=2.0"]) == 2
  # Capped probe: random weights give features L-BFGS takes its full budget on, and what is
  # tested here is that eval runs on the task's encoder (the probe's accuracy is tested in test_probes).
  args = ["--config.eval.max_train_examples=100", "--config.eval.linear_max_iter=25"]
  assert cli.main(["eval", "--workdir", str(workdir), *args]) == 0
  results = json.loads((workdir / "eval.json").read_text())
  assert results["num_train"] == 100
  assert results["linear_iterations"] >= 1
  for key in ("linear_top1", "knn_k20_top1", "random_init_knn_k20_top1"):
    assert _is_count(results[key], results["num_test"]), (key, results[key], results["num_test"])
