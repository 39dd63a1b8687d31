"""WorldModel behaviour on a small untrained checkpoint and exact synthetic RGB-D scenes."""


from mowm_ros import geometry
from mowm_ros.memory import scenes
from mowm_ros.model.finetune import FinetuneConfig
from mowm_ros.world_model import Frame, WorldModel, WorldModelConfig
import numpy as np
import pytest
from tiny_training import save_untrained_checkpoint
import torch

SIZE = 32


@pytest.fixture(scope='module')
def small_checkpoint(tmp_path_factory):
    return save_untrained_checkpoint(tmp_path_factory.mktemp('ckpt'), SIZE, sampler_steps=2)


@pytest.fixture(scope='module')
def room():
    return scenes.room_scene(seed=0)


def frames_in(room, count, size=48, start=0):
    K = geometry.intrinsics_from_fovy(80.0, size, size)
    frames = []
    for i in range(start, start + count):
        pose = geometry.camera_pose_from_planar(1.0 + 0.15 * i, 1.5, 0.4 * i, 0.8)
        view = room.render(pose, K, size, size)
        frames.append(Frame(rgb=view.rgb, pose=pose, K=K, stamp=(i + 1) * 500_000_000,
                            depth=view.depth))
    return frames


def make_model(checkpoint, **overrides):
    values = {'checkpoint': str(checkpoint), 'device': 'cpu', 'bf16': False}
    values.update(overrides)
    return WorldModel(WorldModelConfig(**values))


def test_observe_then_imagine_gives_frames_along_the_poses(small_checkpoint, room):
    model = make_model(small_checkpoint)
    try:
        for frame in frames_in(room, 6):
            model.observe(frame)
        assert len(model.spatial) > 0 and len(model.episodic) >= 2
        future = np.stack([f.pose for f in frames_in(room, 3, start=6)])
        result = model.imagine(future)
        assert result.images.shape == (1, 3, SIZE, SIZE, 3) and result.images.dtype == np.uint8
        batch = model.imagine(np.stack([future, future[::-1]]), experts=('short_term',))
        assert batch.images.shape == (2, 3, SIZE, SIZE, 3)
        assert model.finetuner.wait_idle(timeout=120)
        again = model.imagine(future, seed=0)
        np.testing.assert_array_equal(again.images, model.imagine(future, seed=0).images)
    finally:
        model.close()


def test_a_fractional_step_rate_trains_once_per_whole_step_owed(small_checkpoint, room):
    model = make_model(small_checkpoint, finetune=FinetuneConfig(steps_per_keyframe=0.5,
                                                                 batch_size=2))
    try:
        admitted = 0
        for frame in frames_in(room, 7):
            admitted += model.observe(frame)
            assert model.finetuner.wait_idle(timeout=120)
        assert admitted >= 3
        assert model.finetuner.steps_done == admitted // 2
        assert model.finetuner.pending_steps == 0
    finally:
        model.close()
    with pytest.raises(ValueError, match='steps_per_keyframe'):
        FinetuneConfig(steps_per_keyframe=float('nan'))


def test_recall_predicts_from_memory_alike_in_every_batch_slot(small_checkpoint, room):
    model = make_model(small_checkpoint, finetune_on_observe=False)
    try:
        with pytest.raises(RuntimeError, match='observed frame'):
            model.recall(np.eye(4)[None])
        frames = frames_in(room, 4)
        for frame in frames:
            model.observe(frame)
        np.testing.assert_array_equal(model.newest_camera_pose(), frames[-1].pose)
        poses = np.stack([frames[0].pose, frames[2].pose, frames[0].pose])
        views = model.recall(poses)
        assert views.shape == (3, SIZE, SIZE, 3) and views.dtype == np.uint8
        np.testing.assert_array_equal(views[0], views[2])        # same pose, same noise
        np.testing.assert_array_equal(model.recall(poses[1:2])[0], views[1])
        with pytest.raises(ValueError, match='memory expert'):
            model.recall(poses, experts=('short_term',))
        context = model.recent_context()
        model.reset()
        assert model.newest_camera_pose() is None
        model.restore_recent_context(context)
        np.testing.assert_array_equal(model.newest_camera_pose(), frames[-1].pose)
    finally:
        model.close()


def test_a_rollout_predicts_from_the_state_it_started_with(small_checkpoint, room):
    model = make_model(small_checkpoint, finetune_on_observe=False)
    try:
        frames = frames_in(room, 8)
        for frame in frames[:3]:
            model.observe(frame)
        state = model.rollout_state()
        assert state.stamp == frames[2].stamp and len(state.spatial) == len(model.spatial)
        future = np.stack([f.pose for f in frames[3:6]])
        first = model.imagine(future, seed=3, state=state)
        assert first.context_stamp == frames[2].stamp
        rendered = model.render_memory(future, state)
        # Frames observed after the state was taken (while a rollout would run) change the
        # memory and the context, but not what a rollout from that state sees.
        for frame in frames[3:]:
            model.observe(frame)
        again = model.imagine(future, seed=3, state=state)
        np.testing.assert_array_equal(again.images, first.images)
        for old, new in zip(rendered, model.render_memory(future, state)):
            np.testing.assert_array_equal(old, new)
        now = model.imagine(future, seed=3)
        assert now.context_stamp == frames[-1].stamp
        assert not np.array_equal(now.images, first.images)
        assert not np.array_equal(model.render_memory(future)[0], rendered[0])
        with pytest.raises(ValueError, match='spatial memory view'):
            model.imagine(future, state=model.rollout_state(render=False))
    finally:
        model.close()


def test_bad_frames_are_rejected_and_memory_is_unchanged(small_checkpoint, room):
    model = make_model(small_checkpoint, finetune_on_observe=False)
    good = frames_in(room, 3)
    for frame in good[:2]:
        model.observe(frame)
    before = (len(model.spatial), len(model.episodic), model.frames_observed)
    nan_pose = good[2].pose.copy()
    nan_pose[0, 3] = np.nan
    bad = [
        (Frame(good[2].rgb.astype(np.float32), good[2].pose, good[2].K, good[2].stamp),
         'uint8'),
        (Frame(good[2].rgb, nan_pose, good[2].K, good[2].stamp), 'NaN'),
        (Frame(good[2].rgb, good[2].pose, np.zeros((3, 3)), good[2].stamp), 'focal'),
        (Frame(good[2].rgb, good[2].pose, good[2].K, good[2].stamp, depth=np.zeros((2, 2))),
         'depth'),
        (Frame(good[2].rgb, good[2].pose, good[2].K, 1), 'backwards'),
        (Frame(good[2].rgb, good[2].pose, good[2].K, 1, depth=good[2].depth), 'backwards'),
    ]
    for frame, reason in bad:
        with pytest.raises(ValueError, match=reason):
            model.observe(frame)
    assert (len(model.spatial), len(model.episodic), model.frames_observed) == before
    with pytest.raises(ValueError, match='poses'):
        model.imagine(np.zeros((3, 3)))
    model.close()


def test_reset_forgets_and_imagine_needs_an_observation(small_checkpoint, room):
    model = make_model(small_checkpoint)
    for frame in frames_in(room, 4):
        model.observe(frame)
    model.reset()
    assert len(model.spatial) == 0 and len(model.episodic) == 0
    with pytest.raises(RuntimeError, match='observed frame'):
        model.imagine(np.eye(4)[None])
    model.close()


def test_save_and_load_restore_memories_and_adapters(small_checkpoint, room, tmp_path):
    model = make_model(small_checkpoint)
    for frame in frames_in(room, 8):
        model.observe(frame)
    assert model.finetuner.wait_idle(timeout=120)
    adapters = model.finetuner.latest()
    assert adapters.version > 0 and adapters.keyframes_seen == len(model.episodic)
    model.save(tmp_path / 'memory')
    restored = make_model(small_checkpoint, finetune_on_observe=False)
    snapshot = restored.load(tmp_path / 'memory')
    assert snapshot is not None
    assert len(restored.spatial) == len(model.spatial)
    assert len(restored.episodic) == len(model.episodic)
    for name, value in adapters.weights.items():
        assert torch.equal(restored.finetuner.latest().weights[name], value), name
    assert make_model(small_checkpoint).load(tmp_path / 'nothing-here') is None
    model.close()
    restored.close()


def test_sampler_always_sees_a_whole_adapter_set(small_checkpoint, room):
    model = make_model(small_checkpoint)
    finetuner = model.finetuner
    published = {finetuner.latest().version: finetuner.latest().weights}
    original_publish = finetuner.publish

    def publish_and_record(keyframes_seen):
        original_publish(keyframes_seen)
        latest = finetuner.latest()
        published[latest.version] = latest.weights

    finetuner.publish = publish_and_record
    seen = []

    def imagine_and_record(frame):
        model.imagine(frame.pose[None], experts=('short_term', 'episodic'))
        seen.append((model.loaded_adapter_version,
                     {k: v.clone() for k, v in model.network.state_dict().items()
                      if '.lora_' in k}))

    try:
        for frame in frames_in(room, 12):
            model.observe(frame)
            imagine_and_record(frame)
        assert finetuner.wait_idle(timeout=120)
        # Once every owed step has run, the newest set differs from the one the first
        # prediction used, however slowly the finetuning thread ran meanwhile.
        imagine_and_record(frame)
    finally:
        model.close()
    assert len({version for version, _ in seen}) > 1, 'adapters never changed'
    for version, weights in seen:
        expected = published[version]
        assert set(weights) == set(expected)
        assert all(torch.equal(weights[name], expected[name]) for name in expected)


def test_keyframes_keep_the_memory_view_they_were_taken_with(small_checkpoint, room):
    """With depth, each keyframe keeps the render from before its own depth was fused."""
    model = make_model(small_checkpoint, finetune_on_observe=False)
    try:
        frames = frames_in(room, 4)
        fused = []
        for frame in frames:
            model.observe(frame)
            # The render from the memory as it is now, its own depth included.
            fused.append(model.render_memory(frame.pose[None])[1][0])
        arrays = model.episodic.snapshot()
        assert len(arrays) == 4 and arrays.has_view.all()
        assert not arrays.view_mask[0].any(), 'the first keyframe saw an empty memory'
        for index in range(1, 4):
            before, after = arrays.view_mask[index], fused[index]
            assert before.any() and (before <= after).all() and before.sum() < after.sum(), \
                f'keyframe {index}: its view does not come from the memory before it'
        # The finetuner is given the views with the keyframes.
        batch = model.keyframes()
        np.testing.assert_array_equal(batch.view_mask, arrays.view_mask)
        # Nothing to learn beside a render: no views without depth, without the spatial
        # expert, or when switched off.
        for overrides, strip_depth in (({}, True), ({'experts': ('short_term', 'episodic')},
                                                    False),
                                       ({'episodic_memory_view': False}, False)):
            other = make_model(small_checkpoint, finetune_on_observe=False, **overrides)
            try:
                for frame in frames:
                    if strip_depth:
                        frame = Frame(rgb=frame.rgb, pose=frame.pose, K=frame.K,
                                      stamp=frame.stamp)
                    other.observe(frame)
                assert len(other.episodic) == 4 and other.keyframes().has_view is None, \
                    overrides
            finally:
                other.close()
    finally:
        model.close()
