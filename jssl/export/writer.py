"""``export_encoder``: a run's encoder variables and ``jssl_encoder.json``, written to a
folder (see ``jssl.export`` for the files and formats)."""

import json
import os
import pathlib
import shutil

import jax
import numpy as np

from jssl import models
from jssl.errors import ConfigError, MissingError
from jssl.export.layout import (
  ARTIFACTS,
  COLLECTIONS,
  FORMAT_VERSION,
  FORMATS,
  METADATA_FILE,
  NPZ_FILE,
  ORBAX_DIR,
  TORCH_FILE,
  flatten,
)
from jssl.export.timm_map import timm_recipe, timm_state_dict
from jssl.export.torchvision_map import torch_state_dict, torchvision_recipe

# Encoder family -> (name of the metadata entry that says how to load it, the state_dict mapping).
TORCH_LAYOUTS = {"resnet": ("torchvision", torch_state_dict), "vit": ("timm", timm_state_dict)}


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
  network: str | None = None,
) -> pathlib.Path:
  """Writes the encoder of the run in ``workdir`` (latest checkpoint unless ``step``) to ``out_dir``.

  See ``jssl.export`` for the files. ``overwrite=True`` allows a non-empty ``out_dir``
  and replaces the export files in it (``jssl_encoder.json``, ``variables/``,
  ``encoder.npz``, ``encoder.safetensors``); other files there are left alone. ``network``
  names which of the task's encoders (``Task.networks``: BYOL's online or target, DINO's
  teacher or student) is written; ``None``: the one its paper evaluates.

  Returns:
    The resolved ``out_dir``.

  Raises:
    FileNotFoundError: ``workdir`` has no ``config.json`` or no checkpoint.
    ValueError: unknown format, a missing ``step``, or an
      ``out_dir`` that is a file, not empty (without ``overwrite``), or the run's own workdir.
  """
  from jssl import workdir as workdir_lib  # noqa: PLC0415  (TensorFlow et al. only when exporting)
  from jssl.models import encoder_kwargs  # noqa: PLC0415

  workdir, out_dir = pathlib.Path(workdir).resolve(), pathlib.Path(out_dir).resolve()
  if format not in FORMATS:
    raise ConfigError(f"Unknown export format {format!r}; choose one of {', '.join(FORMATS)}.")
  config = workdir_lib.read_run_config(workdir)
  name = config.model.encoder
  family = models.encoder_family(name)
  if format == "torch" and family not in TORCH_LAYOUTS:
    raise ConfigError(
      f"The torch format has no layout for {family} encoders such as {name!r}; "
      f"export it as {' or '.join(repr(f) for f in FORMATS if f != 'torch')} "
      "(--format orbax | npz), which jssl.load_encoder reads."
    )
  kwargs = encoder_kwargs(config)
  _check_out_dir(out_dir, workdir, overwrite=overwrite)
  if not (workdir / "checkpoints").is_dir():
    raise MissingError(f"No checkpoints in {workdir}; run `jssl pretrain` first.")

  # Built from the data facts the run recorded: the training data need not be on this machine.
  setup = workdir_lib.run_setup(workdir, config)
  state, step = workdir_lib.restore_run(setup, workdir, step=step)
  network = setup.task.network_name(network)
  variables = jax.device_get(setup.task.encoder_variables(state.params, state.batch_stats, state.extra, network))
  # Empty collections (a ViT's batch_stats) are left out: nothing to store, and nothing to restore.
  variables = {c: jax.tree.map(np.asarray, dict(variables[c])) for c in COLLECTIONS if variables.get(c)}

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
    "source_run": {
      "workdir": str(workdir),
      "step": step,
      "network": network,
      "config": workdir_lib.read_run_record(workdir),
    },
  }
  if format == "torch" and family == "resnet":
    metadata["torchvision"] = torchvision_recipe(name, width_multiplier=kwargs["width_multiplier"], stem=kwargs["stem"])
  elif format == "torch":
    metadata["timm"] = timm_recipe(
      name,
      patch_size=kwargs["patch_size"],
      depth=kwargs["depth"],
      image_size=metadata["input"]["image_size"],
      channels=metadata["input"]["channels"],
    )

  out_dir.mkdir(parents=True, exist_ok=True)
  targets = {artifact: _inside(out_dir, artifact) for artifact in ARTIFACTS}
  for artifact in ARTIFACTS:  # The json first: an interrupted overwrite leaves no stale export.
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

    # "format": "pt" in the header's __metadata__: what transformers' and timm's loaders check for.
    state_dict = TORCH_LAYOUTS[family][1](variables)
    save_file(state_dict, str(targets[TORCH_FILE]), metadata={"format": "pt"})

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
  network: str | None = None,
) -> pathlib.Path:
  """``jssl export``: exports and prints what was written."""
  out_dir = export_encoder(workdir, out, step=step, format=format, overwrite=overwrite, network=network)
  metadata = json.loads((out_dir / METADATA_FILE).read_text())
  arch = metadata["architecture"]
  detail = ", ".join(f"{key} {value}" for key, value in arch["kwargs"].items() if key != "dtype")
  print(
    f"Exported the {arch['name']} encoder ({metadata['num_features']} features, "
    f"{detail}; network {metadata['source_run']['network']}) of {metadata['source_run']['workdir']} at step "
    f"{metadata['source_run']['step']} as {format} to {out_dir}:"
  )
  for artifact in ARTIFACTS:
    path = out_dir / artifact
    if path.exists():
      size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
      print(f"  {artifact}{'/' if path.is_dir() else ''}  {size / 1e6:.2f} MB")
  if format == "torch" and "timm" in metadata:
    recipe = metadata["timm"]
    print(f"Load in PyTorch: model = {recipe['constructor']}; {recipe['load']}")
  elif format == "torch":
    recipe = metadata["torchvision"]
    print(
      f"Load in PyTorch: model = {recipe['constructor'] or '(no torchvision constructor; see the json)'}; "
      + "; ".join(f"model.{k} = {v}" for k, v in recipe["replace"].items())
      + f"; {recipe['load']}"
    )
  else:
    print(f"Load with: jssl.load_encoder({str(out_dir)!r})")
  return out_dir
