"""SimCLR on Fashion-MNIST for an accelerator: ResNet-18 (CIFAR stem), batch 1024, 500 epochs, LARS.

jssl pretrain --config configs/simclr_fashion_mnist.py --workdir runs/fmnist_r18
jssl eval --workdir runs/fmnist_r18
"""

from jssl.config import default_config


def get_config():
  config = default_config()  # LARS, ResNet-18 CIFAR stem, head 2048-128, tau 0.5: see jssl/config.py
  config.data.source = "fashion_mnist"
  config.data.image_size = 28
  config.optim.base_lr = 1.0
  config.train.batch_size = 1024
  config.train.epochs = 500.0
  config.train.log_every = 100
  config.train.checkpoint_every_steps = 2000
  return config
