"""MoCo v3 on CIFAR-10 with a ResNet-18, after solo-learn's recipe
(vturrisi/solo-learn ``scripts/pretrain/cifar/mocov3.yaml`` with ``augmentations/asymmetric.yaml``,
the method in ``solo/methods/mocov3.py``).

From solo-learn: ResNet-18 (CIFAR stem), projector 2 layers 4096 -> 256 (its ResNet branch,
BN without affine on the output), predictor 4096 with no BN on its output (``last_bn=False``),
temperature 0.2, momentum 0.99 -> 1 (cosine), LARS lr 0.3 x B / 256 at batch 256, weight decay
1e-6, trust coefficient (``eta``) 0.02, no decay or trust ratio for biases and norms
(``exclude_bias_n_norm``), warm-up 10 epochs then cosine (its scheduler default), 1000 epochs.
Views: crop area (0.08, 1), colour jitter p 0.8, grayscale p 0.2, flip p 0.5, no blur,
solarisation 0 on view 1 and 0.2 on view 2.

Where jssl differs: the colour jitter is SimCLR's one strength (0.5 here: brightness, contrast,
saturation 0.4, hue 0.1), so saturation is 0.4 where solo-learn has 0.2; optax's LARS does not
clip the adapted learning rate (solo-learn's ``clip_lr``); the warm-up starts at 0, not 3e-5;
full float32 where solo-learn trains in 16-bit mixed precision.

Needs a prepared TFDS cifar10 (`tfds build cifar10 --data_dir DIR` on a machine with network):

  jssl pretrain --config configs/moco_v3_cifar10.py --workdir runs/moco_v3_cifar10 --config.data.dir=DIR
"""

from jssl.config import default_config


def get_config():
  config = default_config()  # LARS, ResNet-18 CIFAR stem: see jssl/config.py
  config.task = "moco_v3"
  config.data.source = "tfds:cifar10"
  config.data.image_size = 32
  config.data.grayscale_to_rgb = False
  config.augment.crop_area = (0.08, 1.0)
  config.augment.jitter_strength = 0.5
  config.augment.blur_prob = 0.0
  config.augment.view1.solarize_prob = 0.0
  config.augment.view2.solarize_prob = 0.2
  config.model.encoder = "resnet18"
  config.model.head_layers = 2
  config.model.head_hidden_dim = 4096
  config.model.head_out_dim = 256
  config.moco_v3.predictor_hidden_dim = 4096
  config.moco_v3.predictor_out_norm = "none"
  config.moco_v3.temperature = 0.2
  config.moco_v3.base_momentum = 0.99
  config.optim.name = "lars"
  config.optim.base_lr = 0.3
  config.optim.lr_scaling = "linear"
  config.optim.weight_decay = 1e-6
  config.optim.trust_coefficient = 0.02
  config.optim.momentum = 0.9
  config.optim.warmup_epochs = 10.0
  config.train.batch_size = 256
  config.train.epochs = 1000.0
  config.train.log_every = 50
  config.train.checkpoint_every_steps = 1000
  return config
