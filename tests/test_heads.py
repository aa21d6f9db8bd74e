"""The MLP heads of the view-based methods (jssl.models.MLPHead) against a float64 NumPy forward."""

import functools
import math
import pathlib

import jax
import numpy as np
import pytest

from jssl.errors import ConfigError
from jssl.models import MLPHead, ProjectionHead


def _numpy_forward(variables, x, *, num_layers, hidden_norm, out_norm, activation):
  """Training-mode forward in float64 from the variables, written from the docstring."""
  params = variables["params"]
  x = np.asarray(x, np.float64)
  for i in range(num_layers):
    last = i == num_layers - 1
    dense = params[f"dense{i}"]
    x = x @ np.asarray(dense["kernel"], np.float64)
    if "bias" in dense:
      x = x + np.asarray(dense["bias"], np.float64)
    norm = out_norm != "none" if last else hidden_norm
    if norm:
      bn = params.get(f"bn{i}", {})
      x = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
      x = x * np.asarray(bn.get("scale", 1.0), np.float64) + np.asarray(bn.get("bias", 0.0), np.float64)
    if not last:
      x = np.maximum(x, 0) if activation == "relu" else 0.5 * x * (1 + np.vectorize(math.erf)(x / 2**0.5))
  return x


@pytest.mark.parametrize(
  "hidden_norm, out_norm, activation",
  [(True, "none", "relu"), (True, "bn_no_affine", "relu"), (True, "bn", "relu"), (False, "none", "gelu")],
)
def test_mlp_head_matches_numpy_and_has_bias_only_without_norm(hidden_norm, out_norm, activation):
  head = MLPHead(
    hidden_dim=16, out_dim=8, num_layers=3, hidden_norm=hidden_norm, out_norm=out_norm, activation=activation
  )
  x = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32)
  variables = head.init(jax.random.key(0), x, train=False)
  # Random BN affine values, so that their use is checked too.
  variables = jax.tree.map(
    lambda v: v + 0.3 * np.random.default_rng(1).normal(size=v.shape).astype(np.float32), variables
  )
  got, _ = head.apply(variables, x, train=True, mutable=["batch_stats"])
  want = _numpy_forward(variables, x, num_layers=3, hidden_norm=hidden_norm, out_norm=out_norm, activation=activation)
  np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
  params = variables["params"]
  for i in range(3):
    norm = out_norm != "none" if i == 2 else hidden_norm
    assert ("bias" in params[f"dense{i}"]) != norm
  last_bn = params.get("bn2", {})
  assert set(last_bn) == {"none": set(), "bn_no_affine": set(), "bn": {"scale", "bias"}}[out_norm]


def test_projection_head_keeps_simclr_v2_layout():
  variables = ProjectionHead(hidden_dim=16, out_dim=8, num_layers=2).init(
    jax.random.key(0), np.zeros((4, 5)), train=False
  )
  params = variables["params"]
  assert set(params) == {"dense0", "bn0", "dense1", "bn1"}
  assert set(params["bn1"]) == {"scale"} and set(params["bn0"]) == {"scale", "bias"}
  assert "bias" not in params["dense0"] and "bias" not in params["dense1"]


def test_mlp_head_refuses_unknown_norms():
  with pytest.raises(ConfigError, match="out_norm='layer'"):
    MLPHead(out_norm="layer").init(jax.random.key(0), np.zeros((2, 3)), train=False)


def test_hidden_width_zero_follows_the_features_and_a_set_width_is_kept():
  def dense_shapes(hidden_dim, features):
    params = ProjectionHead(hidden_dim=hidden_dim, out_dim=8, num_layers=3).init(
      jax.random.key(0), np.zeros((4, features)), train=False
    )["params"]
    return [params[f"dense{i}"]["kernel"].shape for i in range(3)]

  assert dense_shapes(0, 5) == [(5, 5), (5, 5), (5, 8)]
  assert dense_shapes(0, 12) == [(12, 12), (12, 12), (12, 8)]
  assert dense_shapes(16, 5) == [(5, 16), (16, 16), (16, 8)]


def test_simclr_head_is_as_wide_as_the_encoder_by_default_as_in_the_reference():
  from jssl.config import default_config, load_config  # noqa: PLC0415
  from jssl.tasks.simclr import SimCLR  # noqa: PLC0415

  assert default_config().model.head_hidden_dim == 0
  for encoder, width in (("resnet18", 512), ("resnet_tiny", 128)):
    config = default_config()
    config.data.source, config.data.image_size, config.model.encoder = "synthetic", 16, encoder
    config.data.synthetic_shape = (16, 16, 3)
    task = SimCLR(config)
    init = functools.partial(task.model.init, train=False)
    shapes = jax.eval_shape(init, jax.random.key(0), np.zeros((2, 16, 16, 3)))
    head = shapes["params"]["head"]
    assert head["dense0"]["kernel"].shape == (width, width) and head["dense1"]["kernel"].shape == (width, 128)
  # The CIFAR-10 recipe: google-research/simclr's command and run.py defaults.
  recipe = load_config(pathlib.Path(__file__).parents[1] / "configs" / "simclr_cifar10.py")
  assert (recipe.train.batch_size, recipe.optim.base_lr, recipe.optim.lr_scaling) == (512, 1.0, "linear")
  assert (recipe.optim.name, recipe.optim.weight_decay, recipe.simclr.temperature) == ("lars", 1e-4, 0.5)
  assert (recipe.augment.jitter_strength, recipe.augment.blur_prob, recipe.train.epochs) == (0.5, 0.0, 1000.0)
  assert (recipe.model.encoder, recipe.model.stem, recipe.model.head_layers) == ("resnet18", "cifar", 3)
