"""
A non-square camera (96x72) end to end: bag import, node conversions, world model, dataset.

All of them crop the centred square and resize it to the model size, with the intrinsics of
that crop, so a frame means the same thing on every path.

The camera renders an exact RGB-D room (mowm_ros.memory.scenes); the world model runs a small
untrained checkpoint (only its preprocessing and memories are under test here).
"""

from bag_fixtures import config, write_bag
from mowm_ros import geometry
from mowm_ros.data.bag_import import import_bag
from mowm_ros.data.dataset import DatasetConfig, EpisodeDataset
from mowm_ros.data.episode import Episode, save_episode
from mowm_ros.data.resize import model_intrinsics, to_model_frame
from mowm_ros.memory import scenes
from mowm_ros.nodes import conversions
from mowm_ros.nodes.world_model_inputs import reduced_frame
from mowm_ros.world_model import Frame, WorldModel, WorldModelConfig
import numpy as np
import pytest
from tiny_training import save_untrained_checkpoint

WIDTH, HEIGHT, SIZE = 96, 72, 64


@pytest.fixture(scope='module')
def room():
    return scenes.room_scene(seed=0)


@pytest.fixture(scope='module')
def camera_episode(room):
    """Six 96x72 RGB-D frames of the room from a camera turning as it moves."""
    K = geometry.intrinsics_from_fovy(60.0, WIDTH, HEIGHT)
    poses = np.stack([geometry.camera_pose_from_planar(1.2 + 0.2 * i, 1.5, 0.3 * i, 0.8)
                      for i in range(6)])
    views = [room.render(pose, K, WIDTH, HEIGHT) for pose in poses]
    return Episode(rgb=np.stack([v.rgb for v in views]), pose=poses, K=K,
                   stamp=(np.arange(6, dtype=np.int64) + 1) * 250_000_000,
                   depth=np.stack([v.depth for v in views]).astype(np.float32))


def psnr(a, b, mask=None):
    mask = np.ones(a.shape[:2], bool) if mask is None else mask
    error = np.mean((a[mask].astype(np.float64) - b[mask].astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(error, 1e-12))


def test_import_crops_the_centre_square_with_matching_intrinsics(tmp_path, room,
                                                                 camera_episode):
    episode = camera_episode
    write_bag(tmp_path / 'bag', episode, depth_format='compressedDepth', depth_encoding='16UC1')
    back = import_bag(tmp_path / 'bag', config(size=SIZE, keep_original=True))
    assert back.rgb.shape == (6, SIZE, SIZE, 3) and back.depth.shape == (6, SIZE, SIZE)
    assert back.meta['camera_image_size'] == [WIDTH, HEIGHT]
    np.testing.assert_allclose(back.K, model_intrinsics(episode.K, WIDTH, HEIGHT, SIZE))
    assert back.K[0, 0] == pytest.approx(back.K[1, 1])           # square pixels stay square
    np.testing.assert_array_equal(back.extras['rgb_camera'], episode.rgb)
    for i in range(6):
        np.testing.assert_array_equal(back.rgb[i], to_model_frame(episode.rgb[i], SIZE))
        # The room seen through the model intrinsics is what the imported frame shows.
        truth = room.render(back.pose[i], back.K, SIZE, SIZE)
        assert psnr(back.rgb[i], truth.rgb) > 20
        valid = np.isfinite(back.depth[i]) & np.isfinite(truth.depth)
        assert (np.isfinite(back.depth[i]) == np.isfinite(truth.depth)).mean() > 0.98
        close = np.abs(back.depth[i] - truth.depth)[valid] < 0.05 * truth.depth[valid]
        # Stretching to 64x64 instead of cropping agrees on 47-92% of the pixels here.
        assert close.mean() > 0.97, f'frame {i}: depth agrees on {close.mean():.3f} of pixels'


def test_node_conversions_and_world_model_see_the_same_frames(tmp_path, room,
                                                              camera_episode):
    episode = camera_episode
    write_bag(tmp_path / 'bag', episode)
    imported = import_bag(tmp_path / 'bag', config(size=SIZE))
    checkpoint = save_untrained_checkpoint(tmp_path / 'ckpt', SIZE, sampler_steps=2)
    model = WorldModel(WorldModelConfig(checkpoint=str(checkpoint), device='cpu', bf16=False,
                                        finetune_on_observe=False, context_interval_s=0.0))
    try:
        for i in range(len(episode)):
            # What the node receives and decodes: Image, depth Image and CameraInfo messages.
            stamp = int(episode.stamp[i])
            image = conversions.rgb_to_image(episode.rgb[i], 'camera', stamp, 'bgr8')
            depth = conversions.depth_to_image(episode.depth[i], 'camera', stamp, '16UC1')
            info = conversions.intrinsics_to_camera_info(episode.K, (WIDTH, HEIGHT), 'camera',
                                                         stamp)
            K, size = conversions.camera_info_to_intrinsics(info)
            assert size == (WIDTH, HEIGHT)
            frame = Frame(rgb=conversions.image_to_rgb(image),
                          depth=conversions.image_to_depth(depth), pose=episode.pose[i], K=K,
                          stamp=stamp)
            model.observe(reduced_frame(frame, 320))
        np.testing.assert_allclose(model.model_K, imported.K)
        context = model.recent_context()
        for rgb, pose, stamp in context:
            i = int(np.searchsorted(imported.stamp, stamp))
            np.testing.assert_array_equal(rgb, imported.rgb[i])
            np.testing.assert_allclose(pose, imported.pose[i], atol=1e-9)
        # The spatial memory integrated the 96x72 frames and renders them at the model view.
        assert len(model.spatial) > 0
        rendered, covered = model.render_memory(episode.pose[2])
        truth = room.render(episode.pose[2], model.model_K, SIZE, SIZE)
        assert covered[0].mean() > 0.5
        assert psnr(rendered[0], truth.rgb, covered[0]) > 20
    finally:
        model.close()


def test_training_dataset_crops_recorded_size_episodes_the_same_way(tmp_path, camera_episode):
    episode = camera_episode
    write_bag(tmp_path / 'bag', episode)
    recorded = import_bag(tmp_path / 'bag', config(size=0))        # kept at 96x72
    save_episode(tmp_path / 'ep.npz', recorded)
    dataset = EpisodeDataset([tmp_path / 'ep.npz'],
                             DatasetConfig(context=2, frame_skip=1, spatial_render=False))
    data = dataset.episodes[0]
    np.testing.assert_allclose(data.K, model_intrinsics(episode.K, WIDTH, HEIGHT, SIZE))
    sample = dataset[0]
    target = int(sample['frame'])
    expected = to_model_frame(episode.rgb[target], SIZE)
    np.testing.assert_allclose(sample['target'].numpy(),
                               np.moveaxis(expected, -1, 0) / 127.5 - 1.0, atol=1e-6)
