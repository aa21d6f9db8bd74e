"""Python config files (``get_config()`` returning an ``ml_collections.ConfigDict``) and typed overrides.

A recipe is a file in ``configs/``; the command line changes single fields with
``--config.section.key=value``. An override is parsed to the type of the field it
replaces, and a key that does not exist is an error that lists the valid keys. ``validate``
then refuses values that cannot work (a negative step count, a zero batch, a temperature <= 0
...; the table ``RULES``) before a run reads data or writes its workdir.
"""

import ast
import importlib.util
import inspect
import json
import math
import pathlib

import ml_collections

from jssl.errors import ConfigError, MissingError, UnknownKeyError

RECIPE_DIRS = (
  pathlib.Path(__file__).parent / "configs",  # an installed wheel: configs/ ships as jssl/configs/
  pathlib.Path(__file__).parents[1] / "configs",  # a source checkout
)


def packaged_recipe(path: pathlib.Path) -> pathlib.Path:
  """A shipped recipe named without its folder (``smoke``, ``smoke.py``, ``configs/smoke.py``),
  from wherever jssl is installed; MissingError, listing the recipes, when there is none."""
  name = path.name if path.suffix == ".py" else path.name + ".py"
  if len(path.parts) == 1 or path.parent.name == "configs":
    for folder in RECIPE_DIRS:
      if (folder / name).is_file():
        return folder / name
  shipped = sorted({p.stem for folder in RECIPE_DIRS if folder.is_dir() for p in folder.glob("*.py")})
  raise MissingError(
    f"Config file {path} not found; pass a file (e.g. --config configs/smoke.py) or one of the "
    f"recipes jssl ships, by name (e.g. --config smoke): {', '.join(shipped) or 'none found'}."
  )


def load_config(path: str | pathlib.Path) -> ml_collections.ConfigDict:
  """Imports ``path`` and returns its ``get_config()``, locked so that typos fail loudly.

  ``file.py:ARG`` calls ``get_config("ARG")`` (ml_collections' convention), for files that
  hold one recipe per task, e.g. ``configs/smoke.py:inpainting``. A recipe jssl ships may be
  named without its folder, from any directory: ``smoke``, ``pretext_cpu.py:mae``. A ``:ARG`` that the file's
  ``get_config`` does not take (or one missing that it needs) and a ``get_config`` that returns
  anything but a ``ConfigDict`` are ``ConfigError`` s.
  """
  path, colon, argument = str(path).partition(".py:")
  path = pathlib.Path(path + ".py" if colon else path)
  if not path.is_file():
    path = packaged_recipe(path)
  spec = importlib.util.spec_from_file_location(f"jssl_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  get_config = getattr(module, "get_config", None)
  if not callable(get_config):
    raise ConfigError(f"Config file {path} has no get_config() function.")
  arguments = (argument,) if colon else ()
  try:
    inspect.signature(get_config).bind(*arguments)
  except TypeError:
    if colon:
      raise ConfigError(
        f"{path}:{argument}: the get_config() of {path} takes no argument; drop ':{argument}' (--config {path})."
      ) from None
    raise ConfigError(
      f"{path}: its get_config{inspect.signature(get_config)} needs an argument; pass it as --config {path}:ARG."
    ) from None
  config = get_config(*arguments)
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(
      f"{path}: get_config() returned a {type(config).__name__}, not an ml_collections.ConfigDict; "
      "return one, e.g. jssl.config.default_config() with your changes."
    )
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


# --------------------------------------------------------------------------- validation


def _at_least(low):
  return lambda value, config: value >= low


def _positive(value, config) -> bool:
  return math.isfinite(value) and value > 0  # NaN and inf are refused too


def _nonnegative(value, config) -> bool:
  return math.isfinite(value) and value >= 0


def _probability(value, config) -> bool:
  return 0 <= value <= 1


def _strict_fraction(value, config) -> bool:
  return 0 < value < 1


def _decay(value, config) -> bool:
  return 0 <= value < 1


def _area_range(value, config) -> bool:
  return len(value) == 2 and 0 < value[0] <= value[1] <= 1


def _aspect_range(value, config) -> bool:
  return len(value) == 2 and 0 < value[0] <= value[1]


def _one_of(*choices):
  return lambda value, config: value in choices


def _each(predicate):
  return lambda values, config: all(predicate(v, config) for v in values)


# The numeric fields ``validate`` checks, in order: (dotted field, predicate(value, config), what
# to do). A field the config lacks is skipped (a finetune recipe has no train section, a pretrain
# one no finetune section). ``augment`` is checked by its own code (``validate``). Task sections
# are here because their tasks check them only when the run is built, after its data is read;
# data-source fields (synthetic_*, photo_*, clip_* ...) are their sources' to check.
RULES = (
  ("data.image_size", _at_least(1), "give the side of the images the model sees, in pixels (>= 1)"),
  ("data.shuffle_buffer", _at_least(1), "use a shuffle buffer of >= 1 examples"),
  ("model.width_multiplier", _positive, "use a positive width factor (1.0: the standard widths)"),
  ("model.patch_size", _at_least(0), "use a positive patch side, or 0 for the automatic one"),
  ("model.depth", _at_least(0), "use a positive number of blocks, or 0 for the variant's"),
  ("model.head_hidden_dim", _at_least(0), "use 0 (the encoder's feature width) or a positive width"),
  ("model.head_out_dim", _at_least(1), "use a positive width"),
  ("model.head_layers", _at_least(1), "use 1 (a linear head) or more layers"),
  ("optim.base_lr", _positive, "use a positive learning rate"),
  ("optim.warmup_epochs", _nonnegative, "use 0 (no warm-up) or a positive number of epochs"),
  ("optim.weight_decay", _nonnegative, "use 0 (none) or a positive weight decay"),
  (
    "optim.weight_decay_end",
    lambda value, config: value == -1 or _nonnegative(value, config),
    "use -1 (constant optim.weight_decay) or the final weight decay of a cosine schedule, >= 0",
  ),
  ("optim.momentum", _decay, "use a momentum in [0, 1)"),
  ("optim.trust_coefficient", _positive, "use a positive LARS trust coefficient"),
  ("optim.b1", _decay, "use a decay rate in [0, 1)"),
  ("optim.b2", _decay, "use a decay rate in [0, 1)"),
  ("parallel.fsdp", _at_least(1), "use 1 (no FSDP) or a divisor of the device count"),
  ("parallel.fsdp_min_size", _at_least(0), "use an element count >= 0"),
  ("parallel.devices", _at_least(0), "use 0 (every device) or a positive device count"),
  ("train.batch_size", _at_least(1), "use a positive global batch size, a multiple of the device count"),
  ("train.steps", _at_least(0), "use a positive step count, or 0 to train for train.epochs"),
  (
    "train.epochs",
    lambda value, config: config.train.steps > 0 or _positive(value, config),
    "with train.steps=0 the run lasts train.epochs: use a positive number of epochs, or set train.steps",
  ),
  ("train.log_every", _at_least(1), "log every 1 or more steps"),
  ("train.checkpoint_every_steps", _at_least(1), "checkpoint every 1 or more steps"),
  ("train.keep_checkpoints", _at_least(1), "keep 1 or more checkpoints (resuming needs one)"),
  ("train.probe_lr", _positive, "use a positive learning rate"),
  ("train.max_consecutive_nonfinite", _at_least(1), "use a count >= 1"),
  ("train.eval_every", _at_least(0), "use 0 (only at the end) or a positive step count"),
  ("eval.batch_size", _at_least(1), "use a positive batch size"),
  (
    "eval.linear_l2_grid",
    lambda value, config: len(value) > 0 and all(_nonnegative(v, config) for v in value),
    "give one or more L2 strengths >= 0",
  ),
  (
    "eval.linear_val_fraction",
    lambda value, config: 0 < value < 1 or (value == 0 and len(config.eval.linear_l2_grid) == 1),
    "use a fraction in (0, 1) of the train split (0 only with a single eval.linear_l2_grid value)",
  ),
  ("eval.linear_max_iter", _at_least(1), "use 1 or more iterations"),
  ("eval.linear_tol", _positive, "use a positive tolerance"),
  ("eval.knn_ks", _each(_at_least(1)), "give neighbour counts >= 1"),
  ("eval.protocol", _one_of("converged", "paper"), "use converged (solved to the optimum) or paper (SGD, augmented)"),
  ("eval.paper_epochs", _positive, "use a positive number of epochs"),
  ("eval.paper_lr", _positive, "use a positive learning rate"),
  ("eval.knn_temperature", _positive, "use a positive temperature"),
  ("eval.max_train_examples", _at_least(0), "use 0 (every example) or a positive cap"),
  ("eval.holdout_examples", _at_least(1), "use 1 or more images"),
  ("eval.sample_images", _at_least(1), "use 1 or more images"),
  ("simclr.temperature", _positive, "use a positive temperature (SimCLR: 0.1 to 0.5)"),
  ("simclr.block_size", _at_least(0), "use 0 (the whole batch at once) or a positive block size"),
  ("simclr.microbatches", _at_least(1), "use 1 (no gradient caching) or more micro-batches"),
  ("swav.num_prototypes", _at_least(2), "use 2 or more prototypes"),
  ("swav.temperature", _positive, "use a positive temperature (SwAV: 0.1)"),
  ("swav.epsilon", _positive, "use a positive Sinkhorn regularisation (SwAV: 0.05)"),
  ("swav.sinkhorn_iterations", _at_least(1), "use 1 or more iterations"),
  ("swav.freeze_prototypes_steps", _at_least(0), "use 0 (never frozen) or a positive step count"),
  ("deepcluster.num_clusters", _at_least(2), "use 2 or more clusters"),
  ("deepcluster.kmeans_iterations", _at_least(1), "use 1 or more iterations"),
  ("deepcluster.recluster_every_steps", _at_least(0), "use 0 (once per epoch) or a positive step count"),
  ("deepcluster.pca_dim", _at_least(0), "use 0 (no PCA) or a positive dimension"),
  ("mae.mask_ratio", _strict_fraction, "hide a fraction in (0, 1) of the patches (MAE: 0.75)"),
  ("mae.decoder_dim", _at_least(1), "use a positive width"),
  ("mae.decoder_depth", _at_least(1), "use 1 or more blocks"),
  ("mae.decoder_heads", _at_least(1), "use 1 or more heads"),
  ("rotation.head_hidden_dim", _at_least(1), "use a positive width"),
  ("rotation.head_layers", _at_least(1), "use 1 (a linear head) or more layers"),
  ("colorization.grid", _positive, "use a positive ab bin size"),
  ("colorization.neighbours", _at_least(1), "use 1 or more bins"),
  ("colorization.sigma", _positive, "use a positive width"),
  ("colorization.rebalance_lambda", _probability, "use a mix in [0, 1] (1: no rebalancing)"),
  ("colorization.prior_momentum", _decay, "use a momentum in [0, 1)"),
  ("colorization.temperature", _positive, "use a positive temperature (0.38: the paper's)"),
  ("superres.factor", _at_least(2), "use a factor >= 2 that divides data.image_size"),
  ("inpainting.area_fraction", _strict_fraction, "mask a fraction in (0, 1) of the image"),
  ("inpainting.max_rectangles", _at_least(1), "use 1 or more rectangles"),
  ("inpainting.reconstruction_weight", _nonnegative, "use a weight >= 0"),
  ("inpainting.adversarial_weight", _nonnegative, "use a weight >= 0 (0 turns the discriminator off)"),
  ("inpainting.discriminator_widths", _each(_at_least(1)), "give positive widths"),
  ("inpainting.discriminator_lr", _positive, "use a positive learning rate"),
  ("inpainting.discriminator_b1", _decay, "use a decay rate in [0, 1)"),
  ("frame_order.tuple_frames", _at_least(3), "use 3 or more frames per tuple"),
  (
    "frame_order.positive_fraction",
    lambda value, config: config.frame_order.mode != "binary" or 0 < value < 1,
    "show a fraction strictly between 0 and 1 of the tuples in order",
  ),
  ("frame_order.frame_gap", _at_least(0), "use 0 (as far apart as the clip allows) or a positive frame count"),
  ("frame_order.crop_area", _area_range, "use (low, high) with 0 < low <= high <= 1"),
  ("frame_order.crop_aspect", _aspect_range, "use (low, high) with 0 < low <= high"),
  ("frame_order.flip_prob", _probability, "use a probability in [0, 1]"),
  ("frame_order.head_hidden_dim", _at_least(1), "use a positive width"),
  ("frame_order.head_input", _one_of("differences", "concat"), "use differences or concat"),
  ("frame_order.window", _one_of("motion", "uniform"), "use motion (high-motion windows) or uniform"),
  ("finetune.init", _one_of("pretrained", "random"), "use pretrained (the export's weights) or random"),
  ("finetune.epochs", _positive, "use a positive number of epochs"),
  ("finetune.batch_size", _at_least(1), "use a positive batch size, a multiple of the device count"),
  ("finetune.lr", _positive, "use a positive learning rate"),
  ("finetune.encoder_lr_multiplier", _nonnegative, "use a factor >= 0"),
  ("finetune.warmup_fraction", lambda value, config: 0 <= value < 1, "use a fraction in [0, 1) of the steps"),
  ("finetune.weight_decay", _nonnegative, "use 0 (none) or a positive weight decay"),
  ("finetune.head_init", _one_of("zeros", "linear_probe"), "use zeros or linear_probe (LP-FT)"),
  ("finetune.probe_examples", _at_least(0), "use 0 (every train image) or a positive count"),
  ("finetune.layer_decay", lambda value, config: 0 < value <= 1, "use a factor in (0, 1]; 1 is no layer decay"),
  ("finetune.crop_area", _area_range, "use (low, high) with 0 < low <= high <= 1"),
  ("finetune.log_every", _at_least(1), "log every 1 or more steps"),
  ("finetune.eval_batch_size", _at_least(1), "use a positive batch size"),
)

_ABSENT = object()


def _field(config: ml_collections.ConfigDict, dotted: str):
  """``config.<dotted>``, or ``_ABSENT`` when the config has no such field."""
  node = config
  for part in dotted.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return _ABSENT
    node = node[part]
  return node


def validate(config: ml_collections.ConfigDict, *, only: tuple[str, ...] = ()) -> None:
  """Refuses a config (pretrain or finetune) that cannot work, before any data is read or file written.

  ``only`` (section names, e.g. ``("eval",)``): check just the ``RULES`` of those sections, as
  ``jssl eval`` does for the settings it may change on a finished run.

  In order: a pretrain config's fields that its task ignores (``jssl.tasks.check_fields``),
  then each of ``RULES``, then the ``augment`` section (the code that builds the views checks
  it, ``jssl.data.multicrop.multi_crop_configs``). Checks that need the data or the devices
  (batch vs device count, patch size vs image size ...) stay where the run is built.

  Raises:
    ConfigError: naming the first field out of range, its value and what to use instead.
  """
  rules = [rule for rule in RULES if rule[0].split(".")[0] in only] if only else RULES
  if only and not rules:
    raise ValueError(f"validate: no rules for sections {only}.")
  if "task" in config and not only:
    from jssl.tasks import check_fields  # noqa: PLC0415  (tasks import JAX; this module loads without it)

    check_fields(config)
  for field, ok, fix in rules:
    value = _field(config, field)
    if value is not _ABSENT and not ok(value, config):
      raise ConfigError(f"{field}={value!r}: {fix}.")
  if only:
    return
  if "augment" in config:
    from jssl.data.multicrop import multi_crop_configs  # noqa: PLC0415  (imports TF)

    multi_crop_configs(config.augment, image_size=config.data.image_size)


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
  # moving_fashion_mnist: each object's size goes steadily from s0 to s1 of its own, both drawn
  # from this range, through the clip (a cue to the order pooled features see); (1, 1): fixed size.
  c.data.video_scale = (0.5, 1.0)

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
  # The projection head of the tasks that have one (simclr, swav and the view methods; ``Task.reads``).
  # 0: hidden layers as wide as the encoder's features (SimCLR's and SwAV's reference code: 512 on
  # ResNet-18, 2048 on ResNet-50); the other methods' recipes set their papers' widths.
  c.model.head_hidden_dim = 0
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
  # "paper": instead, the papers' protocol (jssl.linear_eval): SGD (Nesterov) on frozen features of
  # augmented training images for paper_epochs, lr paper_lr * batch / 256, no weight decay.
  c.eval.protocol = "converged"  # converged | paper
  c.eval.paper_epochs = 90.0
  c.eval.paper_lr = 0.1
  c.eval.knn_ks = (200, 20)  # weighted kNN (cosine) with each k: knn_k200_top1, knn_k20_top1
  c.eval.knn_temperature = 0.1
  c.eval.max_train_examples = 0  # > 0 caps the train features used by the probes
  c.eval.source = ""  # non-empty: probe on this image source instead of data.source (e.g.
  # fashion_mnist for an encoder pretrained on moving_fashion_mnist clips)
  c.eval.split = ""  # the split jssl eval scores the probes on ("" = data.eval_split); they fit on data.train_split
  c.eval.baselines = True  # also probe the random-init encoder and the raw pixels (off: the pretrained encoder only)
  c.eval.pictures = True  # jssl eval also draws neighbours.png, embedding.png and summary.png (jssl.eval_pictures)
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
  c.finetune.init = "pretrained"  # pretrained: the export's weights | random: its architecture, freshly initialised
  c.finetune.epochs = 10.0
  c.finetune.batch_size = 256
  c.finetune.lr = 1e-3  # head; AdamW with cosine decay
  c.finetune.warmup_fraction = 0.0  # of the steps, a linear warm-up from 0 before the cosine
  c.finetune.encoder_lr_multiplier = 0.1  # full mode: encoder lr = lr * this
  c.finetune.weight_decay = 1e-4
  c.finetune.head_init = "zeros"  # zeros | linear_probe: the converged probe of the starting features (LP-FT)
  c.finetune.probe_examples = 10_000  # linear_probe: train images it is fit on (0: all)
  c.finetune.layer_decay = 1.0  # full mode, ViT: block i's rate * layer_decay ** (depth - i) (MAE: 0.75)
  c.finetune.crop_area = (0.5, 1.0)  # training views: random resized crop + flip
  c.finetune.log_every = 50
  c.finetune.eval_batch_size = 512
  return c
