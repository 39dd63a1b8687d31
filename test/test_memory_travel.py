"""TravelLog: distance travelled and the stamp a given distance of travel ago."""

import math

from mowm_ros import geometry
from mowm_ros.memory.spatial import UNKNOWN
from mowm_ros.memory.travel import RESOLUTION, TravelLog
import numpy as np
import pytest

SECOND = 1_000_000_000


def pose_at(x, y, z=0.8, yaw=0.0):
    return geometry.camera_pose_from_planar(x, y, yaw, z)


def test_distance_is_the_planar_path_length_and_stamps_answer_by_travel():
    log = TravelLog(100.0)
    assert log.stamp_within(5.0) is None
    # 1 m steps along x, then a vertical move (not travel on the ground) and 1 m along y.
    for i in range(4):
        log.add(pose_at(float(i), 0.0), (i + 1) * SECOND)
    log.add(pose_at(3.0, 0.0, z=1.5), 5 * SECOND)
    log.add(pose_at(3.0, 1.0, z=1.5), 6 * SECOND)
    assert log.distance == pytest.approx(4.0)
    assert log.stamp_within(0.0) == 6 * SECOND      # the newest pose, 0 m back
    assert log.stamp_within(1.0) == 4 * SECOND      # 3 m travelled then, 4 now
    assert log.stamp_within(2.5) == 3 * SECOND
    assert log.stamp_within(100.0) == 1 * SECOND    # the whole drive


def test_only_the_stretch_within_keep_m_is_kept_over_a_long_drive():
    log = TravelLog(keep_m=5.0)
    for i in range(2000):
        log.add(pose_at(0.5 * i, 0.0), (i + 1) * SECOND)
    assert len(log) <= 12, len(log)                  # 5 m of 0.5 m steps, and one before
    assert log.distance == pytest.approx(999.5)
    assert log.stamp_within(5.0) == 1990 * SECOND
    assert log.stamp_within(50.0) <= 1990 * SECOND   # beyond keep_m: as for keep_m at most
    log.reset()
    assert len(log) == 0 and log.distance == 0.0 and log.stamp_within(1.0) is None


@pytest.mark.parametrize('keep', [0.0, -1.0, math.nan, math.inf])
def test_keep_must_be_positive_and_finite(keep):
    with pytest.raises(ValueError, match='keep_m'):
        TravelLog(keep)


def test_a_pose_that_stays_put_adds_no_distance_and_no_entries():
    log = TravelLog(1.0)
    for i in range(5):
        log.add(pose_at(1.0, 2.0, yaw=0.3 * i), (i + 1) * SECOND)
    assert log.distance == 0.0 and len(log) == 1
    np.testing.assert_equal(log.stamp_within(0.0), 1 * SECOND)


def test_hours_of_jitter_in_place_keep_the_log_bounded():
    # 10,000 frames of 1 mm odometry noise around one spot: 10 m of "travel" in tiny steps.
    log = TravelLog(4.0)
    rng = np.random.default_rng(0)
    for i in range(10_000):
        x, y = 1.0 + 0.001 * rng.standard_normal(2)
        log.add(pose_at(x, y), (i + 1) * SECOND)
    assert len(log) <= RESOLUTION + 2, len(log)
    newest = log.stamp_within(0.0)
    assert 9_900 * SECOND <= newest <= 10_000 * SECOND      # within spacing_m of the end
    oldest = log.stamp_within(4.0)
    assert oldest < newest


def test_world_model_trusting_recent_travel_leaves_older_memory_out():
    from mowm_ros.benchmarks.model import synthetic_frames
    from mowm_ros.memory.retrieval import RetrievalConfig
    from mowm_ros.world_model import WorldModel, WorldModelConfig

    frames = synthetic_frames(10)           # 0.2 m apart along x: 1.8 m in all
    # Keyframes are retrieved for the first poses only from within 1 m: the oldest ones.
    retrieval = RetrievalConfig(radius_m=1.0, min_gain_m=0.0)
    models = {trust: WorldModel(WorldModelConfig(
        finetune_on_observe=False, episodic_retrieval=True, retrieval=retrieval,
        trust_travel_m=trust, torch_threads=1)) for trust in (0.0, 0.5)}
    images = {}
    try:
        for model in models.values():
            for frame in frames:
                model.observe(frame)
        state = models[0.5].rollout_state()
        assert state.seen_after == frames[7].stamp      # 1.4 m of 1.8 m: within 0.5 m
        assert models[0.0].rollout_state().seen_after is None
        old = np.stack([frame.pose for frame in frames[:2]])
        trusted = models[0.5].render_memory(old, state)[1].mean(axis=(1, 2))
        everything = models[0.0].render_memory(old)[1].mean(axis=(1, 2))
        assert (trusted < everything).all(), (trusted, everything)
        # The costmap for Nav2 too: the floor seen only at the start is no longer known.
        known = {trust: (model.occupancy_grid(resolution=0.1).cells != UNKNOWN).sum()
                 for trust, model in models.items()}
        assert 0 < known[0.5] < known[0.0], known
        for trust, model in models.items():
            for on in (True, False):
                model.config.episodic_retrieval = on
                images[trust, on] = model.imagine(old[:, None], experts=('short_term', 'episodic'),
                                                  steps=1).images
    finally:
        for model in models.values():
            model.close()
    # Trusting all, the old keyframes are read; trusting 0.5 m, none qualifies, so the
    # prediction is the one without retrieval.
    assert not np.array_equal(images[0.0, True], images[0.0, False])
    np.testing.assert_array_equal(images[0.5, True], images[0.5, False])


@pytest.mark.parametrize('trust', [-1.0, math.nan, math.inf])
def test_world_model_trust_travel_must_be_finite_and_not_negative(trust):
    from mowm_ros.world_model import WorldModelConfig

    with pytest.raises(ValueError, match='trust_travel_m'):
        WorldModelConfig(trust_travel_m=trust)


def test_the_node_parameter_sets_the_trusted_travel_and_refuses_a_negative_one():
    from mowm_ros.nodes.world_model_params import check_parameter, model_config_from, PARAMETERS

    assert PARAMETERS['trust_travel_m'] == 0.0          # trust everything unless asked
    assert model_config_from(dict(PARAMETERS, trust_travel_m=4.0)).trust_travel_m == 4.0
    for bad in (-1.0, math.nan):
        reason = check_parameter('trust_travel_m', bad)
        assert reason is not None and 'trust_travel_m' in reason, reason
