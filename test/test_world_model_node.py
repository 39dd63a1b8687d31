"""The world_model node over real DDS, fed a held-out Memory Maze episode by the episode player."""

import subprocess
import sys

from diagnostic_msgs.msg import DiagnosticArray
from mowm_ros.data.episode import save_episode
from mowm_ros.data.maze_env import generate_episode, GenerationConfig
from mowm_ros.nodes import conversions
from mowm_ros.nodes.episode_player import EpisodePlayer
from mowm_ros.nodes.world_model_node import LATCHED, WorldModelNode
from mowm_ros.world_model import WorldModel, WorldModelConfig
from nav_msgs.msg import Odometry, Path
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from ros_harness import Inbox, publish_until, wait_for
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Float32
from std_srvs.srv import Trigger

pytestmark = [pytest.mark.ros, pytest.mark.slow]

HELD_OUT_SEED = 90_002


@pytest.fixture(scope='module')
def episode_path(tmp_path_factory):
    episode, _ = generate_episode(HELD_OUT_SEED, GenerationConfig(steps=60))
    path = tmp_path_factory.mktemp('episode') / 'held_out.npz'
    save_episode(path, episode)
    return path


def world_model_node(ros, snapshot_dir, **overrides):
    values = {'sampler_steps': 1, 'horizon': 2, 'prediction_period_s': 0.4, 'torch_threads': 1,
              'memory_period_s': 0.5, 'snapshot_dir': str(snapshot_dir),
              'snapshot_period_s': 0.0, **overrides}
    return ros.add(WorldModelNode(context=ros.context, parameter_overrides=[
        Parameter(name, value=value) for name, value in values.items()]))


def call(ros, node, name, timeout=20.0):
    client = node.create_client(Trigger, name)
    assert client.wait_for_service(timeout_sec=10.0), f'service {name} not available'
    future = client.call_async(Trigger.Request())
    assert wait_for(future.done, timeout=timeout), f'service {name} did not answer'
    return future.result()


OUTPUTS = [('/world_model/predicted/image', Image, 2),
           ('/world_model/predicted/camera_info', CameraInfo, 2),
           ('/world_model/predicted/mosaic', Image, 2),
           ('/world_model/predicted/path', Path, 2),
           ('/world_model/predicted/memory_agreement', Float32, 2),
           ('/world_model/memory/cloud', PointCloud2, LATCHED),
           ('/diagnostics', DiagnosticArray, 10)]


def test_node_predicts_and_remembers_over_dds(ros, tmp_path, episode_path):
    inbox = Inbox(ros.node('listener'), OUTPUTS)
    node = world_model_node(ros, tmp_path / 'memory')
    ros.add(EpisodePlayer(context=ros.context, parameter_overrides=[
        Parameter('episode', value=str(episode_path)), Parameter('rate_hz', value=8.0)]))

    assert wait_for(lambda: len(inbox.get('/world_model/predicted/image')) >= 2, timeout=60)
    image = inbox.get('/world_model/predicted/image')[-1]
    assert (image.width, image.height, image.encoding) == (64, 64, 'rgb8')
    assert image.header.frame_id == 'camera_optical_frame'
    rgb = conversions.image_to_rgb(image)
    assert rgb.std() > 1.0, 'the prediction is a flat image'
    stamp = conversions.stamp_to_ns(image.header.stamp)
    assert stamp > node.last_observed_stamp - 10**10
    assert wait_for(lambda: inbox.get('/world_model/predicted/camera_info'), timeout=30)
    info = inbox.get('/world_model/predicted/camera_info')[-1]
    K, size = conversions.camera_info_to_intrinsics(info)
    assert size == (64, 64) and info.header.frame_id == 'camera_optical_frame'
    assert wait_for(lambda: inbox.get('/world_model/predicted/mosaic'), timeout=30)
    assert inbox.get('/world_model/predicted/mosaic')[-1].width == 2 * 64 + 2
    assert wait_for(lambda: inbox.get('/world_model/predicted/path'), timeout=30)
    path = inbox.get('/world_model/predicted/path')[-1]
    assert len(path.poses) == 2 and path.header.frame_id == 'odom'
    # The predicted views are of places the memory has seen: they agree with its render.
    assert wait_for(lambda: any(np.isfinite(m.data) for m in
                                inbox.get('/world_model/predicted/memory_agreement')), timeout=30)
    scores = [m.data for m in inbox.get('/world_model/predicted/memory_agreement')
              if np.isfinite(m.data)]
    assert all(0.5 < score <= 1.0 for score in scores), scores

    # The memory cloud grows as frames arrive.
    assert wait_for(lambda: len({m.width for m in inbox.get('/world_model/memory/cloud')}) >= 3,
                    timeout=30)
    widths = [m.width for m in inbox.get('/world_model/memory/cloud')]
    assert max(widths) > widths[0]
    assert wait_for(lambda: any(
        s.name == 'mowm_ros: world_model' for m in inbox.get('/diagnostics') for s in m.status),
        timeout=30)

    helper = ros.node('caller')
    saved = call(ros, helper, '/world_model/save_memory')
    assert saved.success and 'memory' in saved.message
    reset = call(ros, helper, '/world_model/reset_memory')
    assert reset.success
    assert wait_for(lambda: inbox.get('/world_model/memory/cloud')[-1].width < max(widths),
                    timeout=30)


class RecordingModel(WorldModel):
    """The real world model; it notes the newest frame each rollout used, by the image made."""

    def __init__(self, config):
        super().__init__(config)
        self.used = {}        # first predicted image (bytes) -> stamp of the newest frame used

    def imagine(self, *args, **kwargs):
        result = super().imagine(*args, **kwargs)
        self.used[result.images[0, 0].tobytes()] = result.context_stamp
        return result


def test_no_prediction_is_stamped_before_the_newest_frame_it_used(ros, tmp_path, episode_path):
    model = RecordingModel(WorldModelConfig(sampler_steps=4, finetune_on_observe=False))
    inbox = Inbox(ros.node('listener'), [('/world_model/predicted/image', Image, 10),
                                         ('/world_model/predicted/path', Path, 10)])
    # Requests come faster than rollouts finish, so each waits while frames keep arriving;
    # the predicted views are close in time (0.05 s), so a stamp taken when the request was
    # made, not when the rollout started, falls before the frames the rollout used.
    interval = 50_000_000
    node = ros.add(WorldModelNode(model=model, context=ros.context, parameter_overrides=[
        Parameter('horizon', value=2), Parameter('frame_interval_s', value=interval / 1e9),
        Parameter('prediction_period_s', value=0.05)]))
    ros.add(EpisodePlayer(context=ros.context, parameter_overrides=[
        Parameter('episode', value=str(episode_path)), Parameter('rate_hz', value=20.0)]))

    def matched():
        paths = {conversions.stamp_to_ns(p.poses[0].header.stamp): p
                 for p in inbox.get('/world_model/predicted/path')}
        return [(image, paths[conversions.stamp_to_ns(image.header.stamp)])
                for image in inbox.get('/world_model/predicted/image')
                if conversions.stamp_to_ns(image.header.stamp) in paths]

    assert wait_for(lambda: len(matched()) >= 6, timeout=60), \
        f'{len(inbox.get("/world_model/predicted/image"))} predictions received'
    used = []
    for image, path in matched():
        newest = model.used[conversions.image_to_rgb(image).tobytes()]
        made_at = conversions.stamp_to_ns(path.header.stamp)
        stamps = [conversions.stamp_to_ns(pose.header.stamp) for pose in path.poses]
        assert made_at >= newest, (made_at, newest)
        assert stamps == [made_at + interval, made_at + 2 * interval]
        assert conversions.stamp_to_ns(image.header.stamp) > newest
        used.append(newest)
    assert len(set(used)) >= 3, 'the predictions did not follow new frames'
    assert node.predictor.dropped > 0, 'no request waited behind a rollout: the test shows little'


@pytest.mark.parametrize('on_frame', [True, False])
def test_predict_on_frame_predicts_from_each_new_frame_without_the_timer(ros, tmp_path,
                                                                         episode_path, on_frame):
    inbox = Inbox(ros.node('listener'), [('/world_model/predicted/path', Path, 10)])
    # The timer would first ask after an hour: every prediction here comes from the frames.
    node = world_model_node(ros, tmp_path / 'memory', prediction_period_s=3600.0,
                            predict_on_frame=on_frame, finetune=False)
    ros.add(EpisodePlayer(context=ros.context, parameter_overrides=[
        Parameter('episode', value=str(episode_path)), Parameter('rate_hz', value=8.0)]))
    if not on_frame:
        assert wait_for(lambda: node.model.frames_observed >= 12, timeout=60), \
            f'only {node.model.frames_observed} frames observed'
        assert node.predictions_published == 0, 'a prediction came without a request'
        return

    def made_at():
        return {conversions.stamp_to_ns(p.header.stamp)
                for p in inbox.get('/world_model/predicted/path')}

    assert wait_for(lambda: len(made_at()) >= 4, timeout=60), \
        f'{len(made_at())} predictions from distinct frames received'
    assert node.predictions_published >= 4


def test_rgb_only_node_runs_short_term_and_episodic_and_predicts(ros, tmp_path, episode_path):
    """use_depth: false (an RGB-only camera): no spatial memory, the episodic expert learns."""
    inbox = Inbox(ros.node('listener'), OUTPUTS[:1])
    node = world_model_node(ros, tmp_path / 'memory', use_depth=False)
    assert node.model.config.experts == ('short_term', 'episodic')
    ros.add(EpisodePlayer(context=ros.context, parameter_overrides=[
        Parameter('episode', value=str(episode_path)), Parameter('rate_hz', value=8.0)]))
    assert wait_for(lambda: len(inbox.get('/world_model/predicted/image')) >= 2, timeout=60), \
        'no predictions from the RGB-only node'
    rgb = conversions.image_to_rgb(inbox.get('/world_model/predicted/image')[-1])
    assert rgb.std() > 1.0, 'the prediction is a flat image'
    assert wait_for(lambda: node.model.finetuner.steps_done >= 1, timeout=60), \
        'the episodic adapters were never finetuned'
    assert len(node.model.episodic) >= 1
    assert len(node.model.spatial) == 0, 'depth was fused although use_depth is false'
    # The diagnostics report what finetuning cost (issue 14, item 3).
    values = node.status_values()
    assert int(values['finetuning steps']) >= 1 and float(values['finetuning CPU-seconds']) > 0


def test_restarted_node_restores_its_memory(ros, tmp_path, episode_path):
    from mowm_ros.data.episode import load_episode
    from mowm_ros.world_model import Frame
    snapshot = tmp_path / 'memory'
    first = WorldModelNode(context=ros.context, parameter_overrides=[
        Parameter('snapshot_dir', value=str(snapshot)), Parameter('finetune', value=False)])
    first.start()
    episode = load_episode(episode_path)
    for i in range(0, 30, 3):
        first.model.observe(Frame(rgb=episode.rgb[i], depth=episode.depth[i],
                                  pose=episode.pose[i], K=episode.K,
                                  stamp=int(episode.stamp[i])))
    points, keyframes = len(first.model.spatial), len(first.model.episodic)
    assert points > 0 and keyframes > 0
    first.close()                  # the shutdown transition saves
    first.destroy_node()
    second = ros.add(WorldModelNode(context=ros.context, parameter_overrides=[
        Parameter('snapshot_dir', value=str(snapshot)), Parameter('finetune', value=False)]))
    assert len(second.model.spatial) == points
    assert len(second.model.episodic) == keyframes


def image_message(rgb, stamp, frame='camera_optical_frame', encoding='rgb8'):
    return conversions.rgb_to_image(rgb, frame, stamp, encoding)


def test_bad_input_is_rejected_and_the_node_keeps_running(ros, tmp_path, episode_path):
    from mowm_ros.data.episode import load_episode
    episode = load_episode(episode_path)
    node = world_model_node(ros, tmp_path / 'memory', use_depth=False,
                            prediction_period_s=0.3)
    source = ros.node('source')
    publishers = {name: source.create_publisher(kind, topic, qos_profile_sensor_data)
                  for name, kind, topic in (('image', Image, 'camera/image_raw'),
                                            ('info', CameraInfo, 'camera/camera_info'),
                                            ('odom', Odometry, 'odom'))}
    assert wait_for(lambda: all(p.get_subscription_count() for p in publishers.values()))
    base = episode.pose[0] @ np.linalg.inv(node.base_from_camera)

    def rejected(reason):
        return node.rejected.get(reason, 0)

    def send(kind, msg, until, what):
        """Publish until the node shows it got ``msg``: sensor-data QoS may lose a message."""
        publish_until(lambda: publishers[kind].publish(msg), until, what)

    def send_rejected(kind, msg, reason):
        count = rejected(reason)
        send(kind, msg, lambda: rejected(reason) > count, f'a {kind} rejected for {reason}')

    def odometry_at(stamp):
        latest = node.odometry.latest()
        return latest is not None and latest[0] == stamp

    t0 = 10**18
    # An image before any camera_info.
    send('odom', conversions.pose_to_odometry(base, t0), lambda: odometry_at(t0), 'odometry')
    send_rejected('image', image_message(episode.rgb[0], t0), 'camera_info')
    # Unsupported encoding, data shorter than height * step, zero size.
    bad = image_message(episode.rgb[0], t0)
    bad.encoding = 'yuv422'
    short = image_message(episode.rgb[0], t0)
    short.data = bytes(short.data[:100])
    empty = image_message(episode.rgb[0], t0)
    empty.height = 0
    for msg in (bad, short, empty):
        send_rejected('image', msg, 'image')
    # Camera info with zero size or NaN intrinsics.
    info = conversions.intrinsics_to_camera_info(episode.K, (64, 64), 'camera_optical_frame', t0)
    info.width = 0
    nan_info = conversions.intrinsics_to_camera_info(episode.K, (64, 64), 'camera', t0)
    nan_info.k[0] = float('nan')
    for msg in (info, nan_info):
        send_rejected('info', msg, 'camera_info')
    # NaN and infinite odometry, and odometry going back in time.
    nan_odom = conversions.pose_to_odometry(base, t0 + 1)
    nan_odom.pose.pose.position.x = float('nan')
    inf_twist = conversions.pose_to_odometry(base, t0 + 2, linear=(float('inf'), 0, 0))
    for msg in (nan_odom, inf_twist, conversions.pose_to_odometry(base, t0 - 10**9)):
        send_rejected('odom', msg, 'odometry')

    # Good input now: every good frame is observed and predictions come.
    good_info = conversions.intrinsics_to_camera_info(episode.K, (64, 64),
                                                      'camera_optical_frame', t0)
    send('info', good_info, lambda: node.camera is not None, 'the good camera_info')
    stamps = []
    for i in range(8):
        stamp = t0 + (i + 1) * 250_000_000
        pose = episode.pose[i] @ np.linalg.inv(node.base_from_camera)
        send('odom', conversions.pose_to_odometry(pose, stamp), lambda: odometry_at(stamp),
             f'odometry at {stamp}')
        send('image', image_message(episode.rgb[i], stamp),
             lambda: node.last_observed_stamp == stamp, f'the image at {stamp} to be observed')
        stamps.append(stamp)
    assert node.observer.wait_idle(timeout=30)
    assert node.model.frames_observed == 8, node.rejected
    # A stamp going backwards is rejected; the memory keeps what it had.
    observed = node.model.frames_observed
    send_rejected('image', image_message(episode.rgb[0], stamps[2]), 'stamp')
    assert node.observer.wait_idle(timeout=30)
    assert node.model.frames_observed == observed
    assert wait_for(lambda: node.predictions_published >= 1, timeout=30)
    values = node.status_values()
    assert values['rejected image'] >= 3 and values['rejected odometry'] >= 3


def run_node_process(ros, *parameters):
    command = [sys.executable, '-m', 'mowm_ros.nodes.world_model_node', '--ros-args']
    for parameter in parameters:
        command += ['-p', parameter]
    return subprocess.run(command, env=ros.subprocess_env(), capture_output=True, text=True,
                          timeout=120)


def test_missing_checkpoint_refuses_to_start_naming_the_file(ros, tmp_path):
    result = run_node_process(ros, f'checkpoint:={tmp_path / "nowhere"}')
    assert result.returncode == 1
    assert str(tmp_path / 'nowhere') in result.stderr and 'not found' in result.stderr


def test_mismatched_checkpoint_refuses_to_start_naming_the_difference(ros, tmp_path):
    import json
    import shutil
    from mowm_ros.model import checkpoint
    broken = tmp_path / 'broken'
    shutil.copytree(checkpoint.default_checkpoint_dir(), broken)
    config = json.loads((broken / 'config.json').read_text())
    config['denoiser']['channels'] = [32, 48, 64]
    (broken / 'config.json').write_text(json.dumps(config))
    result = run_node_process(ros, f'checkpoint:={broken}')
    assert result.returncode == 1
    assert str(broken / 'model.safetensors') in result.stderr, result.stderr
    assert 'do not match' in result.stderr and 'the model expects' in result.stderr
