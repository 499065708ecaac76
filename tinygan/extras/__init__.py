"""PyTorch-compatibility extras, off the lesson path: what the main demo does not use.

Each module here extends a lesson module and is part of its namespace, so ``ops.getitem``,
``F.cross_entropy``, ``nn.LayerNorm``, ``optim.SGD`` and ``tg.randn`` work as in PyTorch:

* :mod:`~tinygan.extras.ops`: division, exp and log, indexing, concatenation, padding,
  upsampling, softmax and cross-entropy, abs/clip/max/sqrt, moves between devices;
* :mod:`~tinygan.extras.pooling`: max and average pooling by im2col;
* :mod:`~tinygan.extras.functional`: dropout, layer_norm, interpolate, embedding, mse_loss,
  binary_cross_entropy_with_logits, and the rest of the ``F`` namespace;
* :mod:`~tinygan.extras.layers`: Sigmoid, Upsample, LayerNorm, Embedding, MaxPool2d,
  Dropout, MSELoss, BCEWithLogitsLoss;
* :mod:`~tinygan.extras.tensor_methods`, :mod:`~tinygan.extras.creation`: a Tensor's
  conveniences (printing, ``.cpu()``, ``.view``, comparisons, ...) and ``tg.randn`` & co.;
* :mod:`~tinygan.extras.module`, :mod:`~tinygan.extras.optim`: state dicts, ``repr``,
  ``apply`` and ``to`` of modules; state dicts of optimizers; :mod:`~tinygan.extras.sgd`.
"""
