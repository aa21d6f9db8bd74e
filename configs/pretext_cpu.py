"""Every pretext task on Fashion-MNIST at one CPU budget, for the README's side-by-side table:
300 steps of a global batch of 256 images at 28 px, AdamW, the SimCLR demo's resnet_tiny
encoder (MAE and simclr_vit: ViT-Tiny, 4 px patches, all 12 blocks). The same steps and
batch as configs/reconstruction_cpu.py, whose super-resolution and inpainting rows the
table shows next to these. RotNet takes 64 images, each in its 4 rotations, and frame order
85 tuples of 3 frames: about 256 images through the encoder per step, as in the others.

  jssl pretrain --config configs/pretext_cpu.py:rotation --workdir runs/table/rotation
  jssl eval --workdir runs/table/rotation
  (also :mae, :simclr_vit, :swav, :deepcluster, :frame_order, :byol, :simsiam, :moco_v3,
  :barlow_twins, :vicreg, :dino; bash benchmarks/task_table.sh runs them all)

Frame order pretrains on moving Fashion-MNIST clips made from the training images and is
probed on the Fashion-MNIST images themselves (``eval.source``).
"""

from jssl.config import default_config

TASKS = (
  "rotation",
  "mae",
  "simclr_vit",
  "swav",
  "deepcluster",
  "frame_order",
  "byol",
  "simsiam",
  "moco_v3",
  "barlow_twins",
  "vicreg",
  "dino",
)


def get_config(task="rotation"):
  if task not in TASKS:
    raise ValueError(f"pretext_cpu.py:{task}: choose one of {', '.join(TASKS)}.")
  config = default_config()
  config.task = "simclr" if task == "simclr_vit" else task
  config.data.source = "fashion_mnist"
  config.data.image_size = 28
  config.train.batch_size = 256
  config.train.steps = 300
  config.train.log_every = 25
  config.train.eval_every = 100
  config.train.checkpoint_every_steps = 100
  if task != "frame_order":  # (frame_order crops its clips with its own frame_order.crop_area)
    config.augment.crop_area = (0.5, 1.0)  # mild: the tasks that are not contrastive keep the whole garment
  config.model.encoder = "resnet_tiny"
  config.optim.name = "adamw"
  config.optim.base_lr = 3e-3
  config.optim.lr_scaling = "none"
  config.optim.weight_decay = 1e-4
  config.optim.warmup_epochs = 0.1
  config.eval.batch_size = 1000
  config.eval.holdout_examples = 512

  if task == "rotation":
    # Four rotated copies of each image (the paper's best): 64 images make the 256 the encoder
    # sees per step in the other rows.
    config.train.batch_size = 64
  if task in ("mae", "simclr_vit"):
    config.model.encoder = "vit_tiny"
    config.model.patch_size = 4  # a 7 x 7 grid of 28 px images
    config.optim.base_lr = 1.5e-3 if task == "mae" else 1e-3
    config.optim.weight_decay = 0.05  # the MAE paper's (and DeiT's)
    config.optim.b2 = 0.95
  # The SimCLR demo's views (configs/simclr_fashion_mnist_cpu.py).
  if task in ("simclr_vit", "swav", "byol", "simsiam", "barlow_twins", "vicreg"):
    config.augment.crop_area = (0.3, 1.0)
    config.augment.jitter_strength = 0.5
    config.model.head_hidden_dim = 512
    config.model.head_out_dim = 128
  if task == "simclr_vit":
    config.simclr.temperature = 0.2  # (SwAV's own is swav.temperature, 0.1)
  if task == "swav":
    config.swav.num_prototypes = 100  # ten per class
    config.swav.freeze_prototypes_steps = 30  # a tenth of the run (the paper: its first epoch of 100+)
  if task == "byol":
    # The paper's asymmetric views (blur 1.0 / 0.1, solarize 0 / 0.2); projector 512 / 128 and a
    # 512-wide predictor (the paper's 4096 / 256 / 4096 scaled down, as the SimCLR demo's head).
    config.augment.view1.blur_prob = 1.0
    config.augment.view2.blur_prob = 0.1
    config.augment.view2.solarize_prob = 0.2
    config.byol.predictor_hidden_dim = 512
    config.byol.base_momentum = 0.99  # solo-learn's for CIFAR: 0.996 would barely move the target in 300 steps
  if task == "simsiam":
    # The paper's shape scaled down: a 3-layer projector 512 / 512 (hidden = out) and a
    # predictor bottleneck of a quarter of that. AdamW, as every row: fix_predictor_lr is SGD's.
    config.model.head_out_dim = 512
    config.model.head_layers = 3
    config.simsiam.predictor_hidden_dim = 128
  if task in ("barlow_twins", "vicreg"):
    # The papers' 3-layer projector with its output as wide as its hidden layers (8192-8192-8192
    # on ResNet-50), scaled down: the decorrelation terms want many output dimensions.
    config.model.head_out_dim = 512
    config.model.head_layers = 3
  if task == "barlow_twins":
    # The paper's 0.024 bias/weight lr ratio is for LARS, where biases and BN parameters take
    # plain SGD steps next to trust-ratio-scaled kernels; AdamW normalises every parameter's step.
    config.barlow_twins.bias_lr_ratio = 1.0
  if task == "deepcluster":
    config.deepcluster.num_clusters = 100  # ten per class, as the paper's 10k for ImageNet's 1k classes
    config.deepcluster.recluster_every_steps = 100  # k-means of all 60k images before steps 1, 101 and 201
    config.deepcluster.pca_dim = 64
    config.optim.base_lr = 1e-2  # the SimCLR demo's: a classifier re-made every 100 steps must learn fast
  if task == "moco_v3":
    # configs/moco_v3_cifar10.py scaled down: projector and predictor 512 wide, 128 out;
    # solo-learn's CIFAR temperature and momentum; BYOL's asymmetric solarisation, no blur at 28 px.
    config.augment.crop_area = (0.3, 1.0)  # the other view rows' (the SimCLR demo's)
    config.augment.view2.solarize_prob = 0.2
    config.model.head_hidden_dim = 512
    config.model.head_out_dim = 128
    config.moco_v3.predictor_hidden_dim = 512
    config.moco_v3.predictor_out_norm = "none"  # the reference's ResNet predictor
    config.moco_v3.temperature = 0.2
  if task == "dino":
    # DINO's crops (global area (0.4, 1), local (0.05, 0.4)) with 4 local crops of 12 px (3/7 of
    # 28, DINO's 96/224); the head scaled down to 512 -> 128 and 1024 outputs. The run is 1.3
    # epochs: the teacher's momentum starts at 0.99 (0.996's time constant of 250 steps would
    # leave the teacher near its random start), its temperature stays at 0.04 (the repo's
    # default, no warm-up in so short a run), and the last layer is frozen for a tenth of an
    # epoch (23 steps) instead of DINO's first epoch.
    config.augment.crop_area = (0.4, 1.0)
    config.augment.jitter_strength = 0.5
    config.augment.local_crops = 4
    config.augment.local_crop_size = 12
    config.augment.local_crop_area = (0.05, 0.4)
    config.dino.head_hidden_dim = 512
    config.dino.bottleneck_dim = 128
    config.dino.out_dim = 1024
    config.dino.base_momentum = 0.99
    config.dino.teacher_temperature = 0.04
    config.dino.warmup_teacher_temperature_epochs = 0.0
    config.dino.freeze_last_layer_epochs = 0.1
  if task == "frame_order":
    config.data.source = "moving_fashion_mnist"  # 10k clips of 8 frames, 2 objects, from the training images
    config.data.clip_size = 40
    config.eval.source = "fashion_mnist"  # probed on the images themselves
    config.train.batch_size = 85  # tuples of 3 frames: 255 frames through the encoder per step
    config.frame_order.window = "uniform"  # the synthetic clips move everywhere, all the time
  return config
