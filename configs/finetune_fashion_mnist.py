"""Transfer an exported encoder to Fashion-MNIST classification.

  jssl export --workdir runs/demo --out runs/demo_encoder
  jssl finetune --encoder runs/demo_encoder --config configs/finetune_fashion_mnist.py --workdir runs/demo_linear
  jssl finetune --encoder runs/demo_encoder --config configs/finetune_fashion_mnist.py --workdir runs/demo_full \
      --config.finetune.mode=full
"""

from jssl.config import finetune_config


def get_config():
  config = finetune_config()
  config.data.source = "fashion_mnist"
  config.finetune.mode = "linear"
  config.finetune.epochs = 2.0
  config.finetune.batch_size = 256
  config.finetune.lr = 3e-3
  return config
