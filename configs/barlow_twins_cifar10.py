"""Barlow Twins on CIFAR-10, after solo-learn's ResNet-18 recipe (vturrisi/solo-learn
``scripts/pretrain/cifar/barlow.yaml`` with ``augmentations/asymmetric.yaml``).

From solo-learn: ResNet-18 with the CIFAR stem (3x3 conv, no max-pool), projector 2048-2048-2048
(3 layers), lambda 0.0051 (its default), loss scaled by 0.1, batch 256, 1000 epochs, LARS with
lr 0.3 * B / 256 for all parameters (no separate bias rate), eta 0.02, weight decay 1e-4 with
biases and batch-norm parameters excluded from it and from the trust ratio, 10 warm-up epochs
(its default) and cosine decay. Views: crop area (0.08, 1), colour jitter with p 0.8, grayscale
p 0.2, no blur, solarisation only on view 2 (p 0.2).

Needs a prepared TFDS cifar10 (`tfds build cifar10 --data_dir DIR` on a machine with network):

  jssl pretrain --config configs/barlow_twins_cifar10.py --workdir runs/barlow_cifar10 --config.data.dir=DIR

Where jssl differs:

* LARS without solo-learn's ``clip_lr`` (LARC's clipping): a kernel's step is its gradient
  times ``lr * eta * ||w|| / ||g||`` here (optax's ``lars``), times ``min(eta * ||w|| / ||g||, lr)``
  in solo-learn. eta is solo-learn's 0.02; jssl.optim has no clipping mode to match it exactly.
* solo-learn's warm-up starts at 3e-5 and its cosine ends at 0; jssl's warm-up starts at 0.
* Colour jitter: jssl's one strength (0.5) gives brightness, contrast and saturation 0.4 and
  hue 0.1; solo-learn's saturation is 0.2.
* solo-learn trains in float16 mixed precision; this recipe in float32.
"""

from jssl.config import default_config


def get_config():
  config = default_config()  # ResNet-18 with the CIFAR stem
  config.task = "barlow_twins"
  config.data.source = "tfds:cifar10"
  config.data.image_size = 32
  config.data.grayscale_to_rgb = False
  config.augment.crop_area = (0.08, 1.0)
  config.augment.jitter_strength = 0.5  # brightness/contrast 0.4, hue 0.1 (solo-learn: saturation 0.2, here 0.4)
  config.augment.jitter_prob = 0.8
  config.augment.grayscale_prob = 0.2
  config.augment.blur_prob = 0.0
  config.augment.view2.solarize_prob = 0.2
  config.model.encoder = "resnet18"
  config.model.stem = "cifar"
  config.model.head_hidden_dim = 2048
  config.model.head_out_dim = 2048
  config.model.head_layers = 3
  config.barlow_twins.lambd = 0.0051
  config.barlow_twins.scale_loss = 0.1
  config.barlow_twins.bias_lr_ratio = 1.0  # solo-learn: one learning rate for all parameters
  config.optim.name = "lars"
  config.optim.base_lr = 0.3  # x B / 256
  config.optim.lr_scaling = "linear"
  config.optim.weight_decay = 1e-4
  config.optim.warmup_epochs = 10.0
  config.optim.momentum = 0.9
  config.optim.trust_coefficient = 0.02  # LARS eta
  config.train.batch_size = 256
  config.train.epochs = 1000.0
  config.train.log_every = 50
  config.train.checkpoint_every_steps = 5000
  return config
