"""Learning-rate scaling, schedule shape and the weight-decay mask."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import optim
from jssl.config import default_config


def test_learning_rate_scaling_rules():
  assert optim.scaled_learning_rate(0.3, batch_size=4096, scaling="linear") == pytest.approx(4.8)
  assert optim.scaled_learning_rate(0.075, batch_size=4096, scaling="sqrt") == pytest.approx(4.8)
  with pytest.raises(ValueError, match="lr_scaling"):
    optim.scaled_learning_rate(0.3, batch_size=256, scaling="cubic")


def test_warmup_then_cosine():
  schedule = optim.learning_rate_schedule(peak_lr=2.0, warmup_steps=10, total_steps=110)
  assert float(schedule(0)) == 0.0
  assert float(schedule(5)) == pytest.approx(1.0)
  assert float(schedule(10)) == pytest.approx(2.0)
  assert float(schedule(60)) == pytest.approx(1.0, rel=1e-5)  # half-way through the cosine
  assert float(schedule(110)) == pytest.approx(0.0, abs=1e-6)


def test_kernel_mask_is_by_shape():
  params = {
    "conv": {"kernel": jnp.ones((3, 3, 1, 4))},
    "bn": {"scale": jnp.ones(4), "bias": jnp.ones(4)},
    "dense": {"kernel": jnp.ones((4, 2)), "bias": jnp.ones(2)},
  }
  mask = optim.kernel_mask(params)
  assert mask == {
    "conv": {"kernel": True},
    "bn": {"scale": False, "bias": False},
    "dense": {"kernel": True, "bias": False},
  }


def test_kernel_mask_skips_vit_embeddings():
  from jssl.models import make_encoder  # noqa: PLC0415

  vit = make_encoder("vit_tiny", patch_size=4, depth=1)
  params = jax.eval_shape(lambda: vit.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), train=False))["params"]
  mask = optim.kernel_mask(params)
  assert mask["patch_embed"]["pos_embed"] is False and mask["cls_token"] is False
  assert mask["patch_embed"]["proj"]["kernel"] is True and mask["patch_embed"]["proj"]["bias"] is False
  assert mask["blocks_0"]["attn"]["qkv"]["kernel"] is True


@pytest.mark.parametrize("name", ["lars", "sgd", "adamw"])
def test_weight_decay_skips_biases_and_bn(name):
  config = default_config().optim
  config.name, config.weight_decay, config.base_lr, config.warmup_epochs = name, 0.1, 1.0, 0.0
  tx, _ = optim.make_optimizer(config, batch_size=256, total_steps=100, steps_per_epoch=10)
  params = {"kernel": jnp.full((2, 2), 3.0), "bias": jnp.full((2,), 3.0)}
  zero_grads = {"kernel": jnp.zeros((2, 2)), "bias": jnp.zeros(2)}
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  assert np.all(np.asarray(updates["bias"]) == 0), "bias must not be decayed"
  assert np.all(np.asarray(updates["kernel"]) < 0), "kernel must be decayed toward zero"
  assert not math.isnan(float(updates["kernel"][0, 0]))


def test_unknown_optimizer():
  config = default_config().optim
  config.name = "adagrad"
  with pytest.raises(ValueError, match="optim.name"):
    optim.make_optimizer(config, batch_size=256, total_steps=10, steps_per_epoch=1)
