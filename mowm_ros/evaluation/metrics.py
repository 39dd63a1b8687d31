"""
Image metrics of predicted frames against the truth, with scikit-image's implementations.

PSNR and SSIM are computed per frame on uint8 RGB (data range 255, SSIM over the colour
channels with scikit-image's default 7x7 window). An exact prediction has infinite PSNR; it is
capped at ``PSNR_CAP`` dB so that averages stay finite. No perceptual metric (LPIPS) is
computed: it needs network weights that no installed package ships, and nothing may be
downloaded while evaluating.
"""

import math

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

PSNR_CAP = 100.0


def _check_pair(truth, prediction):
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape or truth.ndim != 3 or truth.shape[2] != 3:
        raise ValueError(f'frames must be two (H, W, 3) arrays of one shape, got {truth.shape} '
                         f'and {prediction.shape}')
    if truth.dtype != np.uint8 or prediction.dtype != np.uint8:
        raise ValueError(f'frames must be uint8, got {truth.dtype} and {prediction.dtype}')
    return truth, prediction


def psnr(truth, prediction):
    """PSNR in dB of one uint8 (H, W, 3) frame, capped at PSNR_CAP for an exact match."""
    truth, prediction = _check_pair(truth, prediction)
    if np.array_equal(truth, prediction):
        return PSNR_CAP
    value = peak_signal_noise_ratio(truth, prediction, data_range=255)
    return float(min(value, PSNR_CAP))


def ssim(truth, prediction):
    """SSIM of one uint8 (H, W, 3) frame over its colour channels, in [-1, 1]."""
    truth, prediction = _check_pair(truth, prediction)
    return float(structural_similarity(truth, prediction, data_range=255, channel_axis=-1))


def frame_metrics(truth, predictions):
    """Return {'psnr': [...], 'ssim': [...]} for frames (N, H, W, 3) against the truth."""
    if len(truth) != len(predictions):
        raise ValueError(f'{len(truth)} true frames against {len(predictions)} predictions')
    return {'psnr': [psnr(t, p) for t, p in zip(truth, predictions)],
            'ssim': [ssim(t, p) for t, p in zip(truth, predictions)]}


def masked_mean(values, mask=None):
    """Mean of ``values`` where ``mask`` is true (all when None); NaN when nothing is left."""
    values = np.asarray(values, dtype=np.float64)
    if mask is not None:
        values = values[np.asarray(mask, dtype=bool)]
    return float(values.mean()) if values.size else math.nan
