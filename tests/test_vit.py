"""`jssl.models.vit`: ViT shapes, parameter counts, the token seam for masked modeling, bf16,
other image sizes (position embeddings resampled, against float64 NumPy and TF); then a ViT
through SimCLR pretraining, `jssl export` and `load_encoder`.

Full-size variants are only traced (``jax.eval_shape``): compiling 12 blocks takes CPU
minutes. What runs is vit_tiny cut to 2 blocks (``depth=2``, ``model.depth=2``) on 16 px
images with 4 px patches (16 tokens); the blocks are all alike, so that runs the same code.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO
from random_runs import write_random_run

import jssl
from jssl import cli, export
from jssl import config as config_lib
from jssl.models import ENCODERS, ViT, build_encoder, encoder_kwargs, make_encoder, vit
from jssl.models.vit import resize_pos_embed
from jssl.workdir import read_metrics

SMOKE = str(REPO / "configs" / "smoke.py")

# name: (dim, depth, heads, published parameter count with the 1000-class head). ViT-Ti is
# DeiT-Ti's 5.7M (Touvron et al. 2021); S and B are timm's vit_{small,base}_patch16_224.
PUBLISHED = {"vit_tiny": (192, 12, 3, 5.7e6), "vit_small": (384, 12, 6, 22.05e6), "vit_base": (768, 12, 12, 86.57e6)}


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _abstract_variables(model, size: int, batch: int = 1):
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((batch, size, size, 3)), train=False))


def _expected_count(*, dim: int, depth: int, patches: int, patch: int, channels: int = 3, mlp_ratio: int = 4) -> int:
  """Parameters of our ViT from the architecture (Python ints: exact)."""
  patch_embed = patch * patch * channels * dim + dim  # conv kernel + bias
  embeddings = patches * dim + dim  # position embeddings (patches only) + [CLS]
  hidden = mlp_ratio * dim
  block = (
    2 * dim  # norm1 scale, bias
    + dim * 3 * dim
    + 3 * dim  # qkv
    + dim * dim
    + dim  # attention output projection
    + 2 * dim  # norm2
    + dim * hidden
    + hidden
    + hidden * dim
    + dim
  )  # MLP
  return patch_embed + embeddings + depth * block + 2 * dim  # + final norm


@pytest.fixture(scope="module")
def tiny():
  """vit_tiny (2 blocks) with 4 px patches, its variables for 16 px images and a batch of 3 images."""
  model = make_encoder("vit_tiny", patch_size=4, depth=2)
  images = jax.random.uniform(jax.random.key(1), (3, 16, 16, 3))
  variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(images)
  return model, variables, images


def test_registry_and_num_features():
  assert {"vit_tiny", "vit_small", "vit_base"} <= set(ENCODERS)
  for name, (dim, _, _, _) in PUBLISHED.items():
    model = make_encoder(name, patch_size=16)
    assert isinstance(model, ViT) and model.num_features == dim


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_parameter_count_matches_the_architecture_and_the_published_size(name):
  dim, depth, heads, published = PUBLISHED[name]
  variables = _abstract_variables(make_encoder(name, patch_size=16), 224)
  assert list(variables) == ["params"]  # no batch norm
  count = _count(variables)
  assert count == _expected_count(dim=dim, depth=depth, patches=14 * 14, patch=16)
  without_head = published - (dim * 1000 + 1000)
  assert abs(count - without_head) / without_head < 0.02, (count, without_head)


def test_vit_tiny_224_has_the_expected_parameters():
  # timm's vit_tiny_patch16_224 has 5,717,416 with its head; we have no [CLS] position slot (-192).
  count = _count(_abstract_variables(make_encoder("vit_tiny", patch_size=16), 224))
  assert count == 5_717_416 - (192 * 1000 + 1000) - 192 == 5_524_224


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_output_shapes(name):
  dim = PUBLISHED[name][0]
  model = make_encoder(name, patch_size=4)
  variables = _abstract_variables(model, 8)
  features = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, 8, 8, 3)), train=True), variables)
  assert features.shape == (2, dim) and features.dtype == jnp.float32


def test_forward_gives_finite_features_that_differ_between_images(tiny):
  model, variables, images = tiny
  features = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, images)
  assert features.shape == (3, 192) and features.dtype == jnp.float32
  assert np.all(np.isfinite(features)) and np.std(np.asarray(features), axis=0).max() > 1e-3
  # The final LayerNorm (scale 1, bias 0 at init): each feature vector has mean 0 and variance 1.
  np.testing.assert_allclose(np.mean(features, axis=-1), 0, atol=1e-4)
  np.testing.assert_allclose(np.var(features, axis=-1), 1, atol=1e-2)


def test_position_embeddings_for_4px_patches_of_32px_images():
  model = make_encoder("vit_tiny", patch_size=4)
  params = _abstract_variables(model, 32)["params"]
  assert params["patch_embed"]["pos_embed"].shape == (1, 64, 192)  # 8 x 8 patches
  assert params["cls_token"].shape == (1, 1, 192)  # + [CLS]: 65 tokens
  assert params["patch_embed"]["proj"]["kernel"].shape == (4, 4, 3, 192)
  tokens = jax.eval_shape(lambda p: model.apply({"params": p}, jnp.zeros((2, 32, 32, 3)), method=ViT.embed), params)
  assert tokens.shape == (2, 64, 192)
  encoded = jax.eval_shape(
    lambda p, t: model.apply({"params": p}, t, train=False, method=ViT.encode_tokens), params, tokens
  )
  assert encoded.shape == (2, 65, 192)


def test_initialisation_follows_timm_and_big_vision(tiny):
  params = tiny[1]["params"]
  block = params["blocks_0"]
  for leaf in (params["cls_token"], params["patch_embed"]["pos_embed"]):
    assert 0.012 < float(jnp.std(leaf)) < 0.02 and float(jnp.max(jnp.abs(leaf))) <= 0.04 + 1e-6  # trunc-normal 0.02
  fc1 = block["mlp"]["fc1"]["kernel"]  # xavier-uniform: bound sqrt(6 / (fan_in + fan_out))
  bound = np.sqrt(6 / (192 + 768))
  assert float(jnp.max(jnp.abs(fc1))) <= bound and float(jnp.std(fc1)) > 0.9 * bound / np.sqrt(3)
  qkv = block["attn"]["qkv"]["kernel"]  # q, k and v each xavier-uniform over [192, 192]
  assert qkv.shape == (192, 576) and float(jnp.std(qkv)) > 0.9 * np.sqrt(2 / (192 + 192))
  for bias in (block["attn"]["qkv"]["bias"], block["mlp"]["fc2"]["bias"], params["patch_embed"]["proj"]["bias"]):
    assert not np.any(bias)
  np.testing.assert_array_equal(block["norm1"]["scale"], 1)


def test_token_seam_equals_the_forward_pass_and_takes_any_subset(tiny):
  model, variables, images = tiny

  @jax.jit
  def run(variables, images, keep):
    tokens = model.apply(variables, images, method=ViT.embed)
    full = model.apply(variables, tokens, train=False, method=ViT.encode_tokens)
    kept = jnp.take_along_axis(tokens, keep[..., None], axis=1)
    subset = model.apply(variables, kept, train=False, method=ViT.encode_tokens)
    return tokens, full, subset, model.apply(variables, images, train=False)

  keep = jnp.array([[0, 5, 9, 15], [15, 9, 5, 0], [1, 2, 3, 4]])  # row 1: row 0's tokens reversed
  tokens, full, subset, features = run(variables, images, keep)
  assert tokens.shape == (3, 16, 192) and full.shape == (3, 17, 192) and subset.shape == (3, 5, 192)
  np.testing.assert_allclose(full[:, 0], features, atol=1e-6, rtol=0)  # identical computation
  # Position is carried by the embeddings alone: the same tokens in another order give the same [CLS].
  same_tokens = run(variables, images[:1].repeat(3, 0), keep)[2]
  np.testing.assert_allclose(same_tokens[1, 0], same_tokens[0, 0], atol=1e-5, rtol=0)
  assert np.abs(np.asarray(subset[:, 0]) - np.asarray(features)).max() > 1e-2  # fewer tokens, other features


def test_bf16_computes_in_bf16_and_keeps_float32_params(tiny):
  reference_model, variables, images = tiny
  model = make_encoder("vit_tiny", patch_size=4, depth=2, dtype=jnp.bfloat16)
  params = _abstract_variables(model, 16)["params"]
  assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}

  @jax.jit  # One compilation for everything: on CPU that is what takes the time.
  def run(variables, images):
    tokens = model.apply(variables, images, method=ViT.embed)
    loss, grads = jax.value_and_grad(lambda v: jnp.sum(model.apply(v, images, train=True) ** 2))(variables)
    features = model.apply(variables, images, train=False)
    return tokens, loss, grads, features, reference_model.apply(variables, images, train=False)

  tokens, loss, grads, features, reference = run(variables, images)
  assert tokens.dtype == jnp.bfloat16 and features.dtype == jnp.float32
  assert np.isfinite(loss) and all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))
  # bf16 keeps 8 bits of mantissa (relative round-off 2^-9 per op); unit-variance features: within 0.05.
  np.testing.assert_allclose(features, reference, atol=0.05, rtol=0)


def test_wrong_image_sizes_are_errors(tiny):
  model, variables, _ = tiny
  with pytest.raises(ValueError, match="multiple of the patch size"):
    model.init(jax.random.key(0), jnp.zeros((1, 18, 18, 3)), train=False)
  with pytest.raises(ValueError, match=r"18x18 px do not split into 4x4 patches.*multiple of the patch size"):
    model.apply(variables, jnp.zeros((1, 18, 18, 3)), train=False)
  with pytest.raises(ValueError, match="initialised with square images, got 8x16 px"):
    model.init(jax.random.key(0), jnp.zeros((1, 8, 16, 3)), train=False)
  with pytest.raises(ValueError, match="hold 6 patches, not a square grid"):
    resize_pos_embed(jnp.zeros((1, 6, 5)), (3, 3))


# --------------------------------------------------------------------------- other image sizes


def _keys_cubic64(t):
  """Keys' cubic convolution kernel with a = -0.5 (Keys 1981), float64."""
  t = np.abs(t)
  near = (1.5 * t - 2.5) * t * t + 1
  far = ((-0.5 * t + 2.5) * t - 4) * t + 2
  return np.where(t < 1, near, np.where(t < 2, far, 0.0))


def _resample_matrix64(n_in: int, n_out: int):
  """``[n_out, n_in]`` float64 weights of the rule: half-pixel centres (align_corners=False),
  the kernel stretched by n_in / n_out when shrinking, weights over the grid's cells summed to 1."""
  stretch = max(n_in / n_out, 1.0)
  centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
  weights = _keys_cubic64((np.arange(n_in)[None, :] - centres[:, None]) / stretch)
  return weights / weights.sum(axis=1, keepdims=True)


def _resize64(pos_embed, grid):
  """The rule in float64 NumPy, separably: ``[1, g * g, D]`` -> ``[1, rows * cols, D]``."""
  side, dim = int(round(np.sqrt(pos_embed.shape[1]))), pos_embed.shape[2]
  square = np.asarray(pos_embed, np.float64).reshape(side, side, dim)
  out = np.einsum("ri,ijd,cj->rcd", _resample_matrix64(side, grid[0]), square, _resample_matrix64(side, grid[1]))
  return out.reshape(1, grid[0] * grid[1], dim)


@pytest.mark.parametrize("grid", [(2, 2), (3, 3), (8, 8), (5, 5), (2, 6), (7, 3)])
def test_resized_position_embeddings_match_numpy_and_tensorflow(grid):
  """Against the rule written out in float64 NumPy and against TF's own implementation of it
  (``tf.image.resize``, bicubic, antialiased): shrinking and growing, square and not."""
  import tensorflow as tf  # noqa: PLC0415

  pos_embed = np.random.default_rng(0).normal(size=(1, 16, 6)).astype(np.float32)  # a 4x4 grid
  out = np.asarray(jax.jit(resize_pos_embed, static_argnums=1)(jnp.asarray(pos_embed), grid))
  assert out.shape == (1, grid[0] * grid[1], 6) and out.dtype == np.float32
  np.testing.assert_allclose(out, _resize64(pos_embed, grid), atol=1e-5, rtol=0)
  resized = tf.image.resize(pos_embed.reshape(4, 4, 6), grid, method="bicubic", antialias=True)
  np.testing.assert_allclose(out, resized.numpy().reshape(1, -1, 6), atol=1e-5, rtol=0)


@pytest.mark.parametrize("grid", [(24, 24), (8, 8), (8, 24)])
def test_a_linear_embedding_stays_linear_away_from_the_borders(grid):
  """Keys' cubic reproduces linear functions: embeddings linear in the stored cell's position
  come out as the same function of the output cell's centre mapped onto the stored grid,
  ``(i + 0.5) * 16 / n - 0.5``, wherever the kernel sees only cells inside the grid (halving
  puts the centres midway between stored cells, where the stretched kernel is symmetric too)."""
  side = 16
  rows, cols = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
  linear = np.stack([rows, cols, 0.5 + 2 * rows - 3 * cols], axis=-1).reshape(1, side * side, 3)
  out = np.asarray(resize_pos_embed(jnp.asarray(linear, jnp.float32), grid)).reshape(*grid, 3)
  y, x = [(np.arange(n) + 0.5) * side / n - 0.5 for n in grid]
  expected = np.stack(np.broadcast_arrays(y[:, None], x[None, :], 0.5 + 2 * y[:, None] - 3 * x[None, :]), axis=-1)
  reach = [2 * max(side / n, 1) - 1 for n in grid]  # kernel radius, less the cell it may reach past
  inside = np.outer((y >= reach[0]) & (y <= side - 1 - reach[0]), (x >= reach[1]) & (x <= side - 1 - reach[1]))
  assert inside.sum() >= 4 and not inside.all()
  np.testing.assert_allclose(out[inside], expected[inside], atol=1e-4, rtol=0)
  # At the borders the weights are renormalised over the cells inside: not linear there.
  assert np.abs(out[~inside] - expected[~inside]).max() > 1e-2


def test_resampling_is_centred_keeps_constants_and_aligned_cells():
  rng = np.random.default_rng(1)
  pos_embed = jnp.asarray(rng.normal(size=(1, 25, 4)), jnp.float32)  # a 5x5 grid
  grid_of = lambda e, g: np.asarray(e).reshape(*g, -1)  # noqa: E731
  # Mirroring the grid commutes with resampling (no half-cell shift), at non-integer ratios too.
  mirrored = jnp.asarray(grid_of(pos_embed, (5, 5))[::-1, ::-1].reshape(1, 25, 4))
  for grid in [(3, 3), (7, 4), (12, 12)]:
    np.testing.assert_allclose(
      grid_of(resize_pos_embed(mirrored, grid), grid),
      grid_of(resize_pos_embed(pos_embed, grid), grid)[::-1, ::-1],
      atol=1e-5,
    )
  # A constant embedding stays that constant everywhere, borders included.
  constant = jnp.broadcast_to(jnp.arange(4.0), (1, 25, 4))
  np.testing.assert_allclose(
    resize_pos_embed(constant, (3, 7)), np.broadcast_to(np.arange(4.0), (1, 21, 4)), rtol=1e-5, atol=1e-6
  )
  # Growing 3x: every third cell, from the second, is centred on a stored cell and keeps it exactly.
  np.testing.assert_allclose(
    grid_of(resize_pos_embed(pos_embed, (15, 15)), (15, 15))[1::3, 1::3], grid_of(pos_embed, (5, 5)), atol=1e-6
  )


def test_a_vit_takes_smaller_and_larger_images_with_the_same_parameters(tiny):
  """Initialised at 16 px (4x4 patches), the ViT takes 8, 32 and 8x24 px images (the forward
  pass runs at 8 px, is traced at the others); its tokens for blank images are the
  (resampled) position embeddings, laid out row-major."""
  model, variables, _ = tiny
  pos_embed = variables["params"]["patch_embed"]["pos_embed"]
  bias = variables["params"]["patch_embed"]["proj"]["bias"]

  sizes = [(8, 8), (32, 32), (8, 24)]
  images = [jax.random.uniform(jax.random.key(2), (3, h, w, 3)) for h, w in sizes]

  @jax.jit  # One compilation for all sizes.
  def run(variables, images):
    tokens = [model.apply(variables, jnp.zeros_like(x), method=ViT.embed) for x in images]
    return tokens, model.apply(variables, images[0], train=False)

  all_tokens, features_8px = run(variables, images)
  forward = lambda v, x: model.apply(v, x, train=False)  # noqa: E731
  all_features = [features_8px] + [jax.eval_shape(forward, variables, x) for x in images[1:]]
  for (height, width), tokens, features in zip(sizes, all_tokens, all_features):
    grid = (height // 4, width // 4)
    assert tokens.shape == (3, grid[0] * grid[1], 192) and features.shape == (3, 192)
    np.testing.assert_allclose(tokens[0] - bias, _resize64(pos_embed, grid)[0], atol=1e-5, rtol=0)
  assert np.all(np.isfinite(features_8px)) and np.std(np.asarray(features_8px), axis=0).max() > 1e-3


def test_the_native_size_uses_the_stored_embeddings_exactly(tiny):
  model, variables, _ = tiny
  pos_embed = variables["params"]["patch_embed"]["pos_embed"]
  assert resize_pos_embed(pos_embed, (4, 4)) is pos_embed

  def embed(size):
    return jax.make_jaxpr(lambda v: model.apply(v, jnp.zeros((1, size, size, 3)), method=ViT.embed))(variables)

  # No resampling op in the graph at the initialisation size (the conv is a conv, not a dot).
  assert "dot_general" not in str(embed(16)) and "dot_general" in str(embed(32))
  tokens = model.apply(variables, jnp.zeros((2, 16, 16, 3)), method=ViT.embed)
  np.testing.assert_array_equal(tokens - variables["params"]["patch_embed"]["proj"]["bias"], np.repeat(pos_embed, 2, 0))


def test_gradients_reach_every_stored_embedding_from_another_size(tiny):
  """d sum(tokens) / d pos_embed through the resampling: each output cell's weights sum to
  1, so the gradients sum to batch x output cells for every channel, and every stored cell gets some."""
  model, variables, _ = tiny
  images = jnp.zeros((2, 8, 8, 3))  # a 2x2 grid from the stored 4x4
  grads = jax.grad(lambda v: jnp.sum(model.apply(v, images, method=ViT.embed)))(variables)
  grad = np.asarray(grads["params"]["patch_embed"]["pos_embed"])
  np.testing.assert_allclose(grad.sum(axis=1), 2 * 4, rtol=1e-5)
  assert np.all(np.abs(grad) > 1e-3)


def test_make_encoder_takes_only_the_family_kwargs():
  with pytest.raises(ValueError, match="vit_tiny takes patch_size, depth, dtype; got unexpected stem, width_mul"):
    make_encoder("vit_tiny", width_multiplier=1.0, stem="cifar")
  with pytest.raises(ValueError, match="resnet18 takes width_multiplier, stem, dtype; got unexpected patch_size"):
    make_encoder("resnet18", patch_size=4)
  with pytest.raises(ValueError, match="Unknown encoder 'vit_huge'.*vit_base"):
    make_encoder("vit_huge")
  assert vit("vit_small", patch_size=8).patch_size == 8
  assert vit("vit_small", depth=3).depth == 3 and vit("vit_small").depth == 12
  with pytest.raises(ValueError, match="at least 1"):
    vit("vit_small", depth=0)


def test_config_picks_the_patch_size_and_rejects_nonsense(smoke_config):
  config = smoke_config
  with config.unlocked():
    config.model.encoder = "vit_small"
    assert encoder_kwargs(config) == {"patch_size": 4, "depth": 12, "dtype": "float32"}  # 16 px: auto -> 4
    config.model.depth = 3
    assert encoder_kwargs(config)["depth"] == 3
    config.data.image_size = 224
    assert build_encoder(config).patch_size == 16  # > 64 px: auto -> 16
    config.model.patch_size = 14
    assert build_encoder(config).patch_size == 14
    config.model.patch_size = 15
    with pytest.raises(ValueError, match="does not split data.image_size=224"):
      build_encoder(config)
    config.model.patch_size = 0
    config.model.width_multiplier = 2.0
    with pytest.raises(ValueError, match="width_multiplier=2.0 scales ResNet widths"):
      build_encoder(config)
    config.model.encoder = "resnet_tiny"
    with pytest.raises(ValueError, match="model.depth=3 is for ViTs"):
      build_encoder(config)
    config.model.depth = 0
    assert encoder_kwargs(config) == {"width_multiplier": 2.0, "stem": "cifar", "dtype": "float32"}
    assert build_encoder(config).width == 32
    config.model.patch_size = 16
    with pytest.raises(ValueError, match="model.patch_size=16 is for ViTs"):
      build_encoder(config)


# --------------------------------------------------------------------------- SimCLR, export, load


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
  """Two SimCLR steps of vit_tiny (2 blocks) on the smoke recipe's 16 px images (4 px patches)."""
  workdir = tmp_path_factory.mktemp("vit_run")
  assert (
    cli.main(
      [
        "pretrain",
        "--config",
        SMOKE,
        "--workdir",
        str(workdir),
        "--config.model.encoder=vit_tiny",
        "--config.model.depth=2",
        "--config.train.steps=2",
      ]
    )
    == 0
  )
  return workdir


@pytest.fixture(scope="module")
def vit_weights(tmp_path_factory):
  """The same run's workdir with a random-filled checkpoint: export needs weights, not training."""
  workdir = tmp_path_factory.mktemp("vit_weights")
  config = config_lib.load_config(SMOKE)
  config.model.encoder, config.model.depth = "vit_tiny", 2
  write_random_run(config, workdir, steps=(2,))
  return workdir


@pytest.mark.slow
def test_simclr_pretrains_a_vit_with_finite_loss(vit_run):
  metrics = read_metrics(vit_run)
  assert [m["step"] for m in metrics] == [1, 2]
  assert all(np.isfinite(m["loss"]) and m["loss"] > 0 for m in metrics), metrics


@pytest.mark.slow
def test_vit_export_and_load_encoder_round_trip(vit_weights, tmp_path):
  from jssl.checkpoint import Checkpointer  # noqa: PLC0415
  from jssl.train import abstract_state, make_setup  # noqa: PLC0415

  config = config_lib.from_json((vit_weights / "config.json").read_text())
  setup = make_setup(config)
  checkpointer = Checkpointer(vit_weights, async_save=False)
  state = checkpointer.restore(abstract_state(setup))
  checkpointer.close()
  variables = setup.task.encoder_variables(state.params, state.batch_stats)
  assert variables["batch_stats"] == {}
  images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
  expected = np.asarray(
    jax.jit(lambda v, x: build_encoder(config).apply(v, x, train=False))(
      variables, jnp.asarray(images, jnp.float32) / 255
    )
  )

  for fmt in ("orbax", "npz"):
    out = export.export_encoder(vit_weights, tmp_path / fmt, format=fmt)
    metadata = json.loads((out / "jssl_encoder.json").read_text())
    assert metadata["architecture"] == {"name": "vit_tiny", "kwargs": {"patch_size": 4, "depth": 2, "dtype": "float32"}}
    assert metadata["num_features"] == 192 and metadata["input"]["image_size"] == 16
    encoder = jssl.load_encoder(out)
    assert encoder.batch_stats == {}
    np.testing.assert_array_equal(
      encoder.params["patch_embed"]["pos_embed"], variables["params"]["patch_embed"]["pos_embed"]
    )
    np.testing.assert_allclose(encoder(images), expected, atol=1e-5, rtol=1e-5)
  with np.load(tmp_path / "npz" / "encoder.npz", allow_pickle=False) as npz:
    assert {key.split("/")[0] for key in npz.files} == {"params"}
    assert npz["params/blocks_1/attn/qkv/kernel"].shape == (192, 576) and "params/blocks_2/norm1/scale" not in npz


def test_export_main_describes_a_vit(vit_weights, tmp_path, capsys):
  export.export_main(vit_weights, tmp_path / "printed", format="npz")
  printed = capsys.readouterr().out
  assert "vit_tiny encoder (192 features, patch_size 4, depth 2; network encoder)" in printed
  assert "jssl.load_encoder" in printed
