"""`jssl.export`: encoder export (orbax, npz, torch/safetensors) and `load_encoder`.

One smoke run's workdir per module with random-filled checkpoints at steps 4, 8, 12
(``random_runs``: export needs weights, not training), and one ResNet-18 workdir holding a
checkpoint of random values for the torchvision layout.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, first_updates
from PIL import Image
from random_runs import write_random_run

import jssl
from jssl import cli, export
from jssl import config as config_lib
from jssl.checkpoint import Checkpointer
from jssl.models import build_encoder
from jssl.train import abstract_state, make_setup

SMOKE = str(REPO / "configs" / "smoke.py")
# Features compared across two jitted forward passes of the same weights on the same
# device: only float32 round-off differs, far below this.
ATOL = RTOL = 1e-5
LATEST, OLDER = 12, 4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  write_random_run(config_lib.load_config(SMOKE), workdir, steps=(OLDER, 8, LATEST))
  return workdir


@pytest.fixture(scope="module")
def images():
  rng = np.random.default_rng(0)
  return rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)


def _reference_features(workdir, step, images):
  """Features straight from the training state's encoder variables."""
  config = config_lib.from_json((workdir / "config.json").read_text())
  setup = make_setup(config)
  checkpointer = Checkpointer(workdir, async_save=False)
  state = checkpointer.restore(abstract_state(setup), step=step)
  checkpointer.close()
  variables = setup.task.encoder_variables(state.params, state.batch_stats)
  forward = jax.jit(lambda v, x: build_encoder(config).apply(v, x, train=False))
  return np.asarray(forward(variables, jnp.asarray(images, jnp.float32) / 255)), jax.device_get(variables)


@pytest.fixture(scope="module")
def reference(run, images):
  return _reference_features(run, LATEST, images)


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
  root = tmp_path_factory.mktemp("exports")
  return {fmt: export.export_encoder(run, root / fmt, format=fmt) for fmt in ("orbax", "npz")}


@pytest.mark.parametrize("fmt", ["orbax", "npz"])
def test_loaded_encoder_reproduces_the_training_state_features(exported, reference, images, fmt):
  encoder = jssl.load_encoder(exported[fmt])
  features = encoder(images)
  expected, variables = reference
  assert features.shape == (12, 128) and features.dtype == np.float32
  assert np.std(expected, axis=0).max() > 1e-3, "features vary between images (the comparison means something)"
  np.testing.assert_allclose(features, expected, atol=ATOL, rtol=RTOL)
  # Exactly the training state's encoder variables, BN statistics included.
  np.testing.assert_array_equal(
    encoder.batch_stats["layer1_0"]["bn1"]["var"], variables["batch_stats"]["layer1_0"]["bn1"]["var"]
  )
  np.testing.assert_array_equal(encoder.params["conv1"]["kernel"], variables["params"]["conv1"]["kernel"])


def test_input_kinds_give_the_same_features(exported, images):
  encoder = export.load_encoder(exported["npz"])
  as_uint8 = encoder(images)
  np.testing.assert_allclose(encoder(images.astype(np.float32) / 255), as_uint8, atol=ATOL, rtol=RTOL)
  np.testing.assert_allclose(encoder(images, batch_size=5), as_uint8, atol=ATOL, rtol=RTOL)  # chunked, padded
  gray = images[..., :1]
  np.testing.assert_allclose(encoder(gray), encoder(np.repeat(gray, 3, axis=-1)), atol=ATOL, rtol=RTOL)
  big = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)  # 32 px, resized back to 16
  resized = np.asarray(jax.image.resize(big.astype(np.float32) / 255, (12, 16, 16, 3), "bilinear"))
  np.testing.assert_allclose(encoder(big), encoder(resized), atol=1e-4, rtol=1e-4)
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    encoder(images.astype(np.float32))  # 0..255 floats: not what the encoder was trained on
  with pytest.raises(ValueError, match="channels"):
    encoder(images[..., :2])


def test_metadata_describes_architecture_input_and_source(run, exported):
  metadata = json.loads((exported["orbax"] / "jssl_encoder.json").read_text())
  assert metadata["format_version"] == 1 and metadata["format"] == "orbax"
  assert metadata["architecture"] == {
    "name": "resnet_tiny",
    "kwargs": {"width_multiplier": 1.0, "stem": "cifar", "dtype": "float32"},
  }
  assert metadata["num_features"] == 128
  assert metadata["input"] == {
    "image_size": 16,
    "channels": 3,
    "value_range": [0, 1],
    "normalization": "none",
    "grayscale_to_rgb": True,
  }
  assert metadata["source_run"]["step"] == LATEST
  assert metadata["source_run"]["workdir"] == str(run.resolve())
  assert metadata["source_run"]["config"] == json.loads((run / "config.json").read_text())
  assert sorted(p.name for p in exported["orbax"].iterdir()) == ["jssl_encoder.json", "variables"]
  assert sorted(p.name for p in exported["npz"].iterdir()) == ["encoder.npz", "jssl_encoder.json"]
  assert jssl.load_encoder is export.load_encoder
  assert jssl.load_encoder(exported["orbax"] / "jssl_encoder.json").metadata == metadata


def test_step_exports_an_older_checkpoint(run, exported, images, tmp_path):
  out = export.export_encoder(run, tmp_path / "old", step=OLDER, format="npz")
  assert json.loads((out / "jssl_encoder.json").read_text())["source_run"]["step"] == OLDER
  old = export.load_encoder(out)(images)
  np.testing.assert_allclose(old, _reference_features(run, OLDER, images)[0], atol=ATOL, rtol=RTOL)
  assert np.abs(old - export.load_encoder(exported["npz"])(images)).max() > 1e-3
  with pytest.raises(ValueError, match="available steps: 4, 8, 12"):
    export.export_encoder(run, tmp_path / "missing", step=5)


def _copy_export(src, dst):
  dst.mkdir()
  for path in src.iterdir():
    (dst / path.name).write_bytes(path.read_bytes())
  return dst


def test_unreadable_metadata_fails_before_loading(exported, tmp_path):
  edited = _copy_export(exported["npz"], tmp_path / "edited")
  (edited / "encoder.npz").write_bytes(b"not an npz")  # Reading it would fail differently.
  metadata = json.loads((edited / "jssl_encoder.json").read_text())
  for change, message in (
    ({"architecture": {"name": "vit_giant", "kwargs": {}}}, "unknown architecture 'vit_giant'"),
    ({"format": "torch"}, "export-only"),
    ({"format": "onnx"}, "unknown format"),
    ({"format_version": 2}, "format_version 2"),
  ):
    (edited / "jssl_encoder.json").write_text(json.dumps({**metadata, **change}))
    with pytest.raises(ValueError, match=message):
      export.load_encoder(edited)
  with pytest.raises(FileNotFoundError, match="not a `jssl export` directory"):
    export.load_encoder(tmp_path)


def test_npz_is_plain_arrays_and_shape_mismatch_names_the_key(exported, tmp_path):
  with np.load(exported["npz"] / "encoder.npz", allow_pickle=False) as npz:
    arrays = {key: npz[key] for key in npz.files}
  assert {key.split("/")[0] for key in arrays} == {"params", "batch_stats"}
  assert arrays["params/layer1_0/conv1/kernel"].shape == (3, 3, 16, 16)
  assert arrays["batch_stats/layer2_0/downsample_bn/mean"].shape == (32,)
  assert all(a.dtype == np.float32 for a in arrays.values())

  edited = _copy_export(exported["npz"], tmp_path / "edited")
  bad = dict(arrays)
  bad["params/layer2_0/conv2/kernel"] = bad["params/layer2_0/conv2/kernel"][..., :-1]
  np.savez(edited / "encoder.npz", **bad)
  with pytest.raises(ValueError, match=r"'params/layer2_0/conv2/kernel' has shape \(3, 3, 32, 31\)"):
    export.load_encoder(edited)
  del bad["params/layer2_0/conv2/kernel"]
  np.savez(edited / "encoder.npz", **bad)
  with pytest.raises(ValueError, match="'params/layer2_0/conv2/kernel'.*missing"):
    export.load_encoder(edited)


def test_out_dir_is_checked_before_writing(run, tmp_path):
  a_file = tmp_path / "file"
  a_file.write_text("keep")
  with pytest.raises(ValueError, match="is a file"):
    export.export_encoder(run, a_file)
  with pytest.raises(ValueError, match="workdir"):
    export.export_encoder(run, run)
  full = tmp_path / "full"
  full.mkdir()
  (full / "notes.txt").write_text("mine")
  with pytest.raises(ValueError, match="not empty"):
    export.export_encoder(run, full)
  assert sorted(p.name for p in full.iterdir()) == ["notes.txt"]
  # A path with `..` resolves where it says; overwrite keeps files that are not the export's.
  out = export.export_encoder(run, tmp_path / "sub" / ".." / "full", format="npz", overwrite=True)
  assert out == full.resolve() and (full / "notes.txt").read_text() == "mine"
  assert sorted(p.name for p in full.iterdir()) == ["encoder.npz", "jssl_encoder.json", "notes.txt"]
  # An export file that is a link (e.g. to outside the directory) is never written through.
  outside = tmp_path / "outside.npz"
  outside.write_text("untouched")
  (full / "encoder.npz").unlink()
  os.symlink(outside, full / "encoder.npz")
  with pytest.raises(ValueError, match="link or resolves outside"):
    export.export_encoder(run, full, format="npz", overwrite=True)
  assert outside.read_text() == "untouched"


# --------------------------------------------------------------------------- without the training data


def _image_folder(root, *, classes=10, train=4, test=2):
  """``root/{train,test}/class_<c>/<i>.png``: random 16 px colour images."""
  rng = np.random.default_rng(0)
  for split, count in (("train", train), ("test", test)):
    for c in range(classes):
      folder = root / split / f"class_{c}"
      folder.mkdir(parents=True)
      for i in range(count):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
  return root


def test_export_reads_no_data_and_eval_says_where_to_point(run, reference, images, tmp_path, capsys):
  """The fast twin of the test below: the module's run, its config naming a folder that is not there."""
  moved = shutil.copytree(run, tmp_path / "run")
  record = json.loads((moved / "config.json").read_text())
  gone = tmp_path / "gone"
  record["data"]["source"] = f"image_folder:{gone}"
  (moved / "config.json").write_text(json.dumps(record))
  out = export.export_encoder(moved, tmp_path / "encoder", format="npz")  # from the recorded data facts
  np.testing.assert_allclose(export.load_encoder(out)(images), reference[0], atol=ATOL, rtol=RTOL)
  assert cli.main(["eval", "--workdir", str(moved)]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and str(gone) in err and "--config.data.dir=DIR" in err, err


def test_data_dir_moves_a_folder_source():
  from jssl.evaluate import moved_to  # noqa: PLC0415

  assert moved_to("image_folder:/old", "/new") == "image_folder"  # data.dir then names the folder
  assert moved_to("video_folder:/old", "/new") == "video_folder"
  assert moved_to("image_folder:/old", "") == "image_folder:/old"
  assert moved_to("fashion_mnist", "/new") == "fashion_mnist" and moved_to("tfds:cifar10", "/new") == "tfds:cifar10"


@pytest.mark.slow
def test_export_and_eval_work_after_the_training_data_is_gone(tmp_path, images, capsys):
  """The run's config.json records what its state's shapes depend on in the data, so export
  restores it without the data; eval's probes read a copy of the data given by data.dir."""
  data = _image_folder(tmp_path / "data")
  copy = shutil.copytree(data, tmp_path / "copy")
  workdir = tmp_path / "run"
  # Ten classes, batch 32 and 12 steps: the module's smoke run's train step, from the compilation cache.
  args = ["pretrain", "--config", SMOKE, "--workdir", str(workdir), "--config.train.steps=12"]
  assert cli.main([*args, f"--config.data.source=image_folder:{data}"]) == 0
  facts = json.loads((workdir / "config.json").read_text())["data_facts"]
  assert facts["source"] == f"image_folder:{data}" and facts["num_examples"] == {"train": 40, "test": 20}
  assert (facts["num_classes"], facts["channels"], facts["image_shape"]) == (10, 3, None)
  expected = _reference_features(workdir, LATEST, images)[0]  # built from the data, while it is there
  shutil.rmtree(data)

  out = tmp_path / "encoder"
  assert cli.main(["export", "--workdir", str(workdir), "--out", str(out), "--format", "npz"]) == 0
  np.testing.assert_allclose(export.load_encoder(out)(images), expected, atol=ATOL, rtol=RTOL)
  capsys.readouterr()

  # The probes need labelled images: without them, one line that says where to point.
  assert cli.main(["eval", "--workdir", str(workdir)]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and str(data) in err and "--config.data.dir=DIR" in err, err
  probe = ["--config.eval.knn_ks=(5,)", "--config.eval.linear_l2_grid=(0.01,)", "--config.eval.linear_max_iter=50"]
  assert cli.main(["eval", "--workdir", str(workdir), f"--config.data.dir={copy}", *probe]) == 0
  results = json.loads((workdir / "eval.json").read_text())
  assert (results["step"], results["num_train"], results["num_test"]) == (LATEST, 40, 20)
  assert 0 <= results["linear_top1"] <= 1 and 0 <= results["knn_k5_top1"] <= 1
  # Only where the data is may change: the model's settings stay the run's.
  assert cli.main(["eval", "--workdir", str(workdir), "--config.data.image_size=32"]) == 2
  assert "--config.data.dir=DIR" in capsys.readouterr().err


def test_flat_keys_are_the_npz_format():
  from flax.core import FrozenDict  # noqa: PLC0415

  from jssl.export import layout  # noqa: PLC0415

  kernel, mean = np.ones((3, 3, 1, 2)), np.zeros(2)
  variables = {"params": FrozenDict({"conv1": {"kernel": kernel}, "empty": {}}), "batch_stats": {"bn1": {"mean": mean}}}
  flat = layout.flatten(variables)
  assert set(flat) == {"params/conv1/kernel", "batch_stats/bn1/mean"}  # empty sub-trees are left out
  assert flat["params/conv1/kernel"] is kernel
  assert layout.unflatten(flat) == {"params": {"conv1": {"kernel": kernel}}, "batch_stats": {"bn1": {"mean": mean}}}
  with pytest.raises(ValueError, match="'a/b' under 'params' contains '/'"):
    layout.flatten({"params": {"a/b": {"kernel": kernel}}})


# --------------------------------------------------------------------------- torch layout


def _resnet18_keys() -> set[str]:
  """torchvision.models.resnet18().state_dict() keys, without fc.weight / fc.bias."""

  def bn(prefix):
    return {f"{prefix}.{leaf}" for leaf in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}

  keys = {"conv1.weight"} | bn("bn1")
  for layer in range(1, 5):
    for block in range(2):
      prefix = f"layer{layer}.{block}"
      keys |= {f"{prefix}.conv1.weight", f"{prefix}.conv2.weight"} | bn(f"{prefix}.bn1") | bn(f"{prefix}.bn2")
      if layer > 1 and block == 0:
        keys |= {f"{prefix}.downsample.0.weight"} | bn(f"{prefix}.downsample.1")
  return keys


@pytest.fixture(scope="module")
def resnet18_run(tmp_path_factory):
  """A ResNet-18 workdir with one checkpoint of random values (BN included, so every mapped
  tensor matters), made from the state's shapes without compiling anything."""
  workdir = tmp_path_factory.mktemp("resnet18")
  config = config_lib.load_config(REPO / "configs" / "smoke.py")
  with config.unlocked():
    config.model.encoder, config.optim.name = "resnet18", "sgd"
  _, states = write_random_run(config, workdir, steps=(0,), seed=1)
  state = states[0]
  out = tmp_path_factory.mktemp("resnet18_exports")
  return {
    "workdir": workdir,
    "state": state,
    "torch": export.export_encoder(workdir, out / "torch", format="torch"),
    "npz": export.export_encoder(workdir, out / "npz", format="npz"),
  }


def test_torch_export_has_torchvision_resnet18_keys_and_layouts(resnet18_run):
  from safetensors.numpy import load_file  # noqa: PLC0415

  tensors = load_file(str(resnet18_run["torch"] / "encoder.safetensors"))
  assert set(tensors) == _resnet18_keys()  # all of resnet18().state_dict() except fc.*
  shapes = {
    "conv1.weight": (64, 3, 3, 3),
    "layer1.0.conv1.weight": (64, 64, 3, 3),
    "layer2.0.conv1.weight": (128, 64, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer4.1.conv2.weight": (512, 512, 3, 3),
    "layer4.1.bn2.running_var": (512,),
    "bn1.num_batches_tracked": (),
  }
  for key, shape in shapes.items():
    assert tensors[key].shape == shape, key
  assert tensors["bn1.num_batches_tracked"].dtype == np.int64
  encoder = resnet18_run["state"].params["encoder"]
  stats = resnet18_run["state"].batch_stats["encoder"]
  np.testing.assert_array_equal(
    tensors["layer3.0.downsample.0.weight"],
    np.transpose(encoder["layer3_0"]["downsample_conv"]["kernel"], (3, 2, 0, 1)),
  )
  np.testing.assert_array_equal(tensors["layer2.1.bn2.weight"], encoder["layer2_1"]["bn2"]["scale"])
  np.testing.assert_array_equal(
    tensors["layer4.0.downsample.1.running_mean"], stats["layer4_0"]["downsample_bn"]["mean"]
  )
  metadata = json.loads((resnet18_run["torch"] / "jssl_encoder.json").read_text())
  recipe = metadata["torchvision"]
  assert recipe["constructor"] == "torchvision.models.resnet18(weights=None)"
  assert recipe["replace"]["maxpool"] == "torch.nn.Identity()" and "stride=1" in recipe["replace"]["conv1"]
  with pytest.raises(ValueError, match="export-only"):
    export.load_encoder(resnet18_run["torch"])


_TORCH_FORWARD = """
import sys
import numpy as np, torch, torchvision
from safetensors.torch import load_file
weights, images, out = sys.argv[1:]
model = torchvision.models.resnet18(weights=None)
model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
model.maxpool = torch.nn.Identity()
model.fc = torch.nn.Identity()
model.load_state_dict(load_file(weights))  # strict: every key, no extras
model.eval()
with torch.no_grad():
  x = torch.from_numpy(np.load(images).astype(np.float32) / 255).permute(0, 3, 1, 2)
  np.save(out, model(x).numpy())
"""


def test_torchvision_resnet18_forward_matches(resnet18_run, images, tmp_path):
  # Checked for, not imported: torch loaded after TensorFlow can crash the process, so the
  # torch side runs in a child process of its own.
  for module in ("torch", "torchvision"):
    if importlib.util.find_spec(module) is None:
      pytest.skip(f"{module} is not installed")
  np.save(tmp_path / "images.npy", images)
  subprocess.run(
    [
      sys.executable,
      "-c",
      _TORCH_FORWARD,
      str(resnet18_run["torch"] / "encoder.safetensors"),
      str(tmp_path / "images.npy"),
      str(tmp_path / "torch.npy"),
    ],
    check=True,
    timeout=300,
  )
  ours = np.load(tmp_path / "torch.npy")
  theirs = export.load_encoder(resnet18_run["npz"])(images)
  assert ours.shape == theirs.shape == (12, 512)
  # Different conv algorithms and summation orders through 18 layers: 1e-5 of the feature scale
  # (measured: 1.2e-6 of it).
  np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * np.abs(theirs).max())


def test_export_main_prints_what_it_wrote(run, tmp_path, capsys):
  out = export.export_main(run, tmp_path / "t", step=None, format="torch", overwrite=False)
  printed = capsys.readouterr().out
  assert "encoder.safetensors" in printed and "jssl_encoder.json" in printed and str(out) in printed
  recipe = json.loads((out / "jssl_encoder.json").read_text())["torchvision"]
  assert recipe["constructor"] is None and "width 16" in recipe["note"]  # resnet_tiny: no torchvision twin


# --------------------------------------------------------------------------- finetune


@pytest.mark.parametrize("warmup", [0.0, 0.1])
def test_finetune_learning_rate_warms_up_then_follows_a_cosine(warmup):
  from jssl.finetune import learning_rate  # noqa: PLC0415

  ft = config_lib.finetune_config().finetune
  ft.lr, ft.warmup_fraction = 0.5, warmup
  schedule, total = learning_rate(ft, 100), 100
  w = round(warmup * total)
  for step in (0, 3, 9, 10, 11, 50, 99, 100):
    if step < w:
      expected = 0.5 * step / w
    else:
      expected = 0.5 * 0.5 * (1 + np.cos(np.pi * (step - w) / (total - w)))
    assert float(schedule(step)) == pytest.approx(expected, abs=1e-6), step


def test_finetune_starts_from_the_export_or_from_a_fresh_init_of_its_architecture(exported):
  from jssl.finetune import starting_variables  # noqa: PLC0415

  encoder = export.load_encoder(exported["orbax"])
  params, stats = starting_variables(encoder, "pretrained", seed=0)
  assert params is encoder.params and stats is encoder.batch_stats
  fresh, fresh_stats = starting_variables(encoder, "random", seed=0)
  assert jax.tree.structure(fresh) == jax.tree.structure(encoder.params)
  assert jax.tree.map(np.shape, fresh) == jax.tree.map(np.shape, encoder.params)
  assert jax.tree.map(np.shape, fresh_stats) == jax.tree.map(np.shape, encoder.batch_stats)
  differs = jax.tree.leaves(jax.tree.map(lambda a, b: not np.allclose(a, b), fresh, encoder.params))
  assert sum(differs) > len(differs) // 2, "the random start is not the pretrained weights"
  again, _ = starting_variables(encoder, "random", seed=0)
  other, _ = starting_variables(encoder, "random", seed=1)
  assert all(jax.tree.leaves(jax.tree.map(np.array_equal, fresh, again)))
  assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, fresh, other)))
  with pytest.raises(ValueError, match="finetune.init"):
    starting_variables(encoder, "imagenet", seed=0)


def test_layer_decay_scales_a_vits_updates_block_by_block_from_the_top():
  from jssl.finetune import _optimizer, layer_decay_scales  # noqa: PLC0415
  from jssl.models.vit import vit  # noqa: PLC0415

  model = vit("vit_tiny", patch_size=4, depth=3)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), train=False))["params"]
  params = jax.tree.map(lambda leaf: jnp.ones(leaf.shape), params)
  scales = layer_decay_scales(params, 0.5)
  # BEiT / MAE: layer 0 = patch embedding and [CLS], block i = layer i + 1, final norm = layer 4 (scale 1).
  expected = {
    "patch_embed": 0.5**4,
    "cls_token": 0.5**4,
    "blocks_0": 0.5**3,
    "blocks_1": 0.5**2,
    "blocks_2": 0.5,
    "norm": 1.0,
  }
  assert set(scales) == set(expected)
  for name, factor in expected.items():
    assert all(value == factor for value in jax.tree.leaves(scales[name])), name
  assert all(value == 1.0 for value in jax.tree.leaves(layer_decay_scales(params, 1.0)))

  # The optimizer's updates with decay are those without, times the factor (the head untouched).
  ft = config_lib.finetune_config().finetune
  ft.mode, ft.lr, ft.encoder_lr_multiplier, ft.weight_decay = "full", 0.1, 1.0, 0.05
  full = {"encoder": params, "head": {"kernel": jnp.ones((192, 4)), "bias": jnp.ones((4,))}}
  grads = jax.tree.map(lambda leaf: jnp.full(leaf.shape, 0.3), full)
  plain_updates = first_updates(_optimizer(ft, 10, params), grads, full)
  ft.layer_decay = 0.5
  updates = first_updates(_optimizer(ft, 10, params), grads, full)
  for name, factor in expected.items():
    for got, plain_update in zip(
      jax.tree.leaves(updates["encoder"][name]), jax.tree.leaves(plain_updates["encoder"][name])
    ):
      np.testing.assert_allclose(got, np.asarray(plain_update) * factor, rtol=1e-6)
  np.testing.assert_array_equal(updates["head"]["kernel"], plain_updates["head"]["kernel"])
  assert float(jnp.abs(plain_updates["encoder"]["blocks_0"]["mlp"]["fc1"]["kernel"]).max()) > 0


def test_lp_ft_head_is_the_converged_probe_folded_back_to_raw_features():
  import flax.linen as nn  # noqa: PLC0415
  import tensorflow as tf  # noqa: PLC0415

  from jssl import probes  # noqa: PLC0415
  from jssl.finetune import probe_head  # noqa: PLC0415

  class Features(nn.Module):  # features far from zero mean and unit scale, as an encoder's are
    @nn.compact
    def __call__(self, x, train):
      return x.reshape(x.shape[0], -1) * 3.0 + 5.0

  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, 96).astype(np.int32)
  images = (rng.normal(size=(96, 2, 2, 1)) + labels[:, None, None, None] * [[[1.0], [0.0]], [[-1.0], [0.5]]]).astype(
    np.float32
  )
  dataset = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels}).batch(32)
  head = probe_head(Features(), {}, dataset, num_classes=3, batch_size=32, examples=64, seed=0)
  assert head["kernel"].shape == (4, 3) and head["bias"].shape == (3,)

  # Reference: the probe fit on the standardised features of the same first 64 images, in float64.
  features = images.reshape(96, -1).astype(np.float64) * 3.0 + 5.0
  train = features[:64]
  standardised, _ = probes.standardize(train.astype(np.float32), train.astype(np.float32))
  fit, _ = probes.fit_linear(standardised, labels[:64], num_classes=3, seed=0)
  z = (features - train.mean(0)) / (train.std(0) + 1e-6)
  expected = z @ fit.w.astype(np.float64) + fit.b
  got = features @ np.asarray(head["kernel"], np.float64) + np.asarray(head["bias"], np.float64)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
  assert np.mean(np.argmax(got, -1) == labels) > 0.6  # the classes are separable: the head is not zeros


def test_layer_decay_refuses_an_encoder_without_transformer_blocks(exported):
  from jssl.finetune import layer_decay_scales  # noqa: PLC0415

  params = export.load_encoder(exported["orbax"]).params
  with pytest.raises(ValueError, match="finetune.layer_decay=0.75 needs a ViT"):
    layer_decay_scales(params, 0.75)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["linear", "full"])
def test_finetune_trains_a_classifier_on_an_exported_encoder(exported, tmp_path, mode):
  from jssl.finetune import finetune  # noqa: PLC0415

  config = config_lib.load_config(REPO / "configs" / "finetune_fashion_mnist.py")
  config_lib.apply_overrides(
    config,
    [
      "--config.data.source=synthetic",
      "--config.data.synthetic_shape=(16,16,3)",
      "--config.data.synthetic_examples=256",
      "--config.finetune.epochs=4",
      "--config.finetune.batch_size=32",
      f"--config.finetune.mode={mode}",
      "--config.finetune.lr=0.03",
    ],
  )
  results = finetune(config, encoder_dir=exported["orbax"], workdir=tmp_path)
  assert json.loads((tmp_path / "eval.json").read_text())["top1"] == results["top1"]
  # 10 synthetic classes (chance 0.1) built from colour templates that the features keep.
  assert results["top1"] > 0.3, results
  assert results["steps"] == 32 and results["mode"] == mode
