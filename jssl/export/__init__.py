"""Export a pretrained encoder out of a run, and load it back for inference.

``export_encoder(workdir, out_dir)`` restores a ``jssl pretrain`` run's checkpoint, keeps
only the encoder's variables (parameters and batch-norm statistics; no projection head,
optimizer or probe) and writes to ``out_dir``:

* ``jssl_encoder.json``, always, written last (an export without it is incomplete)::

    {"format_version": 1, "format": "orbax" | "npz" | "torch",
     "architecture": {"name": "resnet18", "kwargs": {"width_multiplier", "stem", "dtype"}},
                                      # ViTs: {"name": "vit_tiny", "kwargs": {"patch_size", "depth", "dtype"}}
     "num_features": 512,
     "input": {"image_size", "channels", "value_range": [0, 1], "normalization": "none",
               "grayscale_to_rgb"},
     "source_run": {"workdir", "step", "config": {...the run's config.json, data facts included...}},
     "torchvision" | "timm": {...}}     # torch format only: how to load it, see below

* ``format="orbax"``: ``variables/``, an Orbax checkpoint of ``{"params", "batch_stats"}``
  (``{"params"}`` alone for encoders without batch norm: ViTs).
* ``format="npz"``: ``encoder.npz``, flat keys such as ``params/layer1_0/conv1/kernel`` and
  ``batch_stats/layer1_0/bn1/mean`` (plain arrays: loads with ``allow_pickle=False``).
* ``format="torch"``: ``encoder.safetensors`` (header metadata ``{"format": "pt"}``), which
  ``load_encoder`` does not read. ResNets get torchvision's ResNet key names and layouts
  (conv ``weight`` ``[out, in, kh, kw]``; BN ``weight``, ``bias``, ``running_mean``,
  ``running_var`` and ``num_batches_tracked`` (int64 0)), ViTs timm's ``VisionTransformer``
  ones (below). There is no ``fc``: set ``model.fc = torch.nn.Identity()`` before loading
  (then a strict load works), or load with ``strict=False``.

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

  A ViT loads into timm (``timm_map`` has the names and shapes): the json's ``"timm"`` entry
  holds the constructor, e.g. for ``vit_tiny`` with 4 px patches on 32 px images::

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32,
                              patch_size=4, depth=12, global_pool="token", act_layer="gelu_tanh")
    model.load_state_dict(load_file("OUT/encoder.safetensors"))  # strict: no head, nothing missing
    features = model.eval()(images_nchw)  # the final LayerNorm'd [CLS] token, [N, 192]

  ``act_layer="gelu_tanh"``: jssl's MLP uses GELU's tanh approximation, timm's default is
  the exact GELU. ``pos_embed``'s [CLS] slot is zeros (jssl's cover the patches only).

``load_encoder(out_dir)`` reads the json first (an unknown architecture or format fails
before any compute), rebuilds the encoder with ``jssl.models.make_encoder``, checks every
array's shape against the model's and returns a callable ``LoadedEncoder``. Nothing on
the load path uses pickle.

Exporting needs the run's workdir, not its training data: the state's shapes come from the
data facts its ``config.json`` recorded (``jssl.data.facts``).

The modules: ``writer`` (``export_encoder``, ``export_main``), ``loader`` (``load_encoder``,
``read_metadata``, ``LoadedEncoder``), ``torchvision_map`` (``torch_state_dict``,
``torchvision_recipe``), ``timm_map`` (``timm_state_dict``, ``timm_recipe``) and ``layout``
(file names, flat keys).
"""

from jssl.export.layout import FORMAT_VERSION, FORMATS, METADATA_FILE, NPZ_FILE, ORBAX_DIR, TORCH_FILE
from jssl.export.loader import LoadedEncoder, load_encoder, read_metadata
from jssl.export.timm_map import timm_recipe, timm_state_dict
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
  "timm_recipe",
  "timm_state_dict",
  "torch_state_dict",
  "torchvision_recipe",
]
