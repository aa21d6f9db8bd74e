"""Data sources, host augmentation and the per-process input pipeline.

TensorFlow comes in through ``jssl.data.tf_host.tf`` alone: imported at its first use, its
GPUs hidden then (see that module), so importing jssl does not import TensorFlow.
"""
