"""Export a pretrained encoder out of a run, and load it back for inference.

``export_encoder(workdir, out_dir)`` restores a ``jssl pretrain`` run's checkpoint, keeps
only the encoder's variables (parameters and batch-norm statistics; no projection head,
optimizer or probe) and writes to ``out_dir``:

* ``jssl_encoder.json``, always, written last (an export without it is incomplete)::

    {"format_version": 1, "format": "orbax" | "npz" | "torch",
     "architecture": {"name": "resnet18", "kwargs": {"width_multiplier", "stem", "dtype"}},
                                      # ViTs: {"name": "vit_tiny", "kwargs": {"patch_size", "dtype"}}
     "num_features": 512,
     "input": {"image_size", "channels", "value_range": [0, 1], "normalization": "none",
               "grayscale_to_rgb"},
     "source_run": {"workdir", "step", "config": {...the run's config.json...}},
     "torchvision": {...}}              # torch format only: how to load it, see below

* ``format="orbax"``: ``variables/``, an Orbax checkpoint of ``{"params", "batch_stats"}``
  (``{"params"}`` alone for encoders without batch norm: ViTs).
* ``format="npz"``: ``encoder.npz``, flat keys such as ``params/layer1_0/conv1/kernel`` and
  ``batch_stats/layer1_0/bn1/mean`` (plain arrays: loads with ``allow_pickle=False``).
* ``format="torch"`` (ResNets only): ``encoder.safetensors`` with torchvision's ResNet
  key names and layouts (conv ``weight`` ``[out, in, kh, kw]``; BN ``weight``, ``bias``,
  ``running_mean``, ``running_var`` and ``num_batches_tracked`` (int64 0)). There is no
  ``fc``: set ``model.fc = torch.nn.Identity()`` before loading (then a strict load
  works), or load with ``strict=False``. ``load_encoder`` does not read this format.

  A ResNet-18 with the ImageNet stem loads into ``torchvision.models.resnet18()`` as it is.
  With the CIFAR stem (the jssl default: 3x3 stride-1 ``conv1``, no max-pool) replace two
  modules first::

    import torch, torchvision
    from safetensors.torch import load_file
    model = torchvision.models.resnet18()
    model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = torch.nn.Identity()
    model.fc = torch.nn.Identity()
    model.load_state_dict(load_file("OUT/encoder.safetensors"))
    model.eval()
    features = model(images_nchw)  # float in [0, 1], no mean/std normalization

  The json's ``"torchvision"`` entry spells this out for the exported model (and says
  when no torchvision constructor matches, e.g. ``resnet_tiny``'s width of 16).

``load_encoder(out_dir)`` reads the json first (an unknown architecture or format fails
before any compute), rebuilds the encoder with ``jssl.models.make_encoder``, checks every
array's shape against the model's and returns a callable ``LoadedEncoder``. Nothing on
the load path uses pickle.
"""

import dataclasses
import json
import os
import pathlib
import re
import shutil
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jssl import models
from jssl.errors import ConfigError, MissingError

FORMAT_VERSION = 1
FORMATS = ("orbax", "npz", "torch")
METADATA_FILE = "jssl_encoder.json"
ORBAX_DIR = "variables"
NPZ_FILE = "encoder.npz"
TORCH_FILE = "encoder.safetensors"
_ARTIFACTS = (METADATA_FILE, ORBAX_DIR, NPZ_FILE, TORCH_FILE)
_COLLECTIONS = ("params", "batch_stats")


# --------------------------------------------------------------------------- flat trees


def flatten(variables: dict) -> dict[str, Any]:
  """``{"params": {"conv1": {"kernel": x}}}`` -> ``{"params/conv1/kernel": x}``."""
  flat = {}

  def walk(prefix, node):
    if isinstance(node, Mapping):
      for key in sorted(node):
        if "/" in str(key):
          raise ConfigError(f"Variable name {key!r} under {prefix!r} contains '/'.")
        walk(f"{prefix}/{key}" if prefix else str(key), node[key])
    else:
      flat[prefix] = node

  walk("", dict(variables))
  return flat


def unflatten(flat: dict[str, Any]) -> dict:
  """Inverse of ``flatten``."""
  tree: dict = {}
  for key, value in flat.items():
    *parents, leaf = key.split("/")
    node = tree
    for part in parents:
      node = node.setdefault(part, {})
      if not isinstance(node, dict):
        raise ConfigError(f"Key {key!r} nests under a leaf.")
    if leaf in node:
      raise ConfigError(f"Key {key!r} appears twice.")
    node[leaf] = value
  return tree


# --------------------------------------------------------------------------- torch mapping

_LAYER = re.compile(r"^layer(\d+)_(\d+)$")
_MODULES = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}
_LEAVES = {
  ("params", "kernel"): "weight",
  ("params", "scale"): "weight",
  ("params", "bias"): "bias",
  ("batch_stats", "mean"): "running_mean",
  ("batch_stats", "var"): "running_var",
}


def _torch_module(flax_path: list[str]) -> str:
  parts = []
  for name in flax_path:
    match = _LAYER.match(name)
    parts.append(f"layer{match[1]}.{match[2]}" if match else _MODULES.get(name, name))
  return ".".join(parts)


def torch_state_dict(variables: dict) -> dict[str, np.ndarray]:
  """ResNet encoder variables -> a torchvision-style ``state_dict`` of numpy arrays.

  Conv kernels go from Flax ``[kh, kw, in, out]`` to torch ``[out, in, kh, kw]``; BN
  ``scale``/``bias``/``mean``/``var`` become ``weight``/``bias``/``running_mean``/
  ``running_var``, plus ``num_batches_tracked`` (int64 0) for every BN layer.
  """
  state, batch_norms = {}, set()
  for key, value in flatten(variables).items():
    collection, *path, leaf = key.split("/")
    name = _LEAVES.get((collection, leaf))
    if name is None or not path:
      raise ConfigError(f"No torchvision name for {key!r}: the torch format supports jssl ResNets only.")
    module = _torch_module(path)
    value = np.asarray(value, np.float32)
    if leaf == "kernel":
      if value.ndim != 4:
        raise ConfigError(f"{key!r} has shape {value.shape}; a conv kernel [kh, kw, in, out] was expected.")
      value = value.transpose(3, 2, 0, 1)
    else:
      batch_norms.add(module)
    state[f"{module}.{name}"] = np.ascontiguousarray(value)
  for module in batch_norms:
    state[f"{module}.num_batches_tracked"] = np.zeros((), np.int64)
  return dict(sorted(state.items()))


def torchvision_recipe(name: str, *, width_multiplier: float, stem: str) -> dict:
  """How to build a torchvision model that ``encoder.safetensors`` loads into."""
  from jssl.models.resnet import STAGES  # noqa: PLC0415

  stages, block, base_width = STAGES[name]
  width = max(1, round(base_width * width_multiplier))
  block_cls = "BasicBlock" if block == "basic" else "Bottleneck"
  standard = {"resnet18", "resnet34", "resnet50"}
  if width != 64:
    constructor = None
    note = (
      f"No torchvision constructor matches this encoder (first-stage width {width}; torchvision's "
      "ResNets have 64). The keys and layouts still follow torchvision's ResNet, for a ResNet class "
      "with that width."
    )
  else:
    constructor = (
      f"torchvision.models.{name}(weights=None)"
      if name in standard
      else f"torchvision.models.resnet.ResNet(torchvision.models.resnet.{block_cls}, {list(stages)})"
    )
    note = "Load into the constructor's model after the replacements in 'replace'."
  replace = {"fc": "torch.nn.Identity()"}
  if stem == "cifar":
    replace["conv1"] = f"torch.nn.Conv2d(3, {width}, kernel_size=3, stride=1, padding=1, bias=False)"
    replace["maxpool"] = "torch.nn.Identity()"
    note += (
      " CIFAR stem: conv1 is 3x3 stride 1 and there is no max-pool, so replace model.conv1 and "
      "model.maxpool as given (use in_channels=1 if input.channels is 1)."
    )
  return {
    "constructor": constructor,
    "replace": replace,
    "load": f"model.load_state_dict(safetensors.torch.load_file('{TORCH_FILE}'))",
    "mode": "model.eval() (batch norm uses the exported running statistics)",
    "input": "float32 [N, C, H, W] (NCHW: images_nhwc.permute(0, 3, 1, 2)) in [0, 1]; no mean/std normalization",
    "output": "[N, num_features] after global average pooling (with fc = Identity)",
    "note": note,
  }


# --------------------------------------------------------------------------- export


def _inside(out_dir: pathlib.Path, name: str) -> pathlib.Path:
  """``out_dir / name``, refused if it resolves outside ``out_dir`` (e.g. through a symlink)."""
  path = out_dir / name
  if path.is_symlink() or not path.resolve().is_relative_to(out_dir):
    raise ConfigError(f"{path} is a link or resolves outside {out_dir}; refusing to write there.")
  return path


def _check_out_dir(out_dir: pathlib.Path, workdir: pathlib.Path, *, overwrite: bool) -> None:
  if out_dir.exists() and not out_dir.is_dir():
    raise ConfigError(f"--out {out_dir} is a file; give a directory (it is created if missing).")
  if out_dir == workdir or out_dir.is_relative_to(workdir / "checkpoints"):
    raise ConfigError(
      f"--out {out_dir} is the run's workdir or inside its checkpoints; pick another "
      f"directory, e.g. {workdir / 'export'}."
    )
  if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
    entries = sorted(p.name for p in out_dir.iterdir())
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    raise ConfigError(
      f"--out {out_dir} is not empty ({shown}); pass overwrite=True (--overwrite) to replace "
      "an earlier export there, or choose an empty directory."
    )


def export_encoder(
  workdir: str | os.PathLike,
  out_dir: str | os.PathLike,
  *,
  step: int | None = None,
  format: str = "orbax",  # noqa: A002  (the CLI's --format)
  overwrite: bool = False,
) -> pathlib.Path:
  """Writes the encoder of the run in ``workdir`` (latest checkpoint unless ``step``) to ``out_dir``.

  See the module docstring for the files. ``overwrite=True`` allows a non-empty ``out_dir``
  and replaces the export files in it (``jssl_encoder.json``, ``variables/``,
  ``encoder.npz``, ``encoder.safetensors``); other files there are left alone.

  Returns:
    The resolved ``out_dir``.

  Raises:
    FileNotFoundError: ``workdir`` has no ``config.json`` or no checkpoint.
    ValueError: unknown format, a torch export of a non-ResNet, a missing ``step``, or an
      ``out_dir`` that is a file, not empty (without ``overwrite``), or the run's own workdir.
  """
  from jssl import config as config_lib  # noqa: PLC0415  (TensorFlow et al. only when exporting)
  from jssl.models import encoder_kwargs  # noqa: PLC0415
  from jssl.train import make_setup, read_run_config, restore_run  # noqa: PLC0415

  workdir, out_dir = pathlib.Path(workdir).resolve(), pathlib.Path(out_dir).resolve()
  if format not in FORMATS:
    raise ConfigError(f"Unknown export format {format!r}; choose one of {', '.join(FORMATS)}.")
  config = read_run_config(workdir)
  name = config.model.encoder
  if format == "torch" and models.encoder_family(name) != "resnet":
    raise ConfigError(
      f"The torch format (torchvision's ResNet layout) supports ResNet encoders only, not {name!r}; "
      f"export it as {' or '.join(repr(f) for f in FORMATS if f != 'torch')} "
      "(--format orbax | npz), which jssl.load_encoder reads."
    )
  kwargs = encoder_kwargs(config)
  _check_out_dir(out_dir, workdir, overwrite=overwrite)
  if not (workdir / "checkpoints").is_dir():
    raise MissingError(f"No checkpoints in {workdir}; run `jssl pretrain` first.")

  setup = make_setup(config)
  state, step = restore_run(setup, workdir, step=step)
  variables = jax.device_get(setup.task.encoder_variables(state.params, state.batch_stats))
  # Empty collections (a ViT's batch_stats) are left out: nothing to store, and nothing to restore.
  variables = {c: jax.tree.map(np.asarray, dict(variables[c])) for c in _COLLECTIONS if variables.get(c)}

  encoder = setup.task.encoder
  metadata = {
    "format_version": FORMAT_VERSION,
    "format": format,
    "architecture": {"name": name, "kwargs": kwargs},
    "num_features": int(encoder.num_features),
    "input": {
      "image_size": int(config.data.image_size),
      "channels": 3 if config.data.grayscale_to_rgb else int(setup.source.channels),
      "value_range": [0, 1],
      "normalization": "none",
      "grayscale_to_rgb": bool(config.data.grayscale_to_rgb),
    },
    "source_run": {"workdir": str(workdir), "step": step, "config": json.loads(config_lib.to_json(config))},
  }
  if format == "torch":
    metadata["torchvision"] = torchvision_recipe(name, width_multiplier=kwargs["width_multiplier"], stem=kwargs["stem"])

  out_dir.mkdir(parents=True, exist_ok=True)
  targets = {artifact: _inside(out_dir, artifact) for artifact in _ARTIFACTS}
  for artifact in _ARTIFACTS:  # The json first: an interrupted overwrite leaves no stale export.
    path = targets[artifact]
    if path.is_dir():
      shutil.rmtree(path)
    elif path.exists():
      path.unlink()

  if format == "orbax":
    import orbax.checkpoint as ocp  # noqa: PLC0415

    with ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save(targets[ORBAX_DIR], variables)
  elif format == "npz":
    with targets[NPZ_FILE].open("wb") as f:
      np.savez(f, **flatten(variables))
  else:
    from safetensors.numpy import save_file  # noqa: PLC0415

    save_file(torch_state_dict(variables), str(targets[TORCH_FILE]), metadata={"format": "pt"})

  partial = _inside(out_dir, METADATA_FILE + ".tmp")
  partial.write_text(json.dumps(metadata, indent=2) + "\n")
  os.replace(partial, targets[METADATA_FILE])
  return out_dir


def export_main(
  workdir,
  out,
  *,
  step: int | None = None,
  format: str = "orbax",  # noqa: A002
  overwrite: bool = False,
) -> pathlib.Path:
  """``jssl export``: exports and prints what was written."""
  out_dir = export_encoder(workdir, out, step=step, format=format, overwrite=overwrite)
  metadata = json.loads((out_dir / METADATA_FILE).read_text())
  arch = metadata["architecture"]
  detail = ", ".join(f"{key} {value}" for key, value in arch["kwargs"].items() if key != "dtype")
  print(
    f"Exported the {arch['name']} encoder ({metadata['num_features']} features, "
    f"{detail}) of {metadata['source_run']['workdir']} at step "
    f"{metadata['source_run']['step']} as {format} to {out_dir}:"
  )
  for artifact in _ARTIFACTS:
    path = out_dir / artifact
    if path.exists():
      size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
      print(f"  {artifact}{'/' if path.is_dir() else ''}  {size / 1e6:.2f} MB")
  if format == "torch":
    recipe = metadata["torchvision"]
    print(
      f"Load in PyTorch: model = {recipe['constructor'] or '(no torchvision constructor; see the json)'}; "
      + "; ".join(f"model.{k} = {v}" for k, v in recipe["replace"].items())
      + f"; {recipe['load']}"
    )
  else:
    print(f"Load with: jssl.load_encoder({str(out_dir)!r})")
  return out_dir


# --------------------------------------------------------------------------- load


def _check_variables(found: dict[str, tuple], expected: dict[str, tuple], where: pathlib.Path) -> None:
  """Same keys and shapes, or a ``ValueError`` naming the first key that differs."""
  for key, shape in expected.items():
    if key not in found:
      raise ConfigError(f"{where}: variable {key!r} (shape {tuple(shape)}) is missing.")
    if tuple(found[key]) != tuple(shape):
      raise ConfigError(
        f"{where}: variable {key!r} has shape {tuple(found[key])}, but the architecture in "
        f"{METADATA_FILE} needs {tuple(shape)}."
      )
  extra = sorted(set(found) - set(expected))
  if extra:
    raise ConfigError(
      f"{where}: variable {extra[0]!r} is not part of the architecture in {METADATA_FILE}"
      + (f" ({len(extra) - 1} more)." if len(extra) > 1 else ".")
    )


@dataclasses.dataclass(eq=False)
class LoadedEncoder:
  """A frozen encoder: ``encoder(images) -> features [N, num_features]`` float32 numpy.

  ``images``: ``[N, H, W, C]``, uint8 (divided by 255) or float in [0, 1]. With
  ``metadata["input"]["grayscale_to_rgb"]`` a single channel is repeated to 3. Images
  whose side is not ``image_size`` are center-cropped to a square (as in ``jssl eval``)
  and resized with ``jax.image.resize`` (bilinear, antialiased when shrinking; ``jssl
  eval`` itself resizes bicubic on the host, so features of resized images differ
  slightly from it). Batch norm runs in inference mode; the forward pass is jitted and
  compiles once per input shape and dtype (``batch_size`` chunks, the last one padded).
  """

  model: Any
  params: Any
  batch_stats: Any
  metadata: dict
  path: pathlib.Path

  def __post_init__(self):
    self._forward = jax.jit(self._features)

  @property
  def num_features(self) -> int:
    return int(self.metadata["num_features"])

  @property
  def variables(self) -> dict:
    return {"params": self.params, "batch_stats": self.batch_stats}

  def _features(self, variables, images):
    size = int(self.metadata["input"]["image_size"])
    channels = int(self.metadata["input"]["channels"])
    if images.dtype == jnp.uint8:
      images = images.astype(jnp.float32) / 255.0
    images = images.astype(jnp.float32)
    if images.shape[-1] == 1 and channels == 3:
      images = jnp.repeat(images, 3, axis=-1)
    n, height, width, c = images.shape
    if (height, width) != (size, size):
      side = min(height, width)
      top, left = (height - side) // 2, (width - side) // 2
      images = images[:, top : top + side, left : left + side]
      images = jax.image.resize(images, (n, size, size, c), method="bilinear")
    return self.model.apply(variables, images, train=False)

  def __call__(self, images, *, batch_size: int = 256) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4:
      raise ConfigError(f"images must be [N, H, W, C]; got shape {images.shape}.")
    expected = int(self.metadata["input"]["channels"])
    channels = images.shape[-1]
    if channels != expected and not (channels == 1 and expected == 3 and self.metadata["input"]["grayscale_to_rgb"]):
      raise ConfigError(
        f"images have {channels} channels; this encoder takes {expected}"
        + (" (or 1, repeated to 3)." if self.metadata["input"]["grayscale_to_rgb"] else ".")
      )
    if images.dtype != np.uint8:
      if not np.issubdtype(images.dtype, np.floating):
        raise ConfigError(f"images must be uint8 or float in [0, 1]; got {images.dtype}.")
      if images.size and (np.nanmin(images) < -1e-3 or np.nanmax(images) > 1 + 1e-3):
        raise ConfigError(
          f"float images must be in [0, 1] (no mean/std normalization); got values in "
          f"[{np.nanmin(images):.3g}, {np.nanmax(images):.3g}]. Pass uint8 or divide by 255."
        )
    n = len(images)
    if n == 0:
      return np.zeros((0, self.num_features), np.float32)
    variables = self.variables
    if n <= batch_size:
      return np.asarray(self._forward(variables, images), np.float32)
    out = []
    for start in range(0, n, batch_size):
      chunk = images[start : start + batch_size]
      pad = batch_size - len(chunk)
      if pad:
        chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
      out.append(np.asarray(self._forward(variables, chunk), np.float32)[: batch_size - pad])
    return np.concatenate(out)


def read_metadata(path: str | os.PathLike) -> dict:
  """The validated ``jssl_encoder.json`` of an export (``path``: the directory or the json)."""
  path = pathlib.Path(path)
  json_path = path if path.suffix == ".json" and path.is_file() else path / METADATA_FILE
  if not json_path.is_file():
    raise MissingError(
      f"{json_path} not found: {path} is not a `jssl export` directory (or the export did not finish)."
    )
  try:
    metadata = json.loads(json_path.read_text())
  except json.JSONDecodeError as error:
    raise ConfigError(f"{json_path} is not valid JSON: {error}") from None
  if not isinstance(metadata, dict):
    raise ConfigError(f"{json_path} does not hold a JSON object.")
  if metadata.get("format_version") != FORMAT_VERSION:
    raise ConfigError(
      f"{json_path}: format_version {metadata.get('format_version')!r} is not supported "
      f"(this jssl reads {FORMAT_VERSION})."
    )
  fmt = metadata.get("format")
  if fmt == "torch":
    raise ConfigError(
      f"{json_path}: the torch format is export-only (encoder.safetensors is for PyTorch; see "
      "the json's 'torchvision' entry). Export with --format orbax or npz for load_encoder."
    )
  if fmt not in ("orbax", "npz"):
    raise ConfigError(f"{json_path}: unknown format {fmt!r}; load_encoder reads orbax and npz exports.")
  arch = metadata.get("architecture")
  if not isinstance(arch, dict) or arch.get("name") not in models.ENCODERS:
    arch = arch if isinstance(arch, dict) else {}
    raise ConfigError(
      f"{json_path}: unknown architecture {arch.get('name')!r}; this jssl knows {', '.join(models.ENCODERS)}."
    )
  kwargs = arch.get("kwargs") or {}
  if not isinstance(kwargs, dict):
    raise ConfigError(f"{json_path}: architecture kwargs must be an object; got {kwargs!r}.")
  accepted = models.encoder_kwarg_names(arch["name"])
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise ConfigError(
      f"{json_path}: unknown architecture kwargs {unknown} for {arch['name']}; expected {list(accepted)}."
    )
  inputs = metadata.get("input")
  inputs = inputs if isinstance(inputs, dict) else {}
  if not isinstance(metadata.get("num_features"), int):
    raise ConfigError(f"{json_path}: num_features must be an integer; got {metadata.get('num_features')!r}.")
  if not isinstance(inputs.get("image_size"), int) or inputs["image_size"] < 1 or inputs.get("channels") not in (1, 3):
    raise ConfigError(f"{json_path}: 'input' needs a positive integer image_size and channels 1 or 3; got {inputs}.")
  return metadata


def load_encoder(path: str | os.PathLike) -> LoadedEncoder:
  """Loads an export written by ``export_encoder`` (orbax or npz format).

  Raises:
    FileNotFoundError: no ``jssl_encoder.json`` or variables file.
    ValueError: unknown format version, format, architecture or kwargs (before anything is
      built or loaded), or variables whose keys or shapes differ from the architecture's
      (naming the first such key).
  """
  path = pathlib.Path(path)
  if path.suffix == ".json" and path.is_file():
    path = path.parent
  path = path.resolve()
  metadata = read_metadata(path)
  arch, inputs = metadata["architecture"], metadata["input"]
  kwargs = dict(arch.get("kwargs") or {})
  if "dtype" in kwargs:
    try:
      kwargs["dtype"] = jnp.dtype(kwargs["dtype"])
    except TypeError:
      raise ConfigError(f"{path / METADATA_FILE}: unknown dtype {kwargs['dtype']!r}.") from None
  model = models.make_encoder(arch["name"], **kwargs)
  if metadata["num_features"] != model.num_features:
    raise ConfigError(
      f"{path / METADATA_FILE}: num_features {metadata.get('num_features')} does not match "
      f"{arch['name']} with {arch.get('kwargs')} ({model.num_features})."
    )
  size, channels = inputs["image_size"], inputs["channels"]
  expected = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, channels)), train=False))
  expected = flatten({c: dict(expected.get(c, {})) for c in _COLLECTIONS})
  expected_shapes = {key: value.shape for key, value in expected.items()}

  if metadata["format"] == "orbax":
    import orbax.checkpoint as ocp  # noqa: PLC0415

    where = path / ORBAX_DIR
    if not where.is_dir():
      raise MissingError(f"{where} not found: the orbax export in {path} is incomplete.")
    with ocp.StandardCheckpointer() as checkpointer:
      saved = checkpointer.metadata(where).item_metadata.tree
      _check_variables({k: v.shape for k, v in flatten(saved).items()}, expected_shapes, where)
      flat = flatten(checkpointer.restore(where))
  else:
    where = path / NPZ_FILE
    if not where.is_file():
      raise MissingError(f"{where} not found: the npz export in {path} is incomplete.")
    with np.load(where, allow_pickle=False) as npz:
      flat = {key: npz[key] for key in npz.files}
    # Orbax was checked from its metadata before restoring; an npz only once it is read.
    _check_variables({k: np.shape(v) for k, v in flat.items()}, expected_shapes, where)

  arrays = {}
  for key, value in flat.items():
    value = np.asarray(value)
    if not jnp.issubdtype(value.dtype, jnp.floating):
      raise ConfigError(f"{where}: variable {key!r} has dtype {value.dtype}; floating point expected.")
    arrays[key] = jnp.asarray(value, expected[key].dtype)
  variables = unflatten(arrays)
  return LoadedEncoder(
    model=model,
    params=variables.get("params", {}),
    batch_stats=variables.get("batch_stats", {}),
    metadata=metadata,
    path=path,
  )
