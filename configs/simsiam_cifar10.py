"""SimSiam on CIFAR-10 with solo-learn's ResNet-18 recipe (vturrisi/solo-learn
scripts/pretrain/cifar/simsiam.yaml with augmentations/symmetric_weak.yaml): projector
2048 / 2048 in 3 layers, predictor bottleneck 512, SGD (momentum 0.9) with lr 0.5 x B / 256 at
batch 256, weight decay 1e-5, 10 warm-up epochs (solo-learn's default) then cosine, 1000 epochs;
the predictor's learning rate is not scheduled (solo-learn's ``static_lr``: jssl's
``simsiam.fix_predictor_lr``). Views: crop area (0.08, 1), flip, colour jitter (0.4, 0.4, 0.4,
0.1) with probability 0.8, grayscale 0.2, blur 0.5.

Where jssl differs: weight decay only on kernels (solo-learn decays every parameter but the
frozen bias); float32 instead of 16-bit mixed precision; the warm-up starts from 0, not 3e-5;
the crop's area is floored at 10% of the image (SimCLR's sampler). See jssl/tasks/simsiam.py.

Needs a prepared TFDS cifar10 (`tfds build cifar10 --data_dir DIR` on a machine with network):

  jssl pretrain --config configs/simsiam_cifar10.py --workdir runs/simsiam_cifar10 --config.data.dir=DIR
"""

from jssl.config import default_config


def get_config():
  config = default_config()  # ResNet-18 CIFAR stem: see jssl/config.py
  config.task = "simsiam"
  config.data.source = "tfds:cifar10"
  config.data.image_size = 32
  config.data.grayscale_to_rgb = False
  config.augment.crop_area = (0.08, 1.0)
  config.augment.jitter_strength = 0.5
  config.augment.blur_prob = 0.5
  config.model.head_hidden_dim = 2048
  config.model.head_out_dim = 2048
  config.model.head_layers = 3
  config.simsiam.predictor_hidden_dim = 512
  config.simsiam.fix_predictor_lr = True
  config.optim.name = "sgd"
  config.optim.base_lr = 0.5
  config.optim.lr_scaling = "linear"
  config.optim.weight_decay = 1e-5
  config.optim.momentum = 0.9
  config.optim.warmup_epochs = 10.0
  config.train.batch_size = 256
  config.train.epochs = 1000.0
  config.train.log_every = 50
  config.train.checkpoint_every_steps = 1000
  return config
