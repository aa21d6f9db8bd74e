"""DINO on ImageNet (Caron et al. 2021; facebookresearch/dino ``main_dino.py`` and its README).

  jssl pretrain --config configs/dino_imagenet.py --workdir gs://BUCKET/dino_vits16 --config.data.dir=DIR
  jssl pretrain --config configs/dino_imagenet.py:resnet50 --workdir gs://BUCKET/dino_r50 --config.data.dir=DIR

Needs a prepared TFDS imagenet2012 in DIR.

``get_config()`` / ``get_config("vit")``: ViT-S/16, 100 epochs, the README's "vanilla DINO
training" (``--arch vit_small``, every other argument at ``main_dino.py``'s default) at the
paper's batch of 1024 (Sec. 4 / appendix: "adamw ... batch size of 1024, distributed over 16
GPUs when using ViT-S/16"; the README's 8-GPU run has 512):

* AdamW, lr 0.0005 * B / 256 (``--lr``, linear scaling), 10 warm-up epochs (``--warmup_epochs``),
  cosine decay; weight decay 0.04 -> 0.4 by a cosine (``--weight_decay``, ``--weight_decay_end``);
* out_dim 65536 (``--out_dim``), head 2048 hidden / 256 bottleneck / 3 layers (``DINOHead``'s
  defaults), no batch norm in it (``--use_bn_in_head`` False), last layer normalised
  (``--norm_last_layer`` True) and frozen for 1 epoch (``--freeze_last_layer``), per-tensor
  gradient clipping at 3.0 (``--clip_grad``);
* teacher momentum 0.996 -> 1 (``--momentum_teacher``); student temperature 0.1; teacher
  temperature 0.04 throughout (``--warmup_teacher_temp`` = ``--teacher_temp`` = 0.04, 0 warm-up
  epochs: the defaults of the README's 100-epoch run);
* crops: two global 224 px crops of area (0.4, 1) (``--global_crops_scale``), 8 local 96 px crops of
  area (0.05, 0.4) (``--local_crops_number``, ``--local_crops_scale``); flip 0.5, colour jitter 0.8,
  grayscale 0.2; Gaussian blur 1.0 on the first global view, 0.1 on the second (plus solarisation
  0.2), 0.5 on the local crops (``DataAugmentationDINO``).

The paper's best ViT-S/16 (the README's "boosting DINO performance") is this with
``--config.train.epochs=300 --config.dino.teacher_temperature=0.07
--config.dino.warmup_teacher_temperature_epochs=30 --config.dino.norm_last_layer=False``.

``get_config("resnet50")``: the README's ResNet-50 command for 100 epochs on 8 GPUs
(``--arch resnet50 --optimizer sgd --lr 0.03 --weight_decay 1e-4 --weight_decay_end 1e-4
--global_crops_scale 0.14 1 --local_crops_scale 0.05 0.14``, the rest at the defaults: batch 8 x 64
= 512, 8 local crops, out_dim 65536, no batch norm in the head, clip 3.0, teacher temperature
0.04, momentum 0.996): SGD with momentum 0.9, lr 0.03 * B / 256, constant weight decay 1e-4.
(The released ResNet-50 checkpoint came from another run, LARS at batch 4080 over 80 GPUs,
according to the authors in facebookresearch/dino issue #133; the README's command is the one
documented for a single node.)

Where jssl differs from the reference, see ``jssl.tasks.dino``; in short: schedules per step, the
learning rate decays to 0 (not 1e-6), no stochastic depth in the ViT (the reference: 0.1), jitter
saturation 0.4 (DINO: 0.2), float32 rather than float16.
"""

from jssl.config import default_config

VARIANTS = ("vit", "resnet50")


def get_config(variant="vit"):
  if variant not in VARIANTS:
    raise ValueError(f"dino_imagenet.py:{variant}: choose one of {', '.join(VARIANTS)}.")
  config = default_config()
  config.task = "dino"
  config.data.source = "tfds:imagenet2012"
  config.data.eval_split = "validation"
  config.data.image_size = 224
  config.data.grayscale_to_rgb = False
  # DataAugmentationDINO: flip, jitter (0.4, 0.4, 0.2, 0.1) with p 0.8, grayscale 0.2, blur 1.0 / 0.1 / 0.5.
  config.augment.jitter_strength = 0.5
  config.augment.blur_sigma = (0.1, 2.0)
  config.augment.view1.blur_prob = 1.0
  config.augment.view2.blur_prob = 0.1
  config.augment.view2.solarize_prob = 0.2
  config.augment.local.blur_prob = 0.5
  config.augment.local_crops = 8
  config.augment.local_crop_size = 96
  # DINO's own section at main_dino.py's defaults for the 100-epoch runs.
  config.dino.out_dim = 65536
  config.dino.teacher_temperature = 0.04
  config.dino.warmup_teacher_temperature = 0.04
  config.dino.warmup_teacher_temperature_epochs = 0.0
  config.dino.base_momentum = 0.996
  config.dino.freeze_last_layer_epochs = 1.0
  config.dino.clip_grad = 3.0
  config.optim.lr_scaling = "linear"
  config.optim.warmup_epochs = 10.0
  config.train.epochs = 100.0
  config.train.log_every = 100
  config.train.checkpoint_every_steps = 2500
  config.eval.batch_size = 1024
  if variant == "vit":
    config.model.encoder = "vit_small"
    config.model.patch_size = 16
    config.augment.crop_area = (0.4, 1.0)
    config.augment.local_crop_area = (0.05, 0.4)
    config.optim.name = "adamw"
    config.optim.base_lr = 0.0005
    config.optim.weight_decay = 0.04
    config.optim.weight_decay_end = 0.4
    config.optim.b1, config.optim.b2 = 0.9, 0.999  # torch AdamW's defaults
    config.train.batch_size = 1024
  else:
    config.model.encoder = "resnet50"
    config.model.stem = "imagenet"
    config.augment.crop_area = (0.14, 1.0)
    config.augment.local_crop_area = (0.05, 0.14)
    config.optim.name = "sgd"
    config.optim.base_lr = 0.03
    config.optim.momentum = 0.9
    config.optim.weight_decay = 1e-4
    config.optim.weight_decay_end = -1.0  # constant (the command's --weight_decay_end 1e-4 = --weight_decay)
    config.train.batch_size = 512
  return config
