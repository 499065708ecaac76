"""The semi-supervised GAN's losses (Salimans et al., 2016), with hand-derived gradients.

The discriminator is a K+1-class classifier whose "fake" logit is fixed at 0, so each
sample has a row of K class logits, (N, K); the generator matches features of any shape
(N, ...). Written as :mod:`tinygan.losses` writes the GAN losses (a Function with the
derivative in its docstring, beside the composed twin ``_composed_<name>``). Part of the
``losses`` namespace; :mod:`tinygan.semi_supervised` trains with them.
"""

from __future__ import annotations

from tinygan.autograd import Function
from tinygan.ops import broadcast_to, exp, logsumexp, logsumexp_array, mean, sigmoid, softplus
from tinygan.tensor import Tensor


def _check_logits(loss: str, name: str, x: Tensor) -> None:
    """Class logits must be a Tensor of shape (N, K) with N, K >= 1."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{loss}: {name} must be a Tensor, got {type(x).__name__}")
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(
            f"{loss}: {name} must have shape (N, K) with N, K >= 1 (K class logits per "
            f"sample), got {x.shape}"
        )


class SemiSupervisedDLoss(Function):
    """The unsupervised half of the semi-supervised discriminator's loss (Salimans et al.,
    "Improved Techniques for Training GANs", 2016, section 5).

    The discriminator is a classifier over K real classes plus "fake". Its logits are
    l_1..l_K; the fake class's logit is fixed to 0 (adding a constant to every logit leaves
    a softmax unchanged, so one logit may be pinned). With Z = sum_k e^(l_k):

        p(fake | x) = 1 / (Z + 1),    D(x) = p(real | x) = Z / (Z + 1) = sigma(s),
        s = log Z = logsumexp(l).

    The loss asks D to call unlabelled data real and generated samples fake,
    L = -E_x log D(x) - E_z log(1 - D(G(z))). With -log sigma(s) = softplus(-s) and
    -log(1 - sigma(s)) = softplus(s), for real logits r (n_r rows) and fake ones f (n_f):

        L = (1/n_r) sum_i softplus(-s_i) + (1/n_f) sum_j softplus(s'_j),
        s_i = logsumexp(r_i),   s'_j = logsumexp(f_j)

    which is the GAN discriminator loss (GanDLoss) on the scores s. Both pieces are stable
    for any logits: logsumexp shifts by the maximum, softplus is logaddexp(0, .). Written
    naively, log(Z / (Z + 1)) is log(inf / inf) = nan once a logit passes 88.7 in float32.

    Gradient, by the chain rule through s, with d softplus(u)/du = sigma(u) and
    d s / d l_k = e^(l_k) / Z = softmax(l)_k:

        dL/dr_ik = -sigma(-s_i) softmax(r_i)_k / n_r = (sigma(s_i) - 1) softmax(r_i)_k / n_r
        dL/df_jk =  sigma(s'_j) softmax(f_j)_k / n_f

    In probabilities: dL/dr_ik = -p(fake | x_i) p(k | x_i, real) / n_r: a real sample lifts
    its real-class logits in proportion to their share, as hard as D thinks the sample is
    fake. dL/df_jk = e^(f_jk) / (Z_j + 1) / n_f = p(k | G(z_j)) / n_f, the (K+1)-class
    probability of class k: a generated sample lowers each real-class logit by how much D
    believes in it. Every entry lies in [-1/n, 1/n] for any logits. The backward below
    writes exactly these formulas with tinygan ops, softmax(l) as exp(l - s), so it can be
    differentiated again.
    """

    def forward(self, real, fake):
        xp = self.xp
        s_real, s_fake = logsumexp_array(real, (1,)), logsumexp_array(fake, (1,))
        return xp.logaddexp(0.0, -s_real).mean() + xp.logaddexp(0.0, s_fake).mean()

    def backward(self, grad_output):
        real, fake = self.inputs
        g_real = g_fake = None
        if self.needs_input_grad[0]:
            s = logsumexp(real, axis=1, keepdims=True)  # (N, 1)
            g_real = grad_output * (sigmoid(s) - 1.0) * exp(real - s) * (1.0 / real.shape[0])
        if self.needs_input_grad[1]:
            s = logsumexp(fake, axis=1, keepdims=True)  # (M, 1)
            g_fake = grad_output * sigmoid(s) * exp(fake - s) * (1.0 / fake.shape[0])
        return g_real, g_fake


def _composed_semi_supervised_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    s_real, s_fake = logsumexp(real_logits, axis=1), logsumexp(fake_logits, axis=1)
    return mean(softplus(-s_real)) + mean(softplus(s_fake))


def semi_supervised_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-E log D(x) - E log(1 - D(G(z))) with D = Z / (Z + 1), Z = sum e^logits.

    The unsupervised part of a semi-supervised discriminator's loss; add the supervised
    part, ``F.cross_entropy(labelled_logits, labels)``, for the labelled images (see
    :class:`SemiSupervisedDLoss` for the derivation).

    Args:
        real_logits: the K real-class logits of unlabelled real samples, (N, K).
        fake_logits: the same for generated samples, (M, K).

    Returns:
        A scalar tensor.
    """
    _check_logits("semi_supervised_d_loss", "real_logits", real_logits)
    _check_logits("semi_supervised_d_loss", "fake_logits", fake_logits)
    if real_logits.shape[1] != fake_logits.shape[1]:
        raise ValueError(
            f"semi_supervised_d_loss: real and fake logits need the same number of classes, "
            f"got {real_logits.shape} and {fake_logits.shape}"
        )
    return SemiSupervisedDLoss()(real_logits, fake_logits)


class FeatureMatchingLoss(Function):
    """Feature matching (Salimans et al. 2016, section 3.1): the generator matches the mean
    of the discriminator's intermediate features h on real and on generated samples.

        L = || mu_f - mu_r ||^2 = sum_c (mu_f,c - mu_r,c)^2,
        mu_r = (1/n_r) sum_i h(x_i),   mu_f = (1/n_f) sum_j h(G(z_j))

    summed over every feature c (all axes after the batch axis). With d = mu_f - mu_r,
    each sample's features enter its batch mean with weight 1/n, so

        dL/dh(G(z_j))_c = 2 d_c / n_f,     dL/dh(x_i)_c = -2 d_c / n_r

    the same for every sample of a batch. The real features are usually computed without
    a graph (the generator's loss does not train D), so only the fake ones need a gradient.
    """

    def forward(self, real, fake):
        diff = fake.mean(axis=0) - real.mean(axis=0)
        return (diff * diff).sum()

    def backward(self, grad_output):
        real, fake = self.inputs
        diff = mean(fake, axis=0) - mean(real, axis=0)  # (C, ...)
        g_real = g_fake = None
        if self.needs_input_grad[0]:
            g_real = broadcast_to(grad_output * diff * (-2.0 / real.shape[0]), real.shape)
        if self.needs_input_grad[1]:
            g_fake = broadcast_to(grad_output * diff * (2.0 / fake.shape[0]), fake.shape)
        return g_real, g_fake


def _composed_feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    diff = mean(fake_features, axis=0) - mean(real_features, axis=0)
    return (diff * diff).sum()


def feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """|| mean h(x) - mean h(G(z)) ||^2, the generator's loss by feature matching.

    Args:
        real_features: D's intermediate features of real samples, (N, ...).
        fake_features: the same features of generated samples, (M, ...), same trailing
            shape.

    Returns:
        A scalar tensor.
    """
    for name, t in (("real_features", real_features), ("fake_features", fake_features)):
        if not isinstance(t, Tensor):
            raise TypeError(f"feature_matching_loss: {name} must be a Tensor, got {type(t)}")
        if t.ndim < 1 or t.shape[0] == 0:
            raise ValueError(f"feature_matching_loss: {name} must be a non-empty batch (N, ...)")
    if real_features.shape[1:] != fake_features.shape[1:]:
        raise ValueError(
            f"feature_matching_loss: real and fake features differ in shape: "
            f"{real_features.shape} and {fake_features.shape}"
        )
    return FeatureMatchingLoss()(real_features, fake_features)
