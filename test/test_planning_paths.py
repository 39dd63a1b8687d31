from mowm_ros.nodes.inputs import OdometryBuffer, StampPairer
from mowm_ros.nodes.workers import LatestWorker
from mowm_ros.planning.agreement import memory_agreement
from mowm_ros.planning.paths import (base_yaw, extrapolate_twist, mosaic, planar_base_pose,
                                     poses_along_path)
import numpy as np
import pytest
import transforms3d


def test_extrapolating_a_turn_follows_the_circle():
    start = planar_base_pose(1.0, 2.0, 0.0, 0.3)
    poses = extrapolate_twist(start, 1.0, np.pi / 2, count=4, dt=0.5)
    np.testing.assert_allclose(poses[-1][:3, 3], [1.0, 2.0 + 2 * (2 / np.pi), 0.3], atol=1e-9)
    assert base_yaw(poses[-1]) == pytest.approx(np.pi)
    straight = extrapolate_twist(start, 0.4, 0.0, count=2, dt=0.5)
    np.testing.assert_allclose(straight[:, :3, 3], [[1.2, 2.0, 0.3], [1.4, 2.0, 0.3]])
    with pytest.raises(ValueError, match='bad extrapolation'):
        extrapolate_twist(start, float('nan'), 0.0, 2, 0.5)


def test_future_poses_keep_the_tilt_of_the_current_pose():
    pitch = transforms3d.euler.euler2mat(0.0, 0.1, 0.0)
    start = planar_base_pose(0.0, 0.0, 0.7, 0.0, tilt=pitch)
    (turned,) = extrapolate_twist(start, 0.0, 0.5, count=1, dt=1.0)
    relative = start[:3, :3].T @ turned[:3, :3]
    # Only the yaw changed: the same pitch about the new heading.
    np.testing.assert_allclose(relative, pitch.T @ transforms3d.euler.euler2mat(0, 0, 0.5)
                               @ pitch, atol=1e-9)


def test_poses_along_a_path_start_at_the_nearest_point_and_follow_its_segments():
    path = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0]])
    robot = planar_base_pose(0.5, 0.1, 0.0)
    poses = poses_along_path(path, robot, count=4, spacing=1.0)
    np.testing.assert_allclose(poses[:, :2, 3], [[1.5, 0.0], [2.0, 0.5], [2.0, 1.5]],
                               atol=1e-9)
    assert [round(base_yaw(p), 6) for p in poses] == [0.0, round(np.pi / 2, 6),
                                                      round(np.pi / 2, 6)]
    assert len(poses_along_path(path, planar_base_pose(2.0, 2.0, 0.0), 3, 0.5)) == 0
    with pytest.raises(ValueError):
        poses_along_path(np.array([[0.0, np.nan], [1.0, 0.0]]), robot, 2, 0.5)


def test_mosaic_tiles_with_gaps():
    images = np.stack([np.full((4, 5, 3), v, np.uint8) for v in (10, 20, 30)])
    tiled = mosaic(images, gap=2)
    assert tiled.shape == (4, 19, 3)
    assert tiled[0, 0, 0] == 10 and tiled[0, 5, 0] == 0 and tiled[0, 7, 0] == 20


def test_odometry_is_interpolated_at_image_stamps_and_gaps_are_refused():
    buffer = OdometryBuffer(max_gap_s=0.5)
    buffer.add(1_000_000_000, planar_base_pose(0.0, 0.0, 0.0))
    buffer.add(2_000_000_000, planar_base_pose(1.0, 0.0, 0.4))
    middle = buffer.pose_at(1_250_000_000)
    assert middle[0, 3] == pytest.approx(0.25) and base_yaw(middle) == pytest.approx(0.1)
    assert buffer.pose_at(2_400_000_000)[0, 3] == pytest.approx(1.0)
    assert buffer.pose_at(3_000_000_000) is None
    with pytest.raises(ValueError, match='backwards'):
        buffer.add(1_500_000_000, planar_base_pose(0.0, 0.0, 0.0))
    bad = planar_base_pose(0.0, 0.0, 0.0)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        buffer.add(3_000_000_000, bad)
    assert buffer.latest()[0] == 2_000_000_000


def test_colour_and_depth_pair_by_stamp_and_stale_halves_are_counted():
    pairer = StampPairer(slop_s=0.01)
    assert pairer.add_colour(100, 'c100') is None
    assert pairer.add_colour(200_000_000, 'c200') is None
    assert pairer.add_depth(200_000_005, 'd200') == ('c200', 'd200', 200_000_000)
    assert pairer.dropped == 1          # c100 never found its depth
    assert pairer.add_depth(300_000_000, 'd300') is None
    assert pairer.add_colour(300_000_000, 'c300') == ('c300', 'd300', 300_000_000)


def test_latest_worker_runs_the_newest_request_and_counts_the_dropped():
    import threading
    release, seen = threading.Event(), []

    def work(request):
        if request == 'slow':
            release.wait(5)
        if request == 'boom':
            raise RuntimeError('boom')
        seen.append(request)

    errors = []
    worker = LatestWorker('test', work, capacity=1, on_error=lambda n, e: errors.append(e))
    worker.submit('slow')
    while not worker.busy:
        pass
    for request in ('a', 'b', 'c'):
        worker.submit(request)
    release.set()
    assert worker.wait_idle(5)
    assert seen == ['slow', 'c'] and worker.dropped == 2
    worker.submit('boom')
    assert worker.wait_idle(5) and worker.failed == 1 and str(errors[0]) == 'boom'
    worker.submit('d')
    assert worker.wait_idle(5) and seen[-1] == 'd'
    worker.stop()


def test_memory_agreement_scores_covered_pixels_only():
    rng = np.random.default_rng(0)
    memory = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    covered = np.zeros((3, 8, 8), bool)
    covered[:, :4] = True
    predicted = memory.copy()
    predicted[:, 4:] = 255 - predicted[:, 4:]            # wrong only where memory is blank
    same = memory_agreement(predicted, memory, covered)
    assert same.score == 1.0 and same.coverage == 0.5
    predicted[:, :4] = 255 - memory[:, :4]
    wrong = memory_agreement(predicted, memory, covered)
    expected = 1 - np.abs(predicted[:, :4].astype(float) - memory[:, :4]).mean() / 255
    assert wrong.score == pytest.approx(expected) and wrong.score < 0.8
    unseen = memory_agreement(predicted, memory, np.zeros((3, 8, 8), bool))
    assert np.isnan(unseen.score) and unseen.coverage == 0.0
    with pytest.raises(ValueError, match='must match'):
        memory_agreement(predicted[:2], memory, covered)
