"""Schedules over training (jssl.schedules) against their closed forms in NumPy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import schedules
from jssl.errors import ConfigError


def test_cosine_momentum_is_byols_schedule():
  total, base = 40, 0.996
  got = jax.jit(lambda s: schedules.cosine_momentum(s, total, base))(jnp.arange(total + 5))
  want = [1 - (1 - base) * (math.cos(math.pi * min(k / total, 1)) + 1) / 2 for k in range(total + 5)]
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=0, atol=1e-7)
  assert float(got[0]) == pytest.approx(base) and float(got[total]) == 1.0 and float(got[-1]) == 1.0
  assert np.all(np.diff(np.asarray(got)) >= 0)


def test_linear_warmup_then_constant():
  got = np.asarray(jax.jit(lambda s: schedules.linear_warmup(s, 0.04, 0.07, 30))(jnp.arange(40)), np.float64)
  want = [0.04 + 0.03 * min(k / 30, 1) for k in range(40)]
  np.testing.assert_allclose(got, want, atol=1e-7)
  assert float(schedules.linear_warmup(jnp.int32(0), 0.04, 0.07, 0)) == pytest.approx(0.07)


def test_training_length_from_steps_or_epochs(smoke_config):
  from jssl.data.sources import source_from_config  # noqa: PLC0415

  source = source_from_config(smoke_config.data, seed=0)
  examples = source.num_examples(smoke_config.data.train_split)
  smoke_config.train.steps = 0
  smoke_config.train.epochs = 2.5
  total, per_epoch = schedules.training_length(smoke_config, source)
  assert per_epoch == max(1, examples // smoke_config.train.batch_size)
  assert total == round(2.5 * per_epoch)
  smoke_config.train.steps = 7
  assert schedules.training_length(smoke_config, source) == (7, per_epoch)
  smoke_config.train.steps, smoke_config.train.epochs = 0, 0.0
  with pytest.raises(ConfigError, match="Nothing to train"):
    schedules.training_length(smoke_config, source)
