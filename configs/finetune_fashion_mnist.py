"""Transfer an exported encoder to Fashion-MNIST classification.

  jssl export --workdir runs/demo --out runs/demo_encoder
  jssl finetune --encoder runs/demo_encoder --config configs/finetune_fashion_mnist.py --workdir runs/demo_linear
  jssl finetune --encoder runs/demo_encoder --config configs/finetune_fashion_mnist.py --workdir runs/demo_full \
      --config.finetune.mode=full

``:full`` is the fine-tune column of the README's side-by-side table (``bash
benchmarks/task_table.sh``): every layer trained for one epoch with AdamW at 1e-3 for the
head and the encoder alike (``encoder_lr_multiplier`` 1, where the default 0.1 would hold a
randomly initialised encoder back), so that an encoder and the same architecture from random
init (``--config.finetune.init=random``) get the same recipe, rates included.
"""

from jssl.config import finetune_config


def get_config(variant="linear"):
  if variant not in ("linear", "full"):
    raise ValueError(f"finetune_fashion_mnist.py:{variant}: choose linear or full.")
  config = finetune_config()
  config.data.source = "fashion_mnist"
  config.finetune.mode = "linear"
  config.finetune.epochs = 2.0
  config.finetune.batch_size = 256
  config.finetune.lr = 3e-3
  if variant == "full":
    config.finetune.mode = "full"
    config.finetune.epochs = 1.0
    config.finetune.lr = 1e-3
    config.finetune.encoder_lr_multiplier = 1.0
  return config
