"""
The loop under simulated time: sim_robot publishes /clock, the world model runs on it.

The robot steps 16 times a wall second, 0.25 simulated seconds each, so simulated time runs
four times faster than the wall clock and starts near zero. Every stamp, period, rate and age
in the world model follows /clock: its clock, its predictions' stamps and its camera rate
(4 frames per simulated second) are in simulated time.
"""

from mowm_ros.nodes import conversions
from mowm_ros.nodes.sim_robot import SimRobot
from mowm_ros.nodes.world_model_node import RELIABLE_2, WorldModelNode
import pytest
from rclpy.parameter import Parameter
from ros_harness import Inbox, wait_for
from sensor_msgs.msg import Image

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SIM_TIME_LIMIT_NS = 10**12      # simulated time starts at 0; ROS wall time is ~1.8e18 ns


def test_world_model_runs_on_the_simulated_clock(ros):
    pytest.importorskip('memory_maze')
    inbox = Inbox(ros.node('listener'), [('/world_model/predicted/image', Image, RELIABLE_2)])
    robot = ros.add(SimRobot(context=ros.context, parameter_overrides=[
        Parameter('mode', value='explore'), Parameter('rate_hz', value=16.0),
        Parameter('publish_clock', value=True)]))
    node = ros.add(WorldModelNode(context=ros.context, parameter_overrides=[
        Parameter('use_sim_time', value=True), Parameter('finetune', value=False),
        Parameter('sampler_steps', value=1), Parameter('horizon', value=1),
        Parameter('prediction_period_s', value=1.0), Parameter('torch_threads', value=1),
        Parameter('extrinsics_from_tf', value=False)]))

    wait_for(lambda: len(inbox.get('/world_model/predicted/image')) >= 2, timeout=90,
             what='predictions on simulated time')
    now = node.get_clock().now().nanoseconds
    assert 0 < now < SIM_TIME_LIMIT_NS, f'the node clock is not /clock: {now}'
    for image in inbox.get('/world_model/predicted/image'):
        assert 0 < conversions.stamp_to_ns(image.header.stamp) < SIM_TIME_LIMIT_NS
    assert node.last_observed_stamp <= robot.sim_ns
    # Four frames per simulated second, whatever the wall clock does.
    wait_for(lambda: node.frames_received >= 24, timeout=90, what='six simulated seconds')
    rate = float(node.status_values()['image rate (Hz)'])
    assert 2.5 < rate < 5.5, f'camera rate {rate} Hz is not measured on the simulated clock'
