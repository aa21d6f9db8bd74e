"""DINO on CIFAR-10 with a ResNet-18 (CIFAR stem): solo-learn's recipe
(vturrisi/solo-learn ``scripts/pretrain/cifar/dino.yaml`` with ``augmentations/asymmetric.yaml``,
and the defaults ``solo/methods/dino.py`` fills in).

From solo-learn: batch 256, 1000 epochs, LARS with lr 0.3 * B / 256 (linear scaling), LARS
eta 0.02 with biases and norms out of the adaptation, weight decay 1e-6 constant, warm-up cosine
schedule (10 warm-up epochs, solo-learn's default); DINO head 2048 hidden, 256
bottleneck, 4096 prototypes (``dino.out_dim``), no batch norm in the head, last layer
normalised and frozen for 1 epoch, no gradient clipping (solo-learn's ``clip_grad`` 0); student
temperature 0.1, teacher temperature 0.07 throughout (solo-learn's default warm-up is 0 epochs
from 0.04, so it starts at 0.07); teacher momentum 0.9995 rising to 1 (cosine); two global
32 px views (no multi-crop) with crop area (0.08, 1), flip 0.5, colour jitter 0.8, grayscale 0.2,
no blur, solarisation 0.2 on the second view only.

Where jssl differs: jssl's colour jitter has one strength (0.5: brightness / contrast 0.4, hue 0.1,
saturation 0.4 where solo-learn has 0.2); SimCLR's crop sampler floors crops at 10% of the
image (solo-learn's goes to 8%); optax's LARS does not clip the adaptive rate at the base one
(solo-learn's ``clip_lr``); biases and norms get no weight decay (solo-learn decays them:
``exclude_bias_n_norm_wd`` defaults to False; 1e-6 either way); the warm-up starts at 0
(solo-learn's at 3e-5 * B / 256) and there is no
classifier trained alongside (jssl's online probe sees detached features); float32, not fp16.

Needs a prepared TFDS cifar10 (`tfds build cifar10 --data_dir DIR` on a machine with network):

  jssl pretrain --config configs/dino_cifar10.py --workdir runs/dino_cifar10 --config.data.dir=DIR
"""

from jssl.config import default_config


def get_config():
  config = default_config()  # ResNet-18 CIFAR stem, LARS: see jssl/config.py
  config.task = "dino"
  config.data.source = "tfds:cifar10"
  config.data.image_size = 32
  config.data.grayscale_to_rgb = False
  # Views (asymmetric.yaml): SimCLR's crops and jitter, solarisation on the second view.
  config.augment.crop_area = (0.08, 1.0)
  config.augment.jitter_strength = 0.5
  config.augment.view2.solarize_prob = 0.2
  # DINO (solo/methods/dino.py defaults, dino.yaml's method_kwargs).
  config.dino.head_hidden_dim = 2048
  config.dino.bottleneck_dim = 256
  config.dino.out_dim = 4096
  config.dino.teacher_temperature = 0.07
  config.dino.warmup_teacher_temperature_epochs = 0.0
  config.dino.base_momentum = 0.9995
  config.dino.freeze_last_layer_epochs = 1.0
  config.dino.clip_grad = 0.0
  # Optimizer (dino.yaml): LARS, lr 0.3 * B / 256, eta 0.02, weight decay 1e-6.
  config.optim.name = "lars"
  config.optim.base_lr = 0.3
  config.optim.lr_scaling = "linear"
  config.optim.trust_coefficient = 0.02
  config.optim.weight_decay = 1e-6
  config.optim.warmup_epochs = 10.0
  config.train.batch_size = 256
  config.train.epochs = 1000.0
  config.train.log_every = 50
  config.train.checkpoint_every_steps = 1000
  return config
