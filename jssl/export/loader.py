"""``load_encoder``: an orbax or npz export back as a callable encoder, checked against
its ``jssl_encoder.json`` before anything is read (see ``jssl.export``)."""

import dataclasses
import json
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jssl import models
from jssl.errors import ConfigError, MissingError
from jssl.export.layout import COLLECTIONS, FORMAT_VERSION, METADATA_FILE, NPZ_FILE, ORBAX_DIR, flatten, unflatten


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
      "the json's 'torchvision' or 'timm' entry). Export with --format orbax or npz for load_encoder."
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
  expected = flatten({c: dict(expected.get(c, {})) for c in COLLECTIONS})
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
