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
     "source_run": {"workdir", "step", "config": {...the run's config.json, data facts included...}},
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

Exporting needs the run's workdir, not its training data: the state's shapes come from the
data facts its ``config.json`` recorded (``jssl.data.facts``).

The modules: ``writer`` (``export_encoder``, ``export_main``), ``loader`` (``load_encoder``,
``read_metadata``, ``LoadedEncoder``), ``torchvision_map`` (``torch_state_dict``,
``torchvision_recipe``) and ``layout`` (file names, flat keys).
"""

from jssl.export.layout import FORMAT_VERSION, FORMATS, METADATA_FILE, NPZ_FILE, ORBAX_DIR, TORCH_FILE
from jssl.export.loader import LoadedEncoder, load_encoder, read_metadata
from jssl.export.torchvision_map import torch_state_dict, torchvision_recipe
from jssl.export.writer import export_encoder, export_main

__all__ = [
  "FORMATS",
  "FORMAT_VERSION",
  "METADATA_FILE",
  "NPZ_FILE",
  "ORBAX_DIR",
  "TORCH_FILE",
  "LoadedEncoder",
  "export_encoder",
  "export_main",
  "load_encoder",
  "read_metadata",
  "torch_state_dict",
  "torchvision_recipe",
]
