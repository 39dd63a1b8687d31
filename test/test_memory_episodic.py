import threading

from mowm_ros import geometry
from mowm_ros.memory.episodic import EpisodicBuffer, EpisodicBufferConfig
import numpy as np
import pytest

SECOND = 1_000_000_000


def image(value=0, size=64):
    return np.full((size, size, 3), value, np.uint8)


def pose_at(x, y, yaw=0.0):
    return geometry.camera_pose_from_planar(x, y, yaw, 0.5)


def test_admission_needs_enough_motion_turn_or_time():
    buffer = EpisodicBuffer(EpisodicBufferConfig(min_translation=0.5, min_rotation=0.3,
                                                 max_interval_s=10.0))
    assert buffer.add(image(), pose_at(0.0, 0.0), 0)              # the first frame
    assert not buffer.add(image(), pose_at(0.4, 0.0), 1 * SECOND)
    assert buffer.add(image(), pose_at(0.0, 0.55), 2 * SECOND)    # moved 0.55 m sideways
    assert not buffer.add(image(), pose_at(0.0, 0.55, 0.25), 3 * SECOND)
    assert buffer.add(image(), pose_at(0.0, 0.55, -0.35), 4 * SECOND)   # turned
    assert not buffer.add(image(), pose_at(0.0, 0.55, -0.35), 13 * SECOND)
    assert buffer.add(image(), pose_at(0.0, 0.55, -0.35), 14 * SECOND)  # 10 s passed
    assert len(buffer) == 4 and buffer.version == 4


def test_min_interval_limits_the_rate_and_max_interval_can_be_off():
    buffer = EpisodicBuffer(EpisodicBufferConfig(min_translation=0.1, min_interval_s=1.0,
                                                 max_interval_s=None))
    assert buffer.add(image(), pose_at(0.0, 0.0), 0)
    assert not buffer.add(image(), pose_at(1.0, 0.0), SECOND // 2)
    assert buffer.add(image(), pose_at(1.0, 0.0), SECOND)
    assert not buffer.add(image(), pose_at(1.0, 0.0), 1000 * SECOND)


def test_motion_is_relative_to_the_previous_keyframe():
    buffer = EpisodicBuffer()
    first, second = pose_at(1.0, 2.0, np.pi / 2), pose_at(1.0, 3.0, np.pi / 2 + 0.5)
    buffer.add(image(1), first, 0)
    buffer.add(image(2), second, SECOND)
    arrays = buffer.snapshot()
    np.testing.assert_allclose(arrays.motion[0], 0.0)
    np.testing.assert_allclose(arrays.motion[1], [1.0, 0.0, 0.5], atol=1e-9)
    assert [k.rgb[0, 0, 0] for k in buffer] == [1, 2]


@pytest.mark.parametrize('rgb, pose, stamp, error', [
    (image(size=32), pose_at(1, 0), SECOND, 'uint8'),
    (image().astype(np.float32), pose_at(1, 0), SECOND, 'uint8'),
    (image(), np.full((4, 4), np.nan), SECOND, 'NaN'),
    (image(), pose_at(1, 0), -1, 'stamp'),
    (image(), pose_at(5, 0), 0, 'older'),
])
def test_bad_frames_are_rejected_and_leave_the_buffer_unchanged(rgb, pose, stamp, error):
    buffer = EpisodicBuffer()
    buffer.add(image(), pose_at(0.0, 0.0), 5)
    with pytest.raises(ValueError, match=error):
        buffer.add(rgb, pose, stamp)
    assert len(buffer) == 1 and buffer.version == 1


def test_full_buffer_keeps_covering_places_and_never_evicts_the_newest():
    config = EpisodicBufferConfig(capacity=5, min_translation=0.5, max_interval_s=1.0)
    buffer = EpisodicBuffer(config)
    places = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)]
    stamp = 0
    for index, (x, y) in enumerate(places):
        assert buffer.add(image(index), pose_at(x, y), stamp)
        stamp += SECOND
    # Parked at the first place: a keyframe every second, all of the same view.
    for repeat in range(10):
        stamp += SECOND
        assert buffer.add(image(100 + repeat), pose_at(0.05 * (repeat % 2), 0.0), stamp)
        assert len(buffer) <= 5
        arrays = buffer.snapshot()
        assert arrays.rgb[-1, 0, 0, 0] == 100 + repeat          # the newest survives
        kept = {(round(p[0, 3]), round(p[1, 3])) for p in arrays.pose}
        assert {(4, 0), (4, 4), (0, 4)} <= kept                  # distinct places survive
    # Motion stays relative to the previous keyframe still in the buffer.
    for previous, current, motion in zip(arrays.pose[:-1], arrays.pose[1:], arrays.motion[1:]):
        np.testing.assert_allclose(motion, geometry.relative_motion(previous, current))
    np.testing.assert_allclose(arrays.motion[0], 0.0)
    assert list(arrays.keyframe_id) == sorted(arrays.keyframe_id)


def test_retrieval_ranks_keyframes_by_view_overlap():
    buffer = EpisodicBuffer(EpisodicBufferConfig(min_translation=0.1, view_fov_deg=90.0,
                                                 view_range=3.0))
    query = pose_at(0.0, 0.0, 0.0)
    candidates = {'same': pose_at(0.0, 0.0, 0.0), 'behind_looking_same_way': pose_at(-1.0, 0.0),
                  'turned_45': pose_at(0.0, 0.2, np.pi / 4), 'side_far': pose_at(0.0, 6.0),
                  'opposite': pose_at(0.3, 0.5, np.pi)}
    for index, (name, pose) in enumerate(candidates.items()):
        assert buffer.add(image(index), pose, index * SECOND)
    found = buffer.retrieve(query, k=10)
    names = [list(candidates)[k.rgb[0, 0, 0]] for k in found]
    assert names[0] == 'same' and found[0].score == pytest.approx(1.0)
    assert names.index('behind_looking_same_way') < names.index('turned_45')
    assert 'opposite' not in names and 'side_far' not in names      # no overlap at all
    scores = [k.score for k in found]
    assert scores == sorted(scores, reverse=True) and min(scores) > 0
    assert [k.keyframe_id for k in buffer.retrieve(query, k=2)] == \
        [k.keyframe_id for k in found[:2]]
    assert buffer.retrieve(query, k=0) == []


def test_version_changes_on_admission_and_reset_only():
    buffer = EpisodicBuffer()
    versions = [buffer.version]
    buffer.add(image(), pose_at(0.0, 0.0), 0)
    versions.append(buffer.version)
    buffer.add(image(), pose_at(0.0, 0.0), 1)      # not admitted
    versions.append(buffer.version)
    buffer.reset()
    versions.append(buffer.version)
    assert versions == [0, 1, 1, 2] and len(buffer) == 0


def test_arrays_round_trip_and_smaller_capacity():
    buffer = EpisodicBuffer(EpisodicBufferConfig(min_translation=0.5))
    for index in range(8):
        buffer.add(image(index), pose_at(index * 1.0, (index % 3) * 0.7), index * SECOND)
    arrays = buffer.to_arrays()
    restored = EpisodicBuffer.from_arrays(arrays)
    again = restored.to_arrays()
    for name in arrays:
        np.testing.assert_array_equal(again[name], arrays[name])
    assert restored.version == buffer.version
    assert restored.add(image(), pose_at(20.0, 0.0), 9 * SECOND)
    assert restored.snapshot().keyframe_id[-1] == 8

    small = EpisodicBuffer.from_arrays(arrays, EpisodicBufferConfig(capacity=3))
    assert len(small) == 3 and small.snapshot().keyframe_id[-1] == 7
    with pytest.raises(ValueError, match='32x32'):
        EpisodicBuffer.from_arrays(arrays, EpisodicBufferConfig(image_size=32))
    broken = dict(arrays, stamp=arrays['stamp'][::-1].copy())
    with pytest.raises(ValueError, match='stamps'):
        EpisodicBuffer.from_arrays(broken)


@pytest.mark.parametrize('field, value', [('capacity', 1), ('image_size', 0),
                                          ('min_translation', -1.0), ('max_interval_s', 0.0),
                                          ('view_fov_deg', 400.0)])
def test_config_values_are_validated(field, value):
    with pytest.raises(ValueError, match=field):
        EpisodicBufferConfig(**{field: value})


def test_concurrent_adds_and_snapshots_stay_consistent():
    buffer = EpisodicBuffer(EpisodicBufferConfig(capacity=20, min_translation=0.1))
    errors = []

    def writer():
        for index in range(300):
            buffer.add(image(index % 256), pose_at(0.2 * index, np.sin(index)), index * SECOND)

    def reader():
        try:
            for _ in range(200):
                arrays = buffer.snapshot()
                assert len(arrays.rgb) == len(arrays.pose) == len(arrays.stamp) <= 20
                assert np.all(np.diff(arrays.stamp) > 0)
        except AssertionError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(buffer) == 20 and buffer.version == 300


def view(value, covered):
    """Return a memory view: uint8 rgb of ``value``, a mask covering the top ``covered`` rows."""
    mask = np.zeros((64, 64), bool)
    mask[:covered] = True
    return image(value), mask


def test_keyframes_keep_their_memory_views_through_snapshot_and_persistence():
    buffer = EpisodicBuffer(EpisodicBufferConfig(min_translation=0.5))
    assert buffer.snapshot().has_view is None                      # empty: nothing to show
    assert buffer.would_admit(pose_at(0.0, 0.0), 0)
    assert buffer.add(image(1), pose_at(0.0, 0.0), 0)              # stored without a view
    assert not buffer.would_admit(pose_at(0.2, 0.0), SECOND)       # says what add would do
    assert not buffer.add(image(2), pose_at(0.2, 0.0), SECOND, view(20, 5))
    assert buffer.would_admit(pose_at(1.0, 0.0), 2 * SECOND)
    assert len(buffer) == 1                                        # asking admits nothing
    assert buffer.add(image(3), pose_at(1.0, 0.0), 2 * SECOND, view(30, 10))
    arrays = buffer.snapshot()
    assert arrays.has_view.tolist() == [False, True]
    assert (arrays.view_rgb[1] == 30).all() and arrays.view_mask[1].sum() == 10 * 64
    # A view of another size is refused and the buffer is left as it was.
    with pytest.raises(ValueError, match='keyframe view must be uint8'):
        buffer.add(image(4), pose_at(2.0, 0.0), 3 * SECOND, (image(4, 32), np.ones((32, 32))))
    assert len(buffer) == 2
    restored = EpisodicBuffer.from_arrays(buffer.to_arrays()).snapshot()
    np.testing.assert_array_equal(restored.has_view, arrays.has_view)
    np.testing.assert_array_equal(restored.view_rgb, arrays.view_rgb)
    np.testing.assert_array_equal(restored.view_mask, arrays.view_mask)
    # Snapshots saved before views existed load as keyframes without views.
    older = {k: v for k, v in buffer.to_arrays().items() if not k.startswith(('view', 'has'))}
    assert EpisodicBuffer.from_arrays(older).snapshot().has_view is None
    with pytest.raises(ValueError, match='episodic views need all of'):
        EpisodicBuffer.check_arrays({**older, 'has_view': arrays.has_view})
