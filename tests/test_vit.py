"""`jssl.models.vit`: ViT shapes, parameter counts, the token seam for masked modeling, bf16;
then a ViT through SimCLR pretraining, `jssl export` and `load_encoder`.

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

import jssl
from jssl import cli, export
from jssl import config as config_lib
from jssl.models import ENCODERS, ViT, make_encoder, vit
from jssl.tasks import build_encoder, encoder_kwargs
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
  with pytest.raises(ValueError, match="made for 16"):
    model.apply(variables, jnp.zeros((1, 32, 32, 3)), train=False)


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


@pytest.mark.slow
def test_simclr_pretrains_a_vit_with_finite_loss(vit_run):
  metrics = read_metrics(vit_run)
  assert [m["step"] for m in metrics] == [1, 2]
  assert all(np.isfinite(m["loss"]) and m["loss"] > 0 for m in metrics), metrics


@pytest.mark.slow
def test_vit_export_and_load_encoder_round_trip(vit_run, tmp_path):
  from jssl.checkpoint import Checkpointer  # noqa: PLC0415
  from jssl.train import abstract_state, make_setup  # noqa: PLC0415

  config = config_lib.from_json((vit_run / "config.json").read_text())
  setup = make_setup(config)
  checkpointer = Checkpointer(vit_run, async_save=False)
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
    out = export.export_encoder(vit_run, tmp_path / fmt, format=fmt)
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


def test_torch_export_of_a_vit_is_refused_naming_the_formats(vit_run, tmp_path):
  with pytest.raises(ValueError, match=r"ResNet encoders only, not 'vit_tiny'.*'orbax' or 'npz'"):
    export.export_encoder(vit_run, tmp_path / "torch", format="torch")
  assert not (tmp_path / "torch").exists()  # refused before anything is written


def test_export_main_describes_a_vit(vit_run, tmp_path, capsys):
  export.export_main(vit_run, tmp_path / "printed", format="npz")
  printed = capsys.readouterr().out
  assert "vit_tiny encoder (192 features, patch_size 4, depth 2)" in printed and "jssl.load_encoder" in printed
