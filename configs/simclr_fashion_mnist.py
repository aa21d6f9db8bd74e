"""SimCLR on Fashion-MNIST for an accelerator: ResNet-18 (CIFAR stem), batch 1024, 500 epochs, LARS.

  jssl pretrain --config configs/simclr_fashion_mnist.py --workdir runs/fmnist_r18
  jssl eval --workdir runs/fmnist_r18
"""

from jssl.config import default_config


def get_config():
  config = default_config()
  config.data.source = "fashion_mnist"
  config.data.image_size = 28
  config.augment.jitter_strength = 0.5
  config.augment.blur_prob = 0.0
  config.model.encoder = "resnet18"
  config.model.stem = "cifar"
  config.model.head_hidden_dim = 2048
  config.model.head_out_dim = 128
  config.loss.temperature = 0.5
  config.optim.name = "lars"
  config.optim.base_lr = 1.0
  config.optim.lr_scaling = "linear"
  config.optim.weight_decay = 1e-6
  config.optim.warmup_epochs = 10.0
  config.train.batch_size = 1024
  config.train.epochs = 500.0
  config.train.log_every = 100
  config.train.checkpoint_every_steps = 2000
  return config
