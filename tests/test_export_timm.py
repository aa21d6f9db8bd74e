"""`jssl export --format torch` of a ViT: timm's ``VisionTransformer`` key names and layouts.

One ViT workdir (vit_tiny cut to 2 blocks, 4 px patches on 32 px images) with a checkpoint of
random values. The expected names and shapes are written out from timm's documented
``VisionTransformer`` (``vit_tiny_patch16_224``: ``cls_token``, ``pos_embed`` with a [CLS]
slot, ``blocks.{i}.attn.qkv`` ...), not derived from jssl's mapping. A float64 NumPy forward
pass from the exported torch-layout tensors checks the layouts (q/k/v order, transposes, the
zero [CLS] position) against jssl's own features; the forward pass in timm itself runs only
where torch and timm are importable (see ``_torch_python``).
"""

import importlib.util
import json
import os
import struct
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO
from random_runs import write_random_run
from scipy.special import erf

from jssl import config as config_lib
from jssl import export
from jssl.export import writer
from jssl.models import build_encoder

SMOKE = REPO / "configs" / "smoke.py"
SIZE, PATCH, DEPTH, DIM, HEADS = 32, 4, 2, 192, 3  # vit_tiny: width 192, 3 heads
TOKENS = (SIZE // PATCH) ** 2  # 64 patches
# jssl's float32 forward against the float64 reference and against timm (features up to ~3):
# round-off through 2 blocks with random weights, measured 2.3e-6 and 2.6e-6. timm's exact GELU
# instead of the tanh one moves them by 6.4e-4 (measured), far above.
ATOL = 2e-5


def _timm_vit_tiny_shapes(depth: int, *, tokens: int, patch: int, channels: int = 3) -> dict[str, tuple]:
  """``timm.create_model("vit_tiny_patch16_224", num_classes=0, depth=depth, ...).state_dict()``
  names and shapes (timm 1.0's ``VisionTransformer``: class token, learned ``pos_embed``
  with a [CLS] slot, pre-norm blocks of ``norm1, attn.qkv, attn.proj, norm2, mlp.fc1,
  mlp.fc2``, final ``norm``; no ``head`` with ``num_classes=0``)."""
  d = DIM
  shapes = {
    "cls_token": (1, 1, d),
    "pos_embed": (1, 1 + tokens, d),
    "patch_embed.proj.weight": (d, channels, patch, patch),
    "patch_embed.proj.bias": (d,),
    "norm.weight": (d,),
    "norm.bias": (d,),
  }
  for i in range(depth):
    block = {
      "norm1.weight": (d,),
      "norm1.bias": (d,),
      "attn.qkv.weight": (3 * d, d),
      "attn.qkv.bias": (3 * d,),
      "attn.proj.weight": (d, d),
      "attn.proj.bias": (d,),
      "norm2.weight": (d,),
      "norm2.bias": (d,),
      "mlp.fc1.weight": (4 * d, d),
      "mlp.fc1.bias": (4 * d,),
      "mlp.fc2.weight": (d, 4 * d),
      "mlp.fc2.bias": (d,),
    }
    shapes |= {f"blocks.{i}.{name}": shape for name, shape in block.items()}
  return shapes


def _safetensors_header(path) -> dict:
  """The JSON header of a safetensors file: an 8-byte little-endian length, then the JSON."""
  with open(path, "rb") as f:
    (length,) = struct.unpack("<Q", f.read(8))
    return json.loads(f.read(length))


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
  """The ViT workdir, its encoder variables, and its torch and npz exports."""
  workdir = tmp_path_factory.mktemp("vit")
  config = config_lib.load_config(SMOKE)
  with config.unlocked():
    config.model.encoder, config.model.depth, config.model.patch_size = "vit_tiny", DEPTH, PATCH
    config.data.image_size, config.data.synthetic_shape = SIZE, (SIZE, SIZE, 3)
  setup, states = write_random_run(config, workdir, steps=(0,), seed=3)
  variables = jax.device_get(setup.task.encoder_variables(states[0].params, states[0].batch_stats))
  out = tmp_path_factory.mktemp("vit_exports")
  return {
    "config": config,
    "variables": variables,
    "torch": export.export_encoder(workdir, out / "torch", format="torch"),
    "workdir": workdir,
  }


@pytest.fixture(scope="module")
def images():
  return np.random.default_rng(0).integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8)


def _jssl_features(run, images) -> np.ndarray:
  """jssl's ViT on the run's own encoder variables (any image size: 4 px multiples)."""
  forward = jax.jit(lambda v, x: build_encoder(run["config"]).apply(v, x, train=False))
  return np.asarray(forward(run["variables"], jnp.asarray(images, jnp.float32) / 255))


@pytest.fixture(scope="module")
def jssl_features(vit_run, images):
  return _jssl_features(vit_run, images)


def _tensors(run) -> dict[str, np.ndarray]:
  from safetensors.numpy import load_file  # noqa: PLC0415

  return load_file(str(run["torch"] / "encoder.safetensors"))


def test_vit_torch_export_has_timm_names_shapes_and_values(vit_run):
  tensors = _tensors(vit_run)
  expected = _timm_vit_tiny_shapes(DEPTH, tokens=TOKENS, patch=PATCH)
  assert set(tensors) == set(expected)  # all of timm's state_dict, nothing else
  for key, shape in expected.items():
    assert tensors[key].shape == shape and tensors[key].dtype == np.float32, key

  params = vit_run["variables"]["params"]
  np.testing.assert_array_equal(tensors["cls_token"], params["cls_token"])
  # timm adds pos_embed[:, 0] to [CLS]; jssl's position embeddings cover the patches only.
  np.testing.assert_array_equal(tensors["pos_embed"][:, 0], 0.0)
  np.testing.assert_array_equal(tensors["pos_embed"][:, 1:], params["patch_embed"]["pos_embed"])
  np.testing.assert_array_equal(
    tensors["patch_embed.proj.weight"], np.transpose(params["patch_embed"]["proj"]["kernel"], (3, 2, 0, 1))
  )
  np.testing.assert_array_equal(tensors["blocks.1.attn.qkv.weight"], params["blocks_1"]["attn"]["qkv"]["kernel"].T)
  np.testing.assert_array_equal(tensors["blocks.0.mlp.fc2.bias"], params["blocks_0"]["mlp"]["fc2"]["bias"])
  np.testing.assert_array_equal(tensors["norm.weight"], params["norm"]["scale"])


def test_every_safetensors_file_says_format_pt(vit_run, tmp_path):
  # transformers' and timm's safetensors loaders look for {"format": "pt"} in __metadata__.
  assert _safetensors_header(vit_run["torch"] / "encoder.safetensors")["__metadata__"] == {"format": "pt"}
  resnet = tmp_path / "resnet"
  write_random_run(config_lib.load_config(SMOKE), resnet, steps=(0,))  # resnet_tiny
  out = export.export_encoder(resnet, tmp_path / "resnet_torch", format="torch")
  assert _safetensors_header(out / "encoder.safetensors")["__metadata__"] == {"format": "pt"}


def test_vit_export_metadata_holds_the_timm_recipe(vit_run):
  metadata = json.loads((vit_run["torch"] / "jssl_encoder.json").read_text())
  assert "torchvision" not in metadata and metadata["format"] == "torch"
  recipe = metadata["timm"]
  assert recipe["constructor"] == (
    'timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32, '
    'patch_size=4, depth=2, global_pool="token", act_layer="gelu_tanh")'
  )
  assert "gelu_tanh" in recipe["note"] and "zeros" in recipe["note"] and "dynamic_img_size" in recipe["note"]
  with pytest.raises(ValueError, match="export-only.*'torchvision' or 'timm'"):
    export.load_encoder(vit_run["torch"])


def test_grayscale_input_is_in_the_recipe():
  recipe = export.timm_recipe("vit_small", patch_size=16, depth=12, image_size=224, channels=1)
  assert '"vit_small_patch16_224"' in recipe["constructor"] and "in_chans=1" in recipe["constructor"]


def _layer_norm(x, weight, bias, eps=1e-6):
  return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * weight + bias


def _gelu(x, *, tanh: bool):
  if tanh:
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
  return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def _timm_vit_forward(tensors: dict, images: np.ndarray, *, heads: int, tanh_gelu: bool = True) -> np.ndarray:
  """timm's ``VisionTransformer.forward`` (global_pool="token", no head) in float64 NumPy on a
  torch-layout state_dict: ``images`` ``[B, H, W, C]`` in [0, 1] -> ``[B, D]``."""
  t = {key: np.asarray(value, np.float64) for key, value in tensors.items()}
  weight = t["patch_embed.proj.weight"]  # [D, C, p, p]
  dim, p = weight.shape[0], weight.shape[-1]
  b, h, w, c = images.shape
  patches = images.reshape(b, h // p, p, w // p, p, c)
  x = np.einsum("bhiwjc,dcij->bhwd", patches, weight).reshape(b, -1, dim) + t["patch_embed.proj.bias"]
  x = np.concatenate([np.broadcast_to(t["cls_token"], (b, 1, dim)), x], axis=1) + t["pos_embed"]
  tokens, head_dim = x.shape[1], dim // heads
  depth = len({key.split(".")[1] for key in t if key.startswith("blocks.")})
  for i in range(depth):
    block = {key.removeprefix(f"blocks.{i}."): value for key, value in t.items() if key.startswith(f"blocks.{i}.")}
    y = _layer_norm(x, block["norm1.weight"], block["norm1.bias"])
    qkv = (y @ block["attn.qkv.weight"].T + block["attn.qkv.bias"]).reshape(b, tokens, 3, heads, head_dim)
    q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each [B, heads, T, head_dim]
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim)
    attn = np.exp(logits - logits.max(-1, keepdims=True))
    attn /= attn.sum(-1, keepdims=True)
    y = (attn @ v).transpose(0, 2, 1, 3).reshape(b, tokens, dim)
    x = x + y @ block["attn.proj.weight"].T + block["attn.proj.bias"]
    y = _layer_norm(x, block["norm2.weight"], block["norm2.bias"])
    y = _gelu(y @ block["mlp.fc1.weight"].T + block["mlp.fc1.bias"], tanh=tanh_gelu)
    x = x + y @ block["mlp.fc2.weight"].T + block["mlp.fc2.bias"]
  return _layer_norm(x, t["norm.weight"], t["norm.bias"])[:, 0]


def test_numpy_forward_from_the_timm_layout_reproduces_jssl_features(vit_run, images, jssl_features):
  tensors = _tensors(vit_run)
  reference = _timm_vit_forward(tensors, images / 255.0, heads=HEADS)
  assert jssl_features.shape == reference.shape == (6, DIM)
  assert np.std(jssl_features, axis=0).max() > 0.1, "features vary between images (the comparison means something)"
  np.testing.assert_allclose(jssl_features, reference, rtol=0, atol=ATOL)
  # timm's default, exact GELU is measurably another function: why the recipe sets act_layer.
  exact = _timm_vit_forward(tensors, images / 255.0, heads=HEADS, tanh_gelu=False)
  assert np.abs(exact - jssl_features).max() > 10 * ATOL


def test_export_main_prints_the_timm_constructor(vit_run, tmp_path, capsys):
  export.export_main(vit_run["workdir"], tmp_path / "printed", format="torch")
  printed = capsys.readouterr().out
  assert 'model = timm.create_model("vit_tiny_patch16_224"' in printed and "load_state_dict" in printed


def test_a_family_without_a_torch_layout_is_refused_naming_the_formats(vit_run, tmp_path, monkeypatch):
  monkeypatch.delitem(writer.TORCH_LAYOUTS, "vit")
  with pytest.raises(ValueError, match=r"no layout for vit encoders such as 'vit_tiny'.*'orbax' or 'npz'"):
    export.export_encoder(vit_run["workdir"], tmp_path / "torch", format="torch")
  assert not (tmp_path / "torch").exists()  # refused before anything is written


# --------------------------------------------------------------------------- timm itself


def _torch_python(*modules: str) -> str:
  """The interpreter for the torch side: ``$JSSL_TORCH_PYTHON`` (e.g. a venv with torch and timm;
  then they must import) or this one, if it has ``modules`` (checked for, not imported: torch
  loaded after TensorFlow can crash the process, so the torch side runs in a child process)."""
  python = os.environ.get("JSSL_TORCH_PYTHON")
  if python:
    subprocess.run([python, "-c", f"import {', '.join(modules)}"], check=True, timeout=300)
    return python
  for module in modules:
    if importlib.util.find_spec(module) is None:
      pytest.skip(f"{module} is not installed (set JSSL_TORCH_PYTHON to an interpreter that has it)")
  return sys.executable


_TIMM_FORWARD = """
import json, sys
import numpy as np, timm, torch
from safetensors.torch import load_file
export_dir, images, big_images, out = sys.argv[1:]
recipe = json.load(open(f"{export_dir}/jssl_encoder.json"))["timm"]
weights = load_file(f"{export_dir}/encoder.safetensors")
def features(constructor, images):
  model = eval(constructor)
  model.load_state_dict(weights)  # strict: every key, no extras
  model.eval()
  with torch.no_grad():
    return model(torch.from_numpy(np.load(images).astype(np.float32) / 255).permute(0, 3, 1, 2)).numpy()
constructor = recipe["constructor"]
np.savez(
  out,
  recipe=features(constructor, images),
  exact_gelu=features(constructor.replace(', act_layer="gelu_tanh"', ""), images),
  dynamic=features(constructor[:-1] + ", dynamic_img_size=True)", big_images),
)
"""


def test_timm_forward_matches(vit_run, images, jssl_features, tmp_path):
  python = _torch_python("torch", "timm")
  big = np.random.default_rng(1).integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)  # a 12x12 grid
  np.save(tmp_path / "images.npy", images)
  np.save(tmp_path / "big.npy", big)
  command = [
    python,
    "-c",
    _TIMM_FORWARD,
    str(vit_run["torch"]),
    *(str(tmp_path / n) for n in ("images.npy", "big.npy")),
  ]
  subprocess.run([*command, str(tmp_path / "timm.npz")], check=True, timeout=300)
  with np.load(tmp_path / "timm.npz") as timm:
    theirs = dict(timm)
  assert theirs["recipe"].shape == (6, DIM)
  np.testing.assert_allclose(theirs["recipe"], jssl_features, rtol=0, atol=ATOL)
  assert np.abs(theirs["exact_gelu"] - jssl_features).max() > 10 * ATOL  # act_layer matters
  # Other image sizes: timm resamples pos_embed (without its [CLS] slot) by jssl's rule.
  np.testing.assert_allclose(theirs["dynamic"], _jssl_features(vit_run, big), rtol=0, atol=ATOL)
