"""The papers' linear evaluation (jssl.linear_eval): its optimizer's first steps against the
formulas, the ImageNet centre crop against a NumPy crop, and a probe that learns the synthetic
classes through crops and flips."""

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from jssl import linear_eval
from jssl.data import augment
from jssl.data.sources.synthetic import synthetic_source


def test_sgd_is_nesterov_with_linearly_scaled_cosine_learning_rate_and_lars_from_4096():
  tx, name = linear_eval.optimizer(lr=0.1, batch_size=512, steps=10)
  assert name == "sgd_nesterov"
  params = {"w": jnp.zeros(3)}
  state = tx.init(params)
  grad = {"w": jnp.ones(3)}
  # Nesterov (torch's and optax's form): v = g + 0.9 v; step = -lr (g + 0.9 v). lr = 0.1 * 512 / 256.
  first, state = tx.update(grad, state, params)
  np.testing.assert_allclose(first["w"], -0.2 * (1 + 0.9) * np.ones(3), rtol=1e-6)
  for _ in range(4):
    _, state = tx.update(grad, state, params)
  sixth, _ = tx.update(grad, state, params)  # step 5 of 10: the cosine is at half, lr 0.1
  velocity = sum(0.9**i for i in range(6))
  np.testing.assert_allclose(sixth["w"], -0.1 * (1 + 0.9 * velocity) * np.ones(3), rtol=1e-5)
  assert linear_eval.optimizer(lr=0.1, batch_size=4096, steps=10)[1] == "lars"


def test_imagenet_sized_images_are_tested_on_the_central_0875():
  rng = np.random.default_rng(0)
  image = rng.random((160, 200, 3)).astype(np.float32)
  got = augment.center_resize(image, image_size=128, crop_fraction=linear_eval.eval_crop_fraction(128))
  side = 140  # 0.875 of the shorter side, 160
  crop = image[10 : 10 + side, 30 : 30 + side]  # centred: (160 - 140) / 2 rows, (200 - 140) / 2 columns
  reference = tf.clip_by_value(tf.image.resize(crop, [128, 128], method="bicubic"), 0.0, 1.0)
  np.testing.assert_allclose(got, reference, atol=1e-6)
  assert linear_eval.eval_crop_fraction(32) == 1.0  # small images are tested whole
  whole = augment.center_resize(image[:, 20:180], image_size=32)
  np.testing.assert_allclose(whole, tf.clip_by_value(tf.image.resize(image[:, 20:180], [32, 32], "bicubic"), 0, 1))


def test_the_probe_learns_the_synthetic_classes_through_crops_and_flips():
  """Raw pixels of blocky class templates (16 px, 4 classes): a few epochs of the papers' SGD
  reach far above chance (0.25) on the test split, and the result says how it ran."""
  source = synthetic_source((16, 16, 3), examples=512, classes=4, seed=0)
  result = linear_eval.paper_linear_probe(
    jax.jit(lambda x: x.reshape(x.shape[0], -1)),
    source,
    train_split="train",
    test_split="test",
    image_size=16,
    grayscale_to_rgb=False,
    num_classes=4,
    batch_size=64,
    epochs=4.0,
    lr=0.1,
    seed=0,
  )
  assert result["linear_top1"] >= 0.9, result
  assert result["linear_train_top1"] > 0.5, result  # random crops of 8% and more: harder than whole images
  assert result["linear_steps"] == 4 * (512 // 64) and result["linear_lr"] == 0.1 * 64 / 256
  assert result["linear_optimizer"] == "sgd_nesterov" and result["linear_test_crop"] == 1.0


def test_the_head_normalises_features_without_affine_parameters():
  head = linear_eval.LinearHead(num_classes=3)
  variables = head.init(jax.random.key(0), jnp.zeros((4, 5)), train=False)
  assert set(variables["params"]) == {"Dense_0"} and set(variables["batch_stats"]["BatchNorm_0"]) == {"mean", "var"}
  x = np.random.default_rng(1).normal(3.0, 7.0, size=(64, 5)).astype(np.float32)
  # Zero-initialised Dense: logits 0. With a unit kernel, the logits are the standardised features' sums.
  variables["params"]["Dense_0"]["kernel"] = jnp.ones((5, 3))
  logits, _ = head.apply(variables, x, train=True, mutable=["batch_stats"])
  standardised = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-6)
  np.testing.assert_allclose(logits, np.repeat(standardised.sum(1, keepdims=True), 3, axis=1), atol=1e-4)
