"""MAE: patches and the masked-patch loss against float64 NumPy, the random masks, the
decoder's un-shuffle, a step on 1 and 8 devices, and the smoke run (pretrain,
samples.png; export and eval of every task: tests/test_task_runs.py).

The model is the smoke recipe's: vit_tiny cut to 2 blocks, 16 px images in 4 px patches
(16 tokens, 4 visible), the default 128-wide 2-block decoder.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, first_updates

from jssl import cli, parallel, train
from jssl.config import load_config
from jssl.evaluate import Holdout
from jssl.losses import mae as mae_losses
from jssl.models.mae import sincos_2d
from jssl.models.vit import PatchEmbed
from jssl.ops import patches as patch_ops
from jssl.tasks import TASKS, make_task
from jssl.tasks.base import global_indices
from jssl.workdir import read_metrics, read_run_config, restore_run

SMOKE = str(REPO / "configs" / "smoke.py:mae")


def _config():
  return load_config(SMOKE)


def _batch(config, seed=0):
  """Random photo-like uint8 crops: smooth colour gradients plus noise."""
  rng = np.random.default_rng(seed)
  size, batch = config.data.image_size, config.train.batch_size
  low = rng.random((batch, 4, 4, 3))
  images = np.repeat(np.repeat(low, size // 4, axis=1), size // 4, axis=2) + 0.1 * rng.random((batch, size, size, 3))
  return {"image": np.clip(images * 230, 0, 255).astype(np.uint8), "label": rng.integers(0, 8, batch).astype(np.int32)}


def _numpy_patches(images, p):
  """Patch (i, j) of every image, row-major, each flattened (row, column, channel): loops, no reshapes shared
  with the code under test."""
  b, h, w, _ = images.shape
  return np.stack(
    [
      images[:, i * p : (i + 1) * p, j * p : (j + 1) * p, :].reshape(b, -1)
      for i in range(h // p)
      for j in range(w // p)
    ],
    axis=1,
  )


# --------------------------------------------------------------------------- patches and the loss


def test_patchify_matches_numpy_round_trips_and_is_patch_embeds_order():
  images = np.random.default_rng(0).random((2, 8, 12, 3))  # a 2 x 3 grid of 4 px patches
  patches = patch_ops.patchify(jnp.asarray(images, jnp.float32), 4)
  np.testing.assert_allclose(patches, _numpy_patches(images, 4), rtol=1e-6)
  np.testing.assert_array_equal(patch_ops.unpatchify(patches, 4, (2, 3)), np.asarray(images, np.float32))
  square = jnp.asarray(images[:, :8, :8], jnp.float32)
  np.testing.assert_array_equal(patch_ops.unpatchify(patch_ops.patchify(square, 4), 4), square)
  with pytest.raises(ValueError, match="do not make a 3x3 grid"):
    patch_ops.unpatchify(patches, 4, (3, 3))
  # PatchEmbed's stride-p conv is patchify(images) @ kernel.reshape(p * p * C, dim): token n is patch n.
  rng = np.random.default_rng(1)
  params = {
    "proj": {"kernel": rng.normal(size=(4, 4, 3, 5)), "bias": rng.normal(size=5)},
    "pos_embed": rng.normal(size=(1, 6, 5)),
  }
  tokens = PatchEmbed(dim=5, patch_size=4).apply(
    {"params": jax.tree.map(jnp.float32, params)}, jnp.asarray(images, jnp.float32)
  )
  expected = _numpy_patches(images, 4) @ params["proj"]["kernel"].reshape(-1, 5) + params["proj"]["bias"]
  np.testing.assert_allclose(tokens, expected + params["pos_embed"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("normalize", [False, True])
def test_masked_patch_loss_matches_numpy_and_ignores_visible_patches(normalize):
  rng = np.random.default_rng(1)
  pred, target = rng.normal(size=(3, 16, 48)), rng.random((3, 16, 48))
  mask = np.zeros((3, 16))
  mask[:, :12] = 1
  mask = rng.permuted(mask, axis=1)
  # A nearly flat hidden patch: its variance (~1e-5) is close enough to the 1e-6 epsilon that where it goes matters.
  target[0, np.flatnonzero(mask[0])[0]] = 0.5 + 1e-2 * rng.random(48)
  reference_target = target
  if normalize:
    # torch's target.var(dim=-1) in the reference: unbiased (divides by D - 1).
    mean, var = target.mean(-1, keepdims=True), target.var(-1, ddof=1, keepdims=True)
    reference_target = (target - mean) / np.sqrt(var + 1e-6)
  per_patch = ((pred - reference_target) ** 2).mean(-1)
  expected = (per_patch * mask).sum() / mask.sum()

  def loss(pred, target, mask):
    return float(
      mae_losses.masked_patch_loss(
        jnp.asarray(pred, jnp.float32),
        jnp.asarray(target, jnp.float32),
        jnp.asarray(mask, jnp.float32),
        normalize_targets=normalize,
      )
    )

  np.testing.assert_allclose(loss(pred, target, mask), expected, rtol=1e-5)
  # Anything at all in the visible patches, predicted or target, changes nothing.
  visible = (mask == 0)[..., None]
  scribbled_pred = np.where(visible, 1e3 * rng.normal(size=pred.shape), pred)
  scribbled_target = np.where(visible, rng.random(target.shape), target)
  np.testing.assert_allclose(loss(scribbled_pred, scribbled_target, mask), expected, rtol=1e-5)
  assert loss(pred, target, np.zeros_like(mask)) == 0.0
  # Hiding one more patch does change it.
  more = mask.copy()
  more[0, np.flatnonzero(mask[0] == 0)[0]] = 1
  assert abs(loss(pred, target, more) - expected) > 1e-4
  if normalize:  # The pictures scale a normalised prediction back with the target's own statistics.
    back = mae_losses.denormalize_patches(jnp.asarray(reference_target, jnp.float32), jnp.asarray(target, jnp.float32))
    np.testing.assert_allclose(back, target, atol=1e-5)


# --------------------------------------------------------------------------- masks


def test_random_masking_keeps_round_n_quarter_distinct_patches_per_example():
  key = jax.random.key(3)
  assert [patch_ops.num_kept(n, 0.75) for n in (16, 49, 64)] == [4, 12, 16]  # round(N / 4); 12.25 -> 12
  assert patch_ops.num_kept(4, 0.9) == 1  # at least one patch stays visible
  for ratio, match in ((0.0, r"in \(0, 1\)"), (1.0, r"in \(0, 1\)"), (0.02, "hides none of the 16")):
    with pytest.raises(ValueError, match=match):
      patch_ops.num_kept(16, ratio)
  for num_patches, count in ((16, 4000), (49, 64)):
    kept = patch_ops.num_kept(num_patches, 0.75)
    keep, mask, restore = (
      np.asarray(x) for x in patch_ops.random_masking(key, jnp.arange(count), num_patches=num_patches, mask_ratio=0.75)
    )
    assert keep.shape == (count, kept) and mask.shape == restore.shape == (count, num_patches)
    for b in range(64):
      assert len(set(keep[b])) == kept and np.all(np.diff(keep[b]) > 0)  # distinct, increasing
      hidden = np.flatnonzero(mask[b])
      assert len(hidden) == num_patches - kept and not set(hidden) & set(keep[b])
      # restore puts [visible, hidden] back into patch order (MAE's ids_restore).
      np.testing.assert_array_equal(np.concatenate([keep[b], hidden])[restore[b]], np.arange(num_patches))
    assert len({tuple(row) for row in keep[:64]}) >= 62, "examples get their own masks"
  # Over many examples every patch is hidden about 75% of the time: no position is favoured.
  _, mask, _ = patch_ops.random_masking(key, jnp.arange(4000), num_patches=16, mask_ratio=0.75)
  np.testing.assert_allclose(np.asarray(mask).mean(0), 0.75, atol=0.03)
  # Example b's mask depends on its global index alone, not on its place in the array.
  reversed_ = patch_ops.random_masking(key, jnp.arange(4000)[::-1], num_patches=16, mask_ratio=0.75)[1]
  np.testing.assert_array_equal(reversed_, np.asarray(mask)[::-1])


def test_masks_are_the_same_on_one_and_eight_devices():
  key = jax.random.key(5)
  masks = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = parallel.make_mesh(devices)
    make = jax.jit(
      lambda k: patch_ops.random_masking(k, global_indices(32), num_patches=16, mask_ratio=0.75),
      out_shardings=parallel.batch_sharding(mesh),
    )
    masks.append(jax.device_get(make(key)))
  for one, eight in zip(*masks):
    np.testing.assert_array_equal(one, eight)


# --------------------------------------------------------------------------- the model


def test_decoder_position_embeddings_are_maes_sine_cosine():
  pe = sincos_2d(8, (2, 3))  # 6 patches; dims 0-3 encode the column, 4-7 the row
  assert pe.shape == (6, 8) and pe.dtype == np.float32
  omega = np.array([1.0, 1e-2])  # 10000^(-k / 2), k = 0, 1
  for n in range(6):
    row, col = divmod(n, 3)
    np.testing.assert_allclose(
      pe[n],
      np.concatenate([np.sin(col * omega), np.cos(col * omega), np.sin(row * omega), np.cos(row * omega)]),
      atol=1e-6,
    )
  with pytest.raises(ValueError, match="divisible by 4"):
    sincos_2d(6, (2, 2))


@pytest.mark.parametrize("kind", ["sincos", "learned"])
def test_encoder_position_embeddings_start_as_sine_cosine_and_stay_fixed(kind):
  """The paper's encoder has fixed 2-D sine-cosine position embeddings (a parameter with
  requires_grad=False): they start as the table and the optimizer never moves them, while every
  other parameter moves; ``learned`` starts from timm's normal and trains."""
  config = _config()
  config.mae.encoder_pos_embed = kind
  setup = train.make_setup(config)
  params = jax.device_get(train.create_state(setup, seed=0).params)
  pos_embed = params["encoder"]["patch_embed"]["pos_embed"]
  table = sincos_2d(pos_embed.shape[-1], (4, 4))[None]  # 16 px images in 4 px patches
  assert np.array_equal(pos_embed, table) == (kind == "sincos")
  grads = jax.tree.map(np.ones_like, params)
  updates = first_updates(setup.tx, grads, params)
  leaves = jax.tree_util.tree_leaves_with_path(updates)
  moved = {"/".join(k.key for k in path): bool(np.any(leaf != 0)) for path, leaf in leaves}
  assert moved.pop("encoder/patch_embed/pos_embed") == (kind == "learned")
  assert all(moved.values()), [name for name, m in moved.items() if not m]


def test_mae_is_registered_and_rejects_bad_settings():
  assert TASKS["mae"].__module__ == "jssl.tasks.mae"
  config = _config()
  assert config.mae.mask_ratio == 0.75 and config.mae.normalize_targets
  config.model.encoder, config.model.depth, config.model.patch_size = "resnet_tiny", 0, 0
  with pytest.raises(ValueError, match="needs a ViT encoder"):
    make_task(config)
  for key, value, match in (
    ("mask_ratio", 1.0, r"in \(0, 1\)"),
    ("decoder_heads", 3, "divisible by mae.decoder_heads"),
    ("decoder_depth", 0, "positive integer"),
  ):
    config = _config()
    config.mae[key] = value
    with pytest.raises(ValueError, match=match):
      make_task(config)


# --------------------------------------------------------------------------- sharded step


@pytest.fixture(scope="module")
def initial():
  """The smoke config's initial train state, on the host (an init compiles slowly: once per file)."""
  return jax.device_get(train.create_state(train.make_setup(_config()), seed=_config().seed))


@pytest.mark.slow
def test_eight_devices_match_one_device(initial):
  """Same global batch on 1 and 8 devices: the same loss, parameters and probe after an SGD step."""
  config = _config()
  config.optim.name, config.optim.base_lr = "sgd", 0.1
  results = {}
  for devices in (jax.devices()[:1], jax.devices()):
    setup = train.make_setup(config, mesh=parallel.make_mesh(devices))
    state = jax.device_put(initial.replace(opt_state=setup.tx.init(initial.params)), train.state_sharding(setup))
    state, metrics = train.make_train_step(setup)(state, parallel.global_batch(_batch(config), setup.mesh))
    results[len(devices)] = (jax.device_get(state), float(metrics["loss"]))
  (one, loss_one), (eight, loss_eight) = results[1], results[8]
  assert np.isfinite(loss_one) and loss_one > 0
  np.testing.assert_allclose(loss_eight, loss_one, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight)):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=2e-5)


# --------------------------------------------------------------------------- the smoke config end to end


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("mae")
  assert cli.main(["pretrain", "--config", SMOKE, "--workdir", str(workdir)]) == 0
  return workdir


@pytest.fixture(scope="module")
def trained(smoke_run):
  """The smoke run's setup and final state."""
  setup = train.make_setup(read_run_config(smoke_run))
  return setup, restore_run(setup, smoke_run)[0]


@pytest.mark.slow
def test_smoke_run_learns_and_writes_samples(smoke_run, trained, initial):
  metrics = read_metrics(smoke_run)
  setup, state = trained
  config, task, key = setup.config, setup.task, jax.random.key(0)
  steps, every = config.train.steps, config.train.eval_every
  assert [m["step"] for m in metrics] == list(range(1, steps + 1))
  scored = [m for m in metrics if "holdout_masked_mse" in m]
  assert [m["step"] for m in scored] == list(range(every, steps + 1, every)), "every train.eval_every steps"
  # Beats hidden patches filled flat at their own mean: the model predicts structure inside them.
  assert scored[-1]["holdout_masked_mse"] < 0.9 * scored[-1]["holdout_masked_mse_baseline"], scored[-1]
  for name in ("samples.png", "augmentations.png", "curves.png"):
    assert (smoke_run / name).stat().st_size > 1000, name

  images = jnp.asarray(train.to_host(Holdout(setup).images))  # held-out photo crops
  batch = {"image": jnp.round(images * 255).astype(jnp.uint8), "label": jnp.zeros(len(images), jnp.int32)}
  run = jax.jit(
    lambda params: (task.loss(params, {}, {}, batch, key, jnp.int32(0))[0], task.reconstruct(params, {}, images, key))
  )
  (before, _), (after, (rows, scores)) = run(initial.params), run(state.params)
  assert float(after) < float(before), (before, after)

  # The pictures: visible patches are the target's own pixels, hidden ones grey in the input.
  hidden = np.asarray(task.pixel_mask(task.masking(key, len(images))[1]))  # [N, S, S, 1]
  target = np.asarray(images)
  assert set(rows) == {"input (visible)", "prediction", "target"}
  np.testing.assert_array_equal(rows["target"], target)
  np.testing.assert_allclose(rows["input (visible)"], np.where(hidden > 0, 0.5, target), atol=1e-6)
  np.testing.assert_allclose(np.where(hidden > 0, 0, rows["prediction"]), np.where(hidden > 0, 0, target), atol=1e-6)
  assert np.all((rows["prediction"] >= 0) & (rows["prediction"] <= 1))
  assert np.abs(np.where(hidden > 0, rows["prediction"] - target, 0)).max() > 1e-3
  expected_mse = (((rows["prediction"] - target) ** 2) * hidden).sum((1, 2, 3)) / (hidden.sum((1, 2, 3)) * 3)
  np.testing.assert_allclose(scores["masked_mse"], expected_mse, rtol=1e-4)


@pytest.mark.slow
def test_decoder_puts_every_token_back_at_its_patch(trained):
  """Two copies of an image with the same visible patches, passed in opposite orders with
  their matching ``restore``: the same features and predictions (position lives in the
  embeddings and in ``restore``). A ``restore`` that does not match moves the predictions."""
  setup, state = trained
  model = setup.task.model
  assert list(state.params) == ["decoder", "encoder"] and state.batch_stats == {}
  images = jnp.asarray(np.repeat(_batch(setup.config)["image"][:1], 2, axis=0), jnp.float32) / 255
  visible = np.array([1, 6, 9, 14])
  hidden = np.setdiff1d(np.arange(16), visible)
  keep = np.stack([visible, visible[::-1]])
  restore = np.stack([np.argsort(np.concatenate([k, hidden])) for k in keep])
  unmatched = np.stack([restore[0], restore[0]])  # row 1's visible tokens land on the wrong patches

  @jax.jit
  def run(params, restore, unmatched):
    features, pred = model.apply({"params": params}, images, keep, restore, train=False)
    return features, pred, model.apply({"params": params}, images, keep, unmatched, train=False)[1]

  features, pred, moved = run(state.params, restore, unmatched)
  assert features.shape == (2, 192) and pred.shape == (2, 16, 48)
  np.testing.assert_allclose(features[1], features[0], atol=1e-5)
  np.testing.assert_allclose(pred[1], pred[0], atol=1e-5)
  assert np.abs(np.asarray(moved[1]) - np.asarray(pred[1])).max() > 1e-2
