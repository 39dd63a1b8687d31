"""
The world_model node's lifecycle over real DDS, driven through lifecycle_msgs ChangeState/GetState.

A client node plays the lifecycle manager; an episode player feeds camera and odometry the
whole time. Checked: no prediction before activate, none after deactivate (input arriving
meanwhile is ignored and counted, the memory kept), predictions again after re-activating with
the memory intact, cleanup releasing the model, shutdown saving the snapshot, and a configure
that fails (missing checkpoint) returning FAILURE and succeeding once the checkpoint is there.
"""

import gc
import shutil
import weakref

from mowm_ros.data.episode import save_episode
from mowm_ros.data.maze_env import generate_episode, GenerationConfig
from mowm_ros.memory.store import MemoryStore
from mowm_ros.model import checkpoint
from mowm_ros.nodes.episode_player import EpisodePlayer
from mowm_ros.nodes.world_model_node import WorldModelNode
import pytest
from rclpy.parameter import Parameter
from ros_harness import Inbox, LifecycleClient, wait_for
from sensor_msgs.msg import Image

pytestmark = [pytest.mark.ros, pytest.mark.slow]

PREDICTED = '/world_model/predicted/image'


@pytest.fixture(scope='module')
def episode_path(tmp_path_factory):
    episode, _ = generate_episode(90_002, GenerationConfig(steps=60))
    path = tmp_path_factory.mktemp('episode') / 'held_out.npz'
    save_episode(path, episode)
    return path


def managed_world_model(ros, **overrides):
    values = {'sampler_steps': 1, 'horizon': 1, 'prediction_period_s': 0.3, 'torch_threads': 1,
              'finetune': False, 'extrinsics_from_tf': False, 'snapshot_period_s': 0.0,
              **overrides}
    return ros.add(WorldModelNode(context=ros.context, parameter_overrides=[
        Parameter(name, value=value) for name, value in values.items()]), start=False)


def test_transitions_gate_predictions_and_keep_then_release_the_memory(ros, tmp_path,
                                                                       episode_path):
    node = managed_world_model(ros, snapshot_dir=str(tmp_path / 'memory'))
    inbox = Inbox(ros.node('listener'), [(PREDICTED, Image, 10)])
    manager = LifecycleClient(ros.node('manager'), '/world_model')
    assert manager.state() == 'unconfigured' and node.model is None
    ros.add(EpisodePlayer(context=ros.context, parameter_overrides=[
        Parameter('episode', value=str(episode_path)), Parameter('rate_hz', value=8.0),
        Parameter('loop', value=True)]))

    # Configured, not active: input is ignored (counted), nothing is predicted.
    assert manager.change('configure') and manager.state() == 'inactive'
    assert node.model is not None
    wait_for(lambda: node.inputs_ignored >= 8, what='input ignored while inactive')
    assert node.model.frames_observed == 0 and inbox.get(PREDICTED) == []

    assert manager.change('activate') and manager.state() == 'active'
    wait_for(lambda: len(inbox.get(PREDICTED)) >= 2, timeout=60, what='predictions once active')

    assert manager.change('deactivate') and manager.state() == 'inactive'
    predicted, ignored = len(inbox.get(PREDICTED)), node.inputs_ignored
    kept = (node.model.frames_observed, len(node.model.spatial), len(node.model.episodic))
    assert kept[0] > 0 and kept[1] > 0
    # A second of input (more than three prediction periods) arrives and is ignored.
    wait_for(lambda: node.inputs_ignored >= ignored + 16, what='input ignored after deactivate')
    assert len(inbox.get(PREDICTED)) == predicted, 'a prediction was published while inactive'
    assert (node.model.frames_observed, len(node.model.spatial),
            len(node.model.episodic)) == kept, 'the memory changed while inactive'

    assert manager.change('activate')
    wait_for(lambda: len(inbox.get(PREDICTED)) >= predicted + 2, timeout=60,
             what='predictions after re-activating')
    assert node.model.frames_observed > kept[0] and len(node.model.spatial) >= kept[1]

    # Cleanup releases the model and its memory.
    model = weakref.ref(node.model)
    assert manager.change('deactivate') and manager.change('cleanup')
    assert manager.state() == 'unconfigured' and node.model is None
    gc.collect()
    assert model() is None, 'the model outlived cleanup'
    # Configure again, then shut down: the snapshot is written.
    assert manager.change('configure') and manager.state() == 'inactive'
    model = weakref.ref(node.model)
    assert manager.change('shutdown') and manager.state() == 'finalized'
    gc.collect()
    assert model() is None, 'the model is still referenced after shutdown'
    assert MemoryStore(tmp_path / 'memory').load() is not None, 'no snapshot at shutdown'


def test_failed_configure_returns_failure_and_can_be_retried(ros, tmp_path):
    missing = tmp_path / 'checkpoint'
    node = managed_world_model(ros, checkpoint=str(missing))
    manager = LifecycleClient(ros.node('manager'), '/world_model')
    assert not manager.change('configure'), 'configure succeeded without a checkpoint'
    assert manager.state() == 'unconfigured' and node.model is None
    assert str(missing) in node.failure and 'not found' in node.failure, node.failure
    shutil.copytree(checkpoint.default_checkpoint_dir(), missing)
    assert manager.change('configure') and manager.state() == 'inactive', node.failure
    assert manager.change('activate') and manager.state() == 'active'
