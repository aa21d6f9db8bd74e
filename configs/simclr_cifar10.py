"""SimCLR's CIFAR-10 recipe, as google-research/simclr's tf2 README runs it: ResNet-18 (CIFAR
stem), batch 512, LARS with learning rate 1.0 scaled linearly (1.0 x 512 / 256 = 2.0), weight
decay 1e-4, temperature 0.5, colour-jitter strength 0.5, no blur, 1000 epochs, 10 warm-up
epochs, a 3-layer projection head as wide as the encoder (512 -> 512 -> 512 -> 128, batch
norm after each Dense, no shift after the last).

Sources, value by value: the tf2 README's CIFAR-10 command (``--train_batch_size=512
--train_epochs=1000 --learning_rate=1.0 --weight_decay=1e-4 --temperature=0.5
--resnet_depth=18 --use_blur=False --color_jitter_strength=0.5``) and ``run.py``'s defaults
for what it leaves out (``learning_rate_scaling=linear``, ``warmup_epochs=10``,
``optimizer=lars``, ``num_proj_layers=3``, ``proj_out_dim=128``, hidden layers as wide as
their input in ``model.py``'s ``ProjectionHead``). Its linear evaluation reads the encoder's
output (``ft_proj_selector=0``), as jssl's probes do. The paper's appendix B.9 CIFAR runs
used batch 4096 and lr 0.075 x sqrt(B) with a 2-layer head: ``--config.train.batch_size=4096
--config.optim.base_lr=0.075 --config.optim.lr_scaling=sqrt --config.model.head_layers=2``.

Needs a prepared TFDS cifar10 (`tfds build cifar10 --data_dir DIR` on a machine with network):

  jssl pretrain --config configs/simclr_cifar10.py --workdir runs/cifar10 --config.data.dir=DIR
"""

from jssl.config import default_config


def get_config():
  config = default_config()  # LARS, ResNet-18 CIFAR stem, tau 0.5, jitter 0.5, no blur: see jssl/config.py
  config.data.source = "tfds:cifar10"
  config.data.image_size = 32
  config.data.grayscale_to_rgb = False
  config.model.head_hidden_dim = 0  # the encoder's width, 512 (run.py's ProjectionHead)
  config.model.head_out_dim = 128
  config.model.head_layers = 3  # num_proj_layers
  config.optim.name = "lars"
  config.optim.base_lr = 1.0
  config.optim.lr_scaling = "linear"
  config.optim.weight_decay = 1e-4
  config.optim.warmup_epochs = 10.0
  config.simclr.temperature = 0.5
  config.augment.jitter_strength = 0.5
  config.augment.blur_prob = 0.0
  config.train.batch_size = 512
  config.train.epochs = 1000.0
  config.train.log_every = 50
  config.train.checkpoint_every_steps = 1000
  return config
