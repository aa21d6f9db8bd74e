"""MoCo v3 on ImageNet (Chen, Xie & He 2021): ResNet-50, or ViT-Small/16 with ``:vit``.

  jssl pretrain --config configs/moco_v3_imagenet.py --workdir gs://BUCKET/moco_v3_r50 --config.data.dir=DIR
  jssl pretrain --config configs/moco_v3_imagenet.py:vit --workdir gs://BUCKET/moco_v3_vits --config.data.dir=DIR
  (also :resnet50_300ep, :resnet50_1000ep)

Values from facebookresearch/moco-v3: ``main_moco.py``'s defaults, the commands in ``CONFIG.md``
and the heads of ``moco/builder.py`` (``MoCo_ResNet``, ``MoCo_ViT``).

ResNet-50 (``CONFIG.md``, "ResNet-50, 100-epoch pre-training": ``--moco-m-cos --crop-min=.2``
on the defaults): batch 4096, LARS (momentum 0.9, trust coefficient 0.001) with lr 0.6 x B / 256
(``--lr`` default 0.6), weight decay 1e-6, 10 warm-up epochs then cosine, 100 epochs, temperature
1.0, momentum 0.99 -> 1 (cosine), crop area (0.2, 1). 300 epochs: lr 0.3; 1000 epochs: lr 0.3,
weight decay 1.5e-6, momentum 0.996. Heads as ``MoCo_ResNet``: projector 2 layers 4096 -> 256
(BN without affine on the output), predictor 4096 -> 256 without BN on its output.

ViT-Small (``CONFIG.md``, "ViT-Small, 4-node (32-GPU) pre-training", batch 4096 by default):
AdamW (torch's betas 0.9, 0.999) lr 1.5e-4 x B / 256, weight decay 0.1, 40 warm-up epochs, 300
epochs, temperature 0.2, momentum 0.99 -> 1, the patch projection frozen (``--stop-grad-conv1``),
crop area (0.08, 1) (the default ``--crop-min``). Heads as ``MoCo_ViT``: projector 3 layers 4096
-> 256, predictor 4096 -> 256, both with BN (no affine) on the output.

Views (both): BYOL's asymmetric recipe as ``main_moco.py``: colour jitter p 0.8, grayscale p 0.2,
flip p 0.5; blur p 1.0 on view 1 and 0.1 on view 2, solarisation p 0 and 0.2.

Where jssl differs: the colour jitter is SimCLR's one strength (0.5: brightness, contrast,
saturation 0.4, hue 0.1) where the reference has saturation 0.2; float32 where the reference
trains in mixed precision; see jssl/tasks/moco_v3.py for the ViT's differences (learned
position embeddings, weight decay only on kernels).
"""

from jssl.config import default_config

# variant: (epochs, base lr, weight decay, base momentum), ResNet-50 rows of the reference's README/CONFIG.md.
RESNET50 = {
  "resnet50": (100, 0.6, 1e-6, 0.99),
  "resnet50_300ep": (300, 0.3, 1e-6, 0.99),
  "resnet50_1000ep": (1000, 0.3, 1.5e-6, 0.996),
}
VARIANTS = (*RESNET50, "vit")


def get_config(variant="resnet50"):
  if variant not in VARIANTS:
    raise ValueError(f"moco_v3_imagenet.py:{variant}: choose one of {', '.join(VARIANTS)}.")
  config = default_config()
  config.task = "moco_v3"
  config.data.source = "tfds:imagenet2012"
  config.data.eval_split = "validation"
  config.data.image_size = 224
  config.data.grayscale_to_rgb = False
  config.augment.jitter_strength = 0.5
  config.augment.view1.blur_prob = 1.0
  config.augment.view2.blur_prob = 0.1
  config.augment.view1.solarize_prob = 0.0
  config.augment.view2.solarize_prob = 0.2
  config.model.head_hidden_dim = 4096
  config.model.head_out_dim = 256
  config.moco_v3.predictor_hidden_dim = 4096
  config.moco_v3.base_momentum = 0.99
  config.optim.lr_scaling = "linear"
  config.train.batch_size = 4096
  config.train.log_every = 100
  config.train.checkpoint_every_steps = 2500
  config.eval.batch_size = 1024

  if variant == "vit":
    config.model.encoder = "vit_small"
    config.model.patch_size = 16
    config.model.head_layers = 3
    config.moco_v3.predictor_out_norm = "bn_no_affine"
    config.moco_v3.temperature = 0.2
    config.moco_v3.freeze_patch_embed = True
    config.augment.crop_area = (0.08, 1.0)
    config.optim.name = "adamw"
    config.optim.base_lr = 1.5e-4
    config.optim.weight_decay = 0.1
    config.optim.b1 = 0.9
    config.optim.b2 = 0.999
    config.optim.warmup_epochs = 40.0
    config.train.epochs = 300.0
    return config

  epochs, lr, weight_decay, momentum = RESNET50[variant]
  config.model.encoder = "resnet50"
  config.model.stem = "imagenet"
  config.model.head_layers = 2
  config.moco_v3.predictor_out_norm = "none"
  config.moco_v3.temperature = 1.0
  config.moco_v3.base_momentum = momentum
  config.augment.crop_area = (0.2, 1.0)
  config.optim.name = "lars"
  config.optim.base_lr = lr
  config.optim.weight_decay = weight_decay
  config.optim.momentum = 0.9
  config.optim.trust_coefficient = 1e-3
  config.optim.warmup_epochs = 10.0
  config.train.epochs = float(epochs)
  return config
