"""Sample quality of MNIST generators: Fréchet distance, inception-style score, coverage.

A GAN's losses say little about how good its samples are, so these scores look at the
samples through a small MNIST classifier (:func:`tinygan.models.lenet`, trained by
``demos/train_mnist_classifier.py``; its weights ship in ``tinygan/weights/``), as FID and
the Inception Score do with an ImageNet network:

* **Fréchet distance** (FD, lower is better): fit a Gaussian to the classifier's 128
  penultimate features of the generated images, N(mu_g, S_g), and one to those of real
  images, N(mu_r, S_r); their Fréchet (2-Wasserstein) distance is

      d^2 = |mu_r - mu_g|^2 + tr(S_r) + tr(S_g) - 2 tr((S_r S_g)^(1/2)).

  It is 0 only when both means and covariances agree, so it sees both poor images (the
  features move) and missing variety (the covariance shrinks).
* **Inception-style score** (IS, higher is better, at most 10): with p(y|x) the
  classifier's softmax and p(y) its mean over the samples,

      IS = exp( E_x KL(p(y|x) || p(y)) ),

  large when each image is confidently one digit (p(y|x) peaked) and all digits appear
  (p(y) flat). Computed on 10 splits of the samples; the mean and standard deviation over
  the splits are reported, as in Salimans et al. (2016).
* **Class coverage**: how many of the 10 digits are the classifier's prediction for at
  least 1% of the samples, and the KL divergence of the predicted-class histogram h from
  the uniform one, ``sum_k h_k log(10 h_k)`` (0 when every digit is equally frequent,
  log 10 = 2.30 when all samples are one digit).
* **Speckle** (lower is better): isolated pixels per image, the salt-and-pepper dots that
  generators (MLPs above all) scatter over the background and into the strokes, which the
  classifier barely notices. It looks at the pixels themselves, not through the classifier;
  see :func:`speckle` for the formula. Real digits score 0.09, and the same digits with 1%
  of their pixels turned white or black (salt and pepper) 3.0.

**Which real images.** Only the 10,000-image MNIST test set ships with the repository.
The classifier trains on its images 0..7999 and is scored on 8000..9999, which nothing
else uses: the real statistics of the Fréchet distance are those of images 0..7999
(:func:`reference_stats`), and the real-vs-real floor (:func:`real_floor`) compares two
disjoint random halves of them. The ranges are read from the JSON file beside the weights.

**Reading the numbers.** The Fréchet distance is biased upwards with few samples (the
covariance of 128 features is estimated), so compare scores computed on the same number
of generated images: the trainer's ``eval_every`` uses 2,000, ``demos/evaluate.py``
5,000. The floor (4,000 vs 4,000 real images) is what a perfect generator would get at
about that sample size. For scale, with the shipped classifier: two disjoint sets of
1,000 real digits are 25 apart, 4,000 and 4,000 are 5; the 2,000 held-out digits (other
writers, never seen by the classifier) are 44 from the reference; 1,000 blurred digits
(5x5 box) about 1,250, uniform noise about 2,260, and 600 real 1s, perfect images of one
digit, about 2,250. These scores mean something for MNIST digits only: a Fashion-MNIST
generator gets large distances whatever its quality.

Everything runs on the CPU in NumPy: features and statistics are float64, and the matrix
square root uses a symmetric eigendecomposition (no SciPy). The classifier and the real
statistics are loaded the first time they are needed and then kept.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinygan import data, models, nn
from tinygan.autograd import no_grad
from tinygan.backend import to_numpy
from tinygan.checkpoint import load_checkpoint
from tinygan.tensor import Tensor

WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "mnist_lenet.npz"
# The held-out accuracy a classifier's JSON must record for the scores to mean what this
# module says (the shipped weights: 99.45%); a weaker one's features and classes mislead.
MIN_ACCURACY = 0.99
MIN_CLASS_SHARE = 0.01  # a digit counts as "present" when at least 1% of predictions are it
FLOOR_SEED = 0  # the random split of the reference images into the floor's two halves


@dataclass(frozen=True)
class QualityScores:
    """The scores of one set of images (see the module docstring for each formula).

    Attributes:
        fd: Fréchet distance of the classifier features to the real reference (lower is
            better).
        inception_score: exp(E KL(p(y|x) || p(y))), mean over the splits (1 to 10).
        inception_std: its standard deviation over the splits.
        classes: digits predicted for at least ``MIN_CLASS_SHARE`` of the images (0 to 10).
        class_kl: KL divergence of the predicted-class histogram from uniform (0 to log 10).
        top_class_share: the share of the images predicted as the most frequent digit (0.1
            for a balanced set, 1 when every image is one digit: mode collapse).
        speckle: isolated pixels per image (:func:`speckle`; lower is better).
        samples: how many images were scored.
    """

    fd: float
    inception_score: float
    inception_std: float
    classes: int
    class_kl: float
    top_class_share: float
    speckle: float
    samples: int

    def as_dict(self) -> dict[str, float]:
        """The fields by name, for a CSV row or JSON."""
        return asdict(self)

    def summary(self) -> str:
        """One line, e.g.

        ``FD 12.3 | IS 8.91 +- 0.12 | classes 10/10 (KL 0.012) | speckle 0.09 | 5000 samples``.
        """
        return (
            f"FD {self.fd:.2f} | IS {self.inception_score:.2f} +- {self.inception_std:.2f} | "
            f"classes {self.classes}/10 (KL {self.class_kl:.3f}) | speckle {self.speckle:.2f} | "
            f"{self.samples} samples"
        )


# --------------------------------------------------------------------------- the statistics
def gaussian_stats(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``features`` (N, D), in float64.

    The covariance is the unbiased sample covariance, 1/(N-1) sum_i (f_i - mu)(f_i - mu)^T.

    Raises:
        ValueError: ``features`` is not 2-D, or has no more samples than dimensions (the
            covariance of N samples has rank at most N - 1, so it cannot describe D
            dimensions with N <= D; use thousands of samples for a useful estimate).
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {f.shape}")
    n, d = f.shape
    if n <= d:
        raise ValueError(
            f"{n} samples of {d} features: a covariance estimate needs more samples than "
            f"dimensions (at least {d + 1}; thousands for a stable Fréchet distance)"
        )
    return f.mean(axis=0), np.cov(f, rowvar=False)


def sqrtm_psd(matrix: Any) -> np.ndarray:
    """The square root R (R R = A, R symmetric PSD) of a symmetric PSD matrix A, in float64.

    From the eigendecomposition A = V diag(w) V^T: R = V diag(sqrt(w)) V^T. Round-off can
    make the smallest eigenvalues of a singular or nearly singular A slightly negative;
    they are clipped to 0, which is exact for a PSD matrix up to that round-off. A is
    symmetrised first, (A + A^T) / 2, for the same reason.
    """
    a = np.asarray(matrix, dtype=np.float64)
    a = 0.5 * (a + a.T)
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, S1) and N(mu2, S2), squared.

        d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

    S1 S2 is not symmetric, but it is similar to M = S1^(1/2) S2 S1^(1/2) (conjugate by
    S1^(1/2)) and M is symmetric PSD, so tr((S1 S2)^(1/2)) = tr(M^(1/2)) = sum_i sqrt(l_i)
    with l_i the eigenvalues of M (tiny negative ones from round-off clipped to 0). This
    needs only symmetric eigendecompositions, which are stable for singular covariances.
    The result is clipped at 0 (round-off can make identical Gaussians give -1e-12).

    Args:
        mu1, mu2: means (D,).
        sigma1, sigma2: covariances (D, D), symmetric PSD.

    Returns:
        d^2 as a Python float (what FID reports: the *squared* distance).

    Raises:
        ValueError: the shapes do not match.
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    s1, s2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.shape != mu2.shape or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"frechet_distance: means {mu1.shape}, {mu2.shape} and covariances "
            f"{s1.shape}, {s2.shape} must be (D,) and (D, D) for one D"
        )
    root1 = sqrtm_psd(s1)
    middle = root1 @ s2 @ root1
    eigenvalues = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    trace_sqrt = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff) + float(np.trace(s1)) + float(np.trace(s2)) - 2.0 * trace_sqrt
    return max(value, 0.0)


def inception_score(probs: Any, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) on each of ``splits`` parts; mean and std over the parts.

    In each part, p(y) is the mean of the part's rows and

        KL(p(y|x) || p(y)) = sum_y p(y|x) (log p(y|x) - log p(y)),   with 0 log 0 = 0.

    The score is 1 when every image gets the same prediction, and K (the number of
    classes) when each image is one class with certainty and all classes are equally
    frequent in every part.

    Args:
        probs: class probabilities (N, K), rows summing to 1, e.g. a softmax.
        splits: number of consecutive, nearly equal parts.

    Returns:
        ``(mean, std)`` of the per-part scores.

    Raises:
        ValueError: ``probs`` is not (N, K) with non-negative rows summing to 1, or
            N < splits.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("probs must be (N, K) probabilities: non-negative rows summing to 1")
    if not 1 <= splits <= len(p):
        raise ValueError(f"splits must be between 1 and the {len(p)} samples, got {splits}")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0)  # p(y) of this part
        safe = np.where(part > 0, part, 1.0)  # log 1 = 0 where p(y|x) = 0 (0 log 0 = 0)
        kl = (part * (np.log(safe) - np.log(np.where(marginal > 0, marginal, 1.0)))).sum(axis=1)
        scores.append(math.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def class_coverage(probs: Any, min_share: float = MIN_CLASS_SHARE) -> tuple[int, float]:
    """How many classes the predictions cover, and how far their histogram is from uniform.

    With h_k the share of samples whose most probable class is k (K classes):

        present = #{k : h_k >= min_share},     KL(h || uniform) = sum_k h_k log(K h_k)

    (0 log 0 = 0). KL is 0 for a perfectly balanced set and log K when every sample is the
    same class.

    Args:
        probs: class probabilities or logits (N, K): only the argmax of each row is used.
        min_share: smallest share of the predictions for a class to count as present.

    Returns:
        ``(present, kl)``.
    """
    p = np.asarray(probs)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"probs must be (N, K) with N >= 1, got shape {p.shape}")
    k = p.shape[1]
    shares = np.bincount(p.argmax(axis=1), minlength=k) / len(p)
    nonzero = shares[shares > 0]
    kl = float((nonzero * np.log(k * nonzero)).sum())
    return int((shares >= min_share).sum()), max(kl, 0.0)


def speckle(images: Any) -> float:
    """Isolated pixels per image: how much salt-and-pepper noise the images carry.

    With pixel intensities x in [0, 1] (0 black, 1 white) and, for each pixel, hi and lo
    the largest and smallest intensity among its 8 neighbours,

        spike(x) = max(0, x - hi) + max(0, lo - x),

    how far a pixel sticks out above (a white dot) or below (a black hole) everything
    around it; the score is the sum of the spikes over an image's pixels, averaged over
    the images (and channels). A white pixel in a black neighbourhood, or a black one in a
    white stroke, counts 1; a grey dot half-way counts 0.5. Edges, strokes and smooth
    shading score 0, since a pixel on them always has a neighbour at least as bright and
    one at least as dark: real MNIST digits score 0.09 per image (the reference images;
    see :func:`real_floor`), and the same digits with 1% of their pixels set to black or
    white at random 3.0 (a salt dot on the background or a pepper hole in a stroke each
    count about 1; the other half of the noise falls where it changes nothing). The
    image border is mirrored (``numpy.pad`` mode "reflect"), so a border pixel is compared
    with the pixels inside.

    Args:
        images: uint8 pixels (0..255) or floats in [-1, 1] (a generator's output; values
            outside are clipped), shaped (N, H, W) or (N, C, H, W), NumPy, CuPy or a
            Tensor; H and W at least 2.

    Returns:
        The mean over images and channels of the summed spikes.
    """
    x = images.numpy() if isinstance(images, Tensor) else to_numpy(images)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or min(x.shape[2:]) < 2 or len(x) == 0:
        raise ValueError(f"speckle needs images (N, H, W) or (N, C, H, W), got shape {x.shape}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255.0)
    else:
        x = np.clip((x.astype(np.float32) + 1.0) * 0.5, 0.0, 1.0)
    height, width = x.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    hi, lo = np.full_like(x, -np.inf), np.full_like(x, np.inf)
    for dy in range(3):
        for dx in range(3):
            if (dy, dx) != (1, 1):  # the 8 neighbours, not the pixel itself
                neighbour = padded[:, :, dy : dy + height, dx : dx + width]
                np.maximum(hi, neighbour, out=hi)
                np.minimum(lo, neighbour, out=lo)
    spikes = np.clip(x - hi, 0.0, None) + np.clip(lo - x, 0.0, None)
    return float(spikes.sum(axis=(2, 3), dtype=np.float64).mean())


# --------------------------------------------------------------------------- the classifier
@functools.cache
def classifier_info(path: Path = WEIGHTS_PATH) -> dict[str, Any]:
    """The JSON description beside the classifier weights: data ranges, accuracy, command.

    Keys include ``train_indices`` and ``held_out_indices`` (``[start, stop)`` of the
    bundled MNIST test set) and ``held_out_accuracy``.
    """
    info_path = Path(path).with_suffix(".json")
    if not info_path.is_file():
        raise FileNotFoundError(
            f"{info_path} is missing: it ships with tinygan; recreate it (and the weights) with "
            "`python demos/train_mnist_classifier.py --replace-shipped-weights`"
        )
    return json.loads(info_path.read_text())


@functools.cache
def load_classifier(path: Path = WEIGHTS_PATH) -> nn.Sequential:
    """The shipped MNIST classifier (:func:`tinygan.models.lenet`), in eval mode, on the CPU.

    Loaded once and then kept; do not train the returned model.

    Raises:
        FileNotFoundError: the weights file, or the JSON beside it, is missing.
        ValueError: the JSON records a held-out accuracy below ``MIN_ACCURACY``, or none.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"the classifier weights {path} are missing: they ship with tinygan; recreate them "
            "with `python demos/train_mnist_classifier.py --replace-shipped-weights`"
        )
    accuracy = classifier_info(path).get("held_out_accuracy")
    if accuracy is None:
        raise ValueError(
            f"{Path(path).with_suffix('.json')} records no held-out accuracy, so the "
            f"classifier {path} cannot be trusted to score samples"
        )
    if not accuracy >= MIN_ACCURACY:
        raise ValueError(
            f"the classifier {path} records a held-out accuracy of {accuracy:.1%}, below the "
            f"{MIN_ACCURACY:.0%} these scores assume. Restore the shipped weights (git "
            "checkout tinygan/weights) or train better ones with `python "
            "demos/train_mnist_classifier.py --replace-shipped-weights`"
        )
    model = models.lenet()
    load_checkpoint(path, model=model)
    return model.eval()


def as_classifier_input(images: Any) -> np.ndarray:
    """Images as the classifier takes them: float32 (N, 1, 28, 28) in [-1, 1].

    Accepts uint8 pixels (0 = background, 255 = ink) or floats in [-1, 1] (a generator's
    output), shaped (N, 28, 28) or (N, 1, 28, 28), NumPy or CuPy.
    """
    x = to_numpy(images) if not isinstance(images, Tensor) else images.numpy()
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected MNIST-sized images (N, 1, 28, 28), got shape {x.shape}")
    if x.dtype == np.uint8:
        return data.images_to_float(x)
    return x.astype(np.float32, copy=False)


def classify(images: Any, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's penultimate features and class probabilities for ``images``.

    Args:
        images: see :func:`as_classifier_input`.
        batch_size: images per forward pass.

    Returns:
        ``(features, probs)``: float64 (N, 128) (the ReLU output before the last Linear
        layer) and float64 (N, 10) (the softmax of the logits).
    """
    x = as_classifier_input(images)
    model = load_classifier()
    extractor, head = model[:-1], model[-1]
    features, logits = [], []
    with no_grad():
        for start in range(0, len(x), batch_size):
            f = extractor(Tensor(x[start : start + batch_size]))
            features.append(f.numpy())
            logits.append(head(f).numpy())
    feats = np.concatenate(features).astype(np.float64)
    z = np.concatenate(logits).astype(np.float64)
    z -= z.max(axis=1, keepdims=True)  # softmax is unchanged; exp cannot overflow
    probs = np.exp(z)
    probs /= probs.sum(axis=1, keepdims=True)
    return feats, probs


# --------------------------------------------------------------------------- real images
def reference_images() -> np.ndarray:
    """The classifier's training part of the bundled MNIST set (images 0..7999): uint8."""
    start, stop = classifier_info()["train_indices"]
    images, _ = data.load_mnist("test", root=data.bundled_dataset_dir(), download=False)
    return images[start:stop]


@functools.cache
def _reference_outputs() -> tuple[np.ndarray, np.ndarray]:
    """:func:`classify` of the reference images, computed once."""
    return classify(reference_images())


def reference_stats() -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the features of :func:`reference_images` (computed once)."""
    return gaussian_stats(_reference_outputs()[0])


def score(images: Any, splits: int = 10) -> QualityScores:
    """Every score of ``images`` (generated or real; at least 129 MNIST-sized images).

    The Fréchet distance is to :func:`reference_stats`, the real training part.
    """
    features, probs = classify(images)
    mu, sigma = gaussian_stats(features)
    return _scores(mu, sigma, *reference_stats(), probs, splits, speckle(images))


def real_floor(splits: int = 10) -> QualityScores:
    """The scores of real images: what a perfect generator would get.

    The reference images are split into two disjoint random halves A and B (4,000 each,
    seeded by ``FLOOR_SEED``); the Fréchet distance is between A and B, the score, the
    coverage and the speckle are those of A.
    """
    features, probs = _reference_outputs()
    order = np.random.default_rng(FLOOR_SEED).permutation(len(features))
    a, b = np.array_split(order, 2)
    stats_a, stats_b = gaussian_stats(features[a]), gaussian_stats(features[b])
    return _scores(*stats_a, *stats_b, probs[a], splits, speckle(reference_images()[a]))


def _scores(
    mu, sigma, mu_ref, sigma_ref, probs: np.ndarray, splits: int, speckle_value: float
) -> QualityScores:
    is_mean, is_std = inception_score(probs, splits)
    classes, kl = class_coverage(probs)
    top = float(np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]).max() / len(probs))
    fd = frechet_distance(mu, sigma, mu_ref, sigma_ref)
    return QualityScores(fd, is_mean, is_std, classes, kl, top, speckle_value, len(probs))


def conditional_accuracy(images: Any, labels: Any) -> np.ndarray:
    """For a class-conditional generator: how often a sample of digit d is classified as d.

    Args:
        images: generated digits (N, 1, 28, 28) (see :func:`as_classifier_input`).
        labels: the digit each one was asked to be, integers (N,) in 0..9.

    Returns:
        float64 (10,): entry d is the fraction of the samples asked to be d that the
        classifier predicts as d (NaN for a digit with no samples).
    """
    labels = np.asarray(labels)
    if labels.shape != (len(images),):
        raise ValueError(f"conditional_accuracy: {len(images)} images but labels {labels.shape}")
    _, probs = classify(images)
    right = probs.argmax(axis=1) == labels
    return np.array([right[labels == d].mean() if (labels == d).any() else np.nan
                     for d in range(10)])  # fmt: skip
