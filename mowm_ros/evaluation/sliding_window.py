"""
Sliding-window baseline: more recent frames for the same compute, no memory.

The short-term expert sees K frames. Given the full composition's budget of three network
evaluations per sampler step, the baseline spends them on three K-frame views of a longer
window of recent frames, all ending at the newest frame, at strides 1, 2 and 3 (with K = 4:
the last 4, 7 and 10 frames; a 10-frame, 5-second window at 0.5 s per frame), and averages
their v predictions (a product of experts of equal weight; the coefficients sum to one, so
the prior is counted once). It uses neither the spatial memory nor the adapters. Motions
between frames two and three apart are larger than the network saw in training; that is the
honest price of a longer window for a network with a fixed number of context frames.
"""

from mowm_ros import geometry
from mowm_ros.model.denoiser import Conditioning
from mowm_ros.model.experts import DENOISER, Query
from mowm_ros.model.frames import images_to_tensor, tensor_to_images
import numpy as np
import torch

STRIDES = (1, 2, 3)


def window_indices(length, context_frames, stride):
    """Return ``context_frames`` indices ``stride`` apart ending at the newest (clipped)."""
    index = length - 1 - stride * np.arange(context_frames - 1, -1, -1)
    return np.clip(index, 0, None)


@torch.no_grad()
def imagine_sliding_window(model, history_rgb, history_poses, target_poses, steps=None,
                           seed=0, strides=STRIDES):
    """
    Predict frames at ``target_poses`` (H, 4, 4) from model frames ``history_rgb``.

    ``history_rgb`` (N, S, S, 3) uint8 and ``history_poses`` (N, 4, 4) are the observed model
    frames, oldest first; predictions are appended to them as the rollout goes. ``model`` is
    a WorldModel (its network, sampler and evaluator are used). Returns (H, S, S, 3) uint8.
    """
    images = list(np.asarray(history_rgb))
    poses = list(np.asarray(history_poses, dtype=np.float64))
    evaluator = model.evaluators[DENOISER]
    device = model.device
    generator = torch.Generator(device=device).manual_seed(seed)
    k = model.context_frames
    query = [Query(context=True)]
    predictions = []
    for target in np.asarray(target_poses, dtype=np.float64):
        stacked_rgb, stacked_poses = np.stack(images), np.stack(poses)
        contexts, motions = [], []
        for stride in strides:
            index = window_indices(len(images), k, stride)
            chain = np.concatenate([stacked_poses[index], target[None]])
            contexts.append(stacked_rgb[index])
            motions.append(geometry.relative_motion(chain[:-1], chain[1:]))
        n = len(strides)
        cond = Conditioning(
            context=images_to_tensor(np.stack(contexts), device),
            motions=torch.as_tensor(np.stack(motions), dtype=torch.float32, device=device),
            target_pose=torch.as_tensor(
                np.repeat(geometry.absolute_pose_features(target[None]), n, axis=0),
                dtype=torch.float32, device=device),
            render=torch.zeros((n, 4, model.size, model.size), device=device))

        def predict(x_t, logsnr, cond=cond, n=n):
            (v,) = evaluator(query, x_t.expand(n, -1, -1, -1), logsnr.expand(n), cond)
            return v.mean(dim=0, keepdim=True), 1.0

        noise = torch.randn((1, 3, model.size, model.size), generator=generator,
                            device=device)
        frame = tensor_to_images(model.diffusion.sample(predict, noise, steps or
                                                        model.config.sampler_steps))[0]
        predictions.append(frame)
        images.append(frame)
        poses.append(target)
    return np.stack(predictions)
