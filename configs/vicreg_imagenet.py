"""VICReg's ImageNet recipe (Bardes et al. 2022, appendix; facebookresearch/vicreg
``main_vicreg.py``): ResNet-50 at 224 px, expander 8192-8192-8192, loss weights 25 / 25 / 1,
batch 2048, 1000 epochs, LARS with lr 0.2 * B / 256 for all parameters, weight decay 1e-6,
10 warm-up epochs, then cosine decay. Views as BYOL's (the reference's ``augmentations.py``):
Gaussian blur always on view 1 and with p 0.1 on view 2, solarisation only on view 2 (p 0.2).

Needs a prepared TFDS imagenet2012 in DIR:

  jssl pretrain --config configs/vicreg_imagenet.py --workdir gs://BUCKET/vicreg_r50 --config.data.dir=DIR

Where jssl differs:

* The cosine ends at 0, the reference's at 0.001 of the peak learning rate.
* Colour jitter: jssl's one strength (0.5) gives brightness, contrast and saturation 0.4 and
  hue 0.1; the paper's saturation is 0.2.
* The reference trains in float16 mixed precision; this recipe in float32 (``model.dtype``).
* The reference code's default is 100 epochs; the paper's results are with 1000, as here.
"""

from jssl.config import default_config


def get_config():
  config = default_config()
  config.task = "vicreg"
  config.data.source = "tfds:imagenet2012"
  config.data.eval_split = "validation"
  config.data.image_size = 224
  config.data.grayscale_to_rgb = False
  config.augment.crop_area = (0.08, 1.0)
  config.augment.jitter_strength = 0.5  # brightness/contrast 0.4, hue 0.1 (the paper: saturation 0.2, here 0.4)
  config.augment.jitter_prob = 0.8
  config.augment.grayscale_prob = 0.2
  config.augment.view1.blur_prob = 1.0
  config.augment.view2.blur_prob = 0.1
  config.augment.view2.solarize_prob = 0.2
  config.model.encoder = "resnet50"
  config.model.stem = "imagenet"
  config.model.head_hidden_dim = 8192
  config.model.head_out_dim = 8192
  config.model.head_layers = 3
  config.vicreg.sim_weight = 25.0
  config.vicreg.var_weight = 25.0
  config.vicreg.cov_weight = 1.0
  config.optim.name = "lars"
  config.optim.base_lr = 0.2  # x B / 256
  config.optim.lr_scaling = "linear"
  config.optim.weight_decay = 1e-6
  config.optim.warmup_epochs = 10.0
  config.optim.momentum = 0.9
  config.optim.trust_coefficient = 1e-3  # LARS eta
  config.train.batch_size = 2048
  config.train.epochs = 1000.0
  config.train.log_every = 100
  config.train.checkpoint_every_steps = 2500
  config.eval.batch_size = 1024
  return config
