"""The demo: SimCLR on real Fashion-MNIST, sized to finish in about 10 minutes on 2 CPU cores.

  jssl pretrain --config configs/simclr_fashion_mnist_cpu.py --workdir runs/demo
  jssl eval --workdir runs/demo

A ResNet with one basic block per stage at width 16 (128 features), 28 px views
(CIFAR stem), batch 256, AdamW. `make demo` runs exactly this.
"""

from jssl.config import default_config


def get_config():
  config = default_config()
  config.data.source = "fashion_mnist"
  config.data.image_size = 28
  config.augment.jitter_strength = 0.5
  config.augment.blur_prob = 0.0  # blur erases most of a 28 px image
  config.model.encoder = "resnet_tiny"
  config.model.head_hidden_dim = 512
  config.model.head_out_dim = 128
  config.loss.temperature = 0.5
  config.optim.name = "adamw"
  config.optim.base_lr = 2e-3
  config.optim.lr_scaling = "none"
  config.optim.weight_decay = 1e-4
  config.optim.warmup_epochs = 0.1
  config.train.batch_size = 256
  config.train.steps = 1000
  config.train.log_every = 25
  config.train.checkpoint_every_steps = 200
  config.eval.batch_size = 1000
  return config
