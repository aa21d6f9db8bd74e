"""Image operations that run on the accelerator, inside the jit step: colour spaces
(``color``), inpainting masks (``masks``), MAE's patches and patch masks (``patches``).

Host-side (tf.data) work lives in ``jssl.data``; losses in ``jssl.losses`` use these.
"""
