"""Which episodic keyframes the episodic expert reads for a target pose."""

import math

from mowm_ros import geometry
from mowm_ros.memory.retrieval import nearest_keyframes, RetrievalConfig
from mowm_ros.model.denoiser import Conditioning
import numpy as np
import pytest
import torch


def poses(*planar):
    return np.stack([geometry.camera_pose_from_planar(x, y, yaw, 0.3) for x, y, yaw in planar])


KEYFRAMES = poses((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (2.0, 0.0, 0.0), (2.0, 0.0, math.pi),
                  (5.0, 5.0, 0.0))


def test_the_nearest_come_last_and_heading_counts():
    target = poses((2.1, 0.0, 0.0))[0]
    # (2, 0) facing the same way, then (1, 0); (2, 0) facing back is 1.57 m away in rank.
    assert nearest_keyframes(KEYFRAMES, target, 3).tolist() == [3, 1, 2]
    assert nearest_keyframes(KEYFRAMES, target, 2).tolist() == [1, 2]
    facing_back = poses((2.1, 0.0, math.pi))[0]
    assert nearest_keyframes(KEYFRAMES, facing_back, 1).tolist() == [3]


def test_just_ahead_of_the_robot_its_recent_frames_are_kept():
    config = RetrievalConfig(min_gain_m=1.0)
    target = poses((2.0, 0.0, 0.0))[0]
    # The newest frame 1.5 m behind the target, keyframe 2 right there: 1.5 m nearer.
    newest = poses((0.5, 0.0, 0.0))[0]
    assert nearest_keyframes(KEYFRAMES, target, 2, config, newest) is not None
    # The newest frame 0.5 m behind: the best keyframe is only 0.5 m nearer.
    newest = poses((1.5, 0.0, 0.0))[0]
    assert nearest_keyframes(KEYFRAMES, target, 2, config, newest) is None
    assert nearest_keyframes(KEYFRAMES, target, 2, config) is not None


def test_fewer_keyframes_than_context_slots_repeat_the_farthest():
    target = poses((0.2, 0.0, 0.0))[0]
    assert nearest_keyframes(KEYFRAMES[:2], target, 4).tolist() == [1, 1, 1, 0]


def test_nothing_is_retrieved_beyond_the_radius_or_turn_or_from_an_empty_buffer():
    config = RetrievalConfig(radius_m=1.0, max_turn=0.5)
    assert nearest_keyframes(KEYFRAMES, poses((9.0, 9.0, 0.0))[0], 4, config) is None
    assert nearest_keyframes(KEYFRAMES, poses((0.0, 0.0, 1.0))[0], 4, config) is None
    assert nearest_keyframes(KEYFRAMES, poses((0.0, 0.0, 0.4))[0], 4, config) is not None
    assert nearest_keyframes(KEYFRAMES[:0], poses((0.0, 0.0, 0.0))[0], 4) is None
    with pytest.raises(ValueError, match='radius_m > 0'):
        RetrievalConfig(radius_m=0.0)
    with pytest.raises(ValueError, match='max_render_coverage in'):
        RetrievalConfig(max_render_coverage=1.5)
    with pytest.raises(ValueError, match='min_gain_m >= 0'):
        RetrievalConfig(min_gain_m=-1.0)


def test_queries_reading_retrieved_keyframes_get_them_in_place_of_the_recent_frames():
    n, k = 2, 3
    recent = torch.zeros(n, k, 3, 8, 8)
    retrieved = torch.ones(n, k, 3, 8, 8)
    cond = Conditioning(recent, torch.zeros(n, k, 3), torch.arange(8.0).view(n, 4),
                        torch.zeros(n, 4, 8, 8), retrieved, torch.ones(n, k, 3))
    batch = cond.for_queries([False, True, False])
    assert batch.context.shape == (3 * n, k, 3, 8, 8)
    assert batch.context[:n].eq(0).all() and batch.context[n:2 * n].eq(1).all()
    assert batch.motions[n:2 * n].eq(1).all() and batch.motions[2 * n:].eq(0).all()
    assert torch.equal(batch.target_pose, cond.target_pose.repeat(3, 1))
    assert batch.retrieved_context is None
    plain = Conditioning(recent, torch.zeros(n, k, 3), torch.zeros(n, 4), torch.zeros(n, 4, 8, 8))
    assert plain.repeat(2).context.shape == (2 * n, k, 3, 8, 8)
    with pytest.raises(ValueError, match='holds none'):
        plain.for_queries([True])


def test_where_the_render_covers_the_view_no_keyframes_are_retrieved():
    from mowm_ros.benchmarks.model import synthetic_frames
    from mowm_ros.world_model import WorldModel, WorldModelConfig

    frames = synthetic_frames(10)
    # No margin over the newest frame: the targets here are only metres behind the robot.
    model = WorldModel(WorldModelConfig(finetune_on_observe=False, episodic_retrieval=True,
                                        retrieval=RetrievalConfig(min_gain_m=0.0),
                                        torch_threads=1))
    try:
        for frame in frames:
            model.observe(frame)
        # Poses seen before: the render covers them, and the keyframes lie right there.
        poses = np.stack([frame.pose for frame in frames[2:4]])[:, None]
        covered = model.render_memory(poses.reshape(-1, 4, 4))[1].mean(axis=(1, 2))
        assert (covered >= model.config.retrieval.max_render_coverage).all(), covered
        images = {}
        for retrieval in (True, False):
            model.config.episodic_retrieval = retrieval
            for experts in (('short_term', 'episodic', 'spatial'), ('short_term', 'episodic')):
                images[retrieval, experts] = model.imagine(poses, experts=experts,
                                                           steps=1).images
    finally:
        model.close()
    # With the render the retrieval stays off there; without it the keyframes are read.
    all_three = ('short_term', 'episodic', 'spatial')
    np.testing.assert_array_equal(images[True, all_three], images[False, all_three])
    no_render = ('short_term', 'episodic')
    assert not np.array_equal(images[True, no_render], images[False, no_render])
