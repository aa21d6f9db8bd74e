"""Python config files (``get_config()`` returning an ``ml_collections.ConfigDict``) and typed overrides.

A recipe is a file in ``configs/``; the command line changes single fields with
``--config.section.key=value``. An override is parsed to the type of the field it
replaces, and a key that does not exist is an error that lists the valid keys.
"""

import ast
import importlib.util
import json
import pathlib

import ml_collections

from jssl.errors import ConfigError, MissingError, UnknownKeyError


def load_config(path: str | pathlib.Path) -> ml_collections.ConfigDict:
  """Imports ``path`` and returns its ``get_config()``, locked so that typos fail loudly.

  ``file.py:ARG`` calls ``get_config("ARG")`` (ml_collections' convention), for files that
  hold one recipe per task, e.g. ``configs/smoke.py:inpainting``.
  """
  path, colon, argument = str(path).partition(".py:")
  path = pathlib.Path(path + ".py" if colon else path)
  if not path.is_file():
    raise MissingError(
      f"Config file {path} not found; pass one of the files in configs/, e.g. --config configs/smoke.py."
    )
  spec = importlib.util.spec_from_file_location(f"jssl_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"Config file {path} has no get_config() function.")
  config = module.get_config(argument) if colon else module.get_config()
  config.lock()
  return config


def _parse_value(text: str, current, key: str):
  """``text`` converted to the type of ``current`` (the field's present value)."""
  try:
    if isinstance(current, bool):
      lowered = text.lower()
      if lowered in ("true", "1", "yes"):
        return True
      if lowered in ("false", "0", "no"):
        return False
      raise ConfigError(text)
    if isinstance(current, int):
      return int(text)
    if isinstance(current, float):
      return float(text)
    if isinstance(current, str):
      return text
    if isinstance(current, (tuple, list)):
      value = ast.literal_eval(text)
      if not isinstance(value, (tuple, list)):
        value = (value,)
      return type(current)(value)
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    # A None field (e.g. augment.view2.blur_prob) takes any Python literal.
    expected = (
      "a Python literal (a number, a tuple ...)" if current is None else f"a value of type {type(current).__name__}"
    )
    raise ConfigError(f"--config.{key}={text!r}: expected {expected} (current value {current!r}).") from None


def apply_override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
  """Sets ``config.<key>`` (dotted) from the command-line string ``text``."""
  node = config
  parts = key.split(".")
  for depth, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      if key in MOVED:
        raise UnknownKeyError(f"--config.{key} has moved to --config.{MOVED[key]}.")
      where = ".".join(parts[:depth]) or "config"
      valid = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else "(none)"
      raise UnknownKeyError(f"Unknown config key {key!r}: {where} has no field {part!r}. Valid keys there: {valid}.")
    if depth == len(parts) - 1:
      current = node[part]
      if isinstance(current, ml_collections.ConfigDict):
        raise UnknownKeyError(
          f"--config.{key} is a section; set one of its fields: {', '.join(sorted(current.keys()))}."
        )
      with node.unlocked():
        node[part] = _parse_value(text, current, key)
    else:
      node = node[part]


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]) -> ml_collections.ConfigDict:
  """Applies ``["--config.a.b=1", "--config.c", "x", ...]`` in order and returns ``config``."""
  i = 0
  while i < len(overrides):
    arg = overrides[i]
    if not arg.startswith("--config."):
      raise ConfigError(f"Unexpected argument {arg!r}; overrides look like --config.train.batch_size=256.")
    body = arg[len("--config.") :]
    if "=" in body:
      key, text = body.split("=", 1)
    else:
      if i + 1 >= len(overrides):
        raise ConfigError(f"{arg} needs a value.")
      key, text = body, overrides[i + 1]
      i += 1
    apply_override(config, key, text)
    i += 1
  return config


def to_json(config: ml_collections.ConfigDict) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True)


# Fields of shared sections that only some tasks read; each task lists those it reads in
# ``Task.reads`` (``jssl.tasks.check_fields`` refuses one set away from its default otherwise).
TASK_DEPENDENT = ("augment", "model.head_hidden_dim", "model.head_out_dim", "model.head_layers")

# Fields that moved, old dotted name -> new: saved configs are read with the new names, and an
# override with an old name says where the field went.
MOVED = {
  "loss.temperature": "simclr.temperature",
  "loss.block_size": "simclr.block_size",
  "train.microbatches": "simclr.microbatches",
  "swav.small_crops": "augment.local_crops",
  "swav.small_crop_size": "augment.local_crop_size",
  "swav.small_crop_area": "augment.local_crop_area",
}


def _migrate(saved: dict) -> dict:
  """A saved config's dict with fields renamed since it was written (``MOVED``) under their new names."""
  for old, new in MOVED.items():
    old_section, old_key = old.split(".")
    section = saved.get(old_section)
    if isinstance(section, dict) and old_key in section:
      new_section, new_key = new.split(".")
      saved.setdefault(new_section, {})[new_key] = section.pop(old_key)
      if not section:
        del saved[old_section]
  return saved


def from_json(text: str) -> ml_collections.ConfigDict:
  """A config written by ``to_json``; fields added to jssl since it was written get their
  defaults, fields moved since (``MOVED``) are read under their new names."""
  config = default_config()
  config.update(_migrate(json.loads(text)))
  config.lock()
  return config


def default_config() -> ml_collections.ConfigDict:
  """Every field a recipe can set, with defaults; recipes in ``configs/`` start from this."""
  c = ml_collections.ConfigDict()
  c.task = "simclr"
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.source = "fashion_mnist"  # fashion_mnist | tfds:NAME | image_folder:PATH | sample_photos | synthetic
  # | moving_fashion_mnist | video_folder:PATH (clips, for video tasks)
  c.data.dir = ""  # data directory ("" = the source's default; JSSL_DATA_DIR also works)
  c.data.train_split = "train"
  c.data.eval_split = "test"
  c.data.image_size = 32  # side of the square images the model sees
  c.data.grayscale_to_rgb = True  # repeat single-channel images to 3 channels
  c.data.shuffle_buffer = 10_000  # in-memory and TFDS sources; folders are permuted whole each epoch
  c.data.synthetic_shape = (32, 32, 3)
  c.data.synthetic_examples = 1024
  # sample_photos: random square crops of scikit-image's colour photographs (a demo set).
  c.data.photo_crop_size = 64  # side of the stored crops
  c.data.photo_crops = 4096  # train crops; "test" has a quarter as many, from held-out rows
  # Video sources (jssl.data.video): elements are clips of frames, for tasks such as frame_order.
  c.data.clip_frames = 8  # frames per clip (video_folder: resampled evenly over each clip)
  c.data.clip_size = 48  # side of the square frames (moving_fashion_mnist: the canvas)
  c.data.video_objects = 2  # moving_fashion_mnist: bouncing Fashion-MNIST objects per clip
  c.data.video_clips = 10_000  # moving_fashion_mnist: train clips; "test" has a quarter as many

  # View augmentation (jssl.data.augment.AugmentConfig; image_size comes from data), shared by
  # every view; per-view overrides and multi-crop below (jssl.data.multicrop). Tasks read only
  # part of it (``Task.reads``): every image task its crop and flip, the view tasks (simclr,
  # swav) all of it; a field a task does not read must keep its default.
  from jssl.data.multicrop import LOCAL_FIELDS, override_section  # noqa: PLC0415  (imports TF, as tasks do)

  c.augment = ml_collections.ConfigDict()
  # host: tf.data makes the views; device: the host only decodes and batches, and the
  # jit step makes the views (jssl.data.augment_jax), per example with its own RNG.
  c.augment.on = "host"
  c.augment.crop_area = (0.08, 1.0)
  c.augment.crop_aspect = (3 / 4, 4 / 3)
  c.augment.flip_prob = 0.5
  c.augment.jitter_strength = 0.5
  c.augment.jitter_prob = 0.8
  c.augment.grayscale_prob = 0.2
  c.augment.blur_prob = 0.0  # SimCLR turns blur off for CIFAR-sized images
  c.augment.blur_sigma = (0.1, 2.0)
  c.augment.blur_kernel_fraction = 0.1
  c.augment.solarize_prob = 0.0  # x -> 1 - x where x >= 0.5, after the blur (BYOL's second view: 0.2)
  # Per-view overrides of the fields above; None takes the shared value. BYOL: view1.blur_prob=1.0;
  # view2.blur_prob=0.1, view2.solarize_prob=0.2. Global views past the second use the shared values.
  c.augment.view1 = override_section()
  c.augment.view2 = override_section()
  # Multi-crop (tasks that take it: swav): local_crops extra low-resolution views of small regions.
  c.augment.local_crops = 0  # SwAV: 6, DINO: 8; 0 = off
  c.augment.local_crop_size = 0  # their side in px; 0 = 3/7 of data.image_size (96/224, as SwAV and DINO)
  c.augment.local_crop_area = (0.05, 0.14)  # of the image's area (SwAV; DINO: (0.05, 0.4))
  c.augment.local = override_section(LOCAL_FIELDS)  # their overrides, as view1 (DINO: blur_prob=0.5)

  c.model = ml_collections.ConfigDict()
  c.model.encoder = "resnet18"  # resnet_tiny | resnet18 | resnet34 | resnet50 | vit_tiny | vit_small | vit_base
  c.model.width_multiplier = 1.0  # ResNets only (ViTs are sized by name; must stay 1.0)
  c.model.stem = "cifar"  # ResNets only: cifar (3x3/1, no pool) | imagenet (7x7/2 + max-pool)
  c.model.patch_size = 0  # ViTs only: patch side; 0 = auto (4 when data.image_size <= 64, else 16)
  c.model.depth = 0  # ViTs only: transformer blocks; 0 = the variant's (12)
  # The projection head of the tasks that have one (simclr, swav; ``Task.reads``).
  c.model.head_hidden_dim = 2048
  c.model.head_out_dim = 128
  c.model.head_layers = 2
  c.model.dtype = "float32"

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "lars"  # lars | sgd | adamw
  c.optim.base_lr = 1.0  # scaled by lr_scaling with the global batch
  c.optim.lr_scaling = "linear"  # linear (lr*B/256) | sqrt (lr*sqrt(B)) | none
  c.optim.warmup_epochs = 10.0
  c.optim.weight_decay = 1e-6  # kernels only (ndim > 1, not ViT position embeddings / [CLS])
  c.optim.weight_decay_end = -1.0  # >= 0: cosine from weight_decay to this over training, per step
  # (DINO: 0.04 -> 0.4); -1: constant weight_decay
  c.optim.momentum = 0.9
  c.optim.trust_coefficient = 1e-3
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999

  # Mesh ("data", "fsdp"): the batch is split over both axes; parameters and optimizer
  # state with at least fsdp_min_size elements are split over "fsdp" (FSDP / ZeRO-3 style).
  c.parallel = ml_collections.ConfigDict()
  c.parallel.fsdp = 1  # size of the "fsdp" axis; must divide the device count
  c.parallel.fsdp_min_size = 2**14  # smaller arrays (biases, BN, small kernels) stay replicated
  c.parallel.devices = 0  # > 0: only the first this many devices (one process only); 0: all

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 512  # global, over all devices and processes
  c.train.epochs = 100.0
  c.train.steps = 0  # > 0 overrides epochs
  c.train.log_every = 50
  c.train.checkpoint_every_steps = 1000
  c.train.keep_checkpoints = 3
  c.train.probe_lr = 1e-3  # online linear probe (Adam) on detached features
  c.train.max_consecutive_nonfinite = 10  # stop (with a checkpoint) after this many NaN/inf steps in a row
  c.train.eval_every = 0  # tasks that make images: samples.png and held-out scores every this
  # many steps (0: only at the end)

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 512
  # Linear probe: logistic regression on standardised features, solved by L-BFGS until every
  # gradient entry is <= linear_tol; its L2 strength (mean CE + l2 * ||W||^2 / 2, i.e. scikit-learn's
  # C = 1 / (l2 * N)) is the grid value with the best top-1 on linear_val_fraction of the TRAIN split.
  c.eval.linear_l2_grid = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
  c.eval.linear_val_fraction = 0.1
  c.eval.linear_max_iter = 1000
  c.eval.linear_tol = 1e-5
  c.eval.knn_ks = (200, 20)  # weighted kNN (cosine) with each k: knn_k200_top1, knn_k20_top1
  c.eval.knn_temperature = 0.1
  c.eval.max_train_examples = 0  # > 0 caps the train features used by the probes
  c.eval.source = ""  # non-empty: probe on this image source instead of data.source (e.g.
  # fashion_mnist for an encoder pretrained on moving_fashion_mnist clips)
  c.eval.split = ""  # the split jssl eval scores the probes on ("" = data.eval_split); they fit on data.train_split
  c.eval.holdout_examples = 256  # reconstruction tasks: eval-split images scored during training
  c.eval.sample_images = 8  # ... of which this many are shown in samples.png

  # Each task's own section (config.<task name>), from the task's defaults().
  from jssl.tasks import task_defaults  # noqa: PLC0415  (tasks import JAX; configs rarely load alone)

  for name, section in task_defaults().items():
    c[name] = section
  return c


def finetune_config() -> ml_collections.ConfigDict:
  """Fields of a ``jssl finetune`` recipe (the image size comes from the exported encoder)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  base = default_config().data
  c.data = ml_collections.ConfigDict(
    {
      k: base[k]
      for k in ("source", "dir", "train_split", "eval_split", "shuffle_buffer", "synthetic_shape", "synthetic_examples")
    }
  )
  c.finetune = ml_collections.ConfigDict()
  c.finetune.mode = "linear"  # linear (frozen encoder) | full
  c.finetune.epochs = 10.0
  c.finetune.batch_size = 256
  c.finetune.lr = 1e-3  # head; AdamW with cosine decay
  c.finetune.encoder_lr_multiplier = 0.1  # full mode: encoder lr = lr * this
  c.finetune.weight_decay = 1e-4
  c.finetune.crop_area = (0.5, 1.0)  # training views: random resized crop + flip
  c.finetune.log_every = 50
  c.finetune.eval_batch_size = 512
  return c
