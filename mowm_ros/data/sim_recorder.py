"""
Record the simulated robot as a rosbag2 recording (MCAP or sqlite3) through rosbags, no ROS.

The recording holds what ``sim_robot`` publishes, under its topic names and frames: colour
(rgb8) and depth (32FC1, metres, NaN beyond the far plane) images, camera_info and odometry of
the base, plus one /tf_static message with the camera mount (base <- camera optical). The robot
is ``sim_robot``'s simulation (``MazeRobot``) driving Memory Maze's revisiting exploration
route, as ``sim_robot`` does in ``explore`` mode, one frame per 0.25 s control period, stamped
in simulated time. The camera may differ from sim_robot's square one: any width x height and
vertical field of view, rendered by MuJoCo from the same camera pose; so the recording is a
domain the shipped checkpoint never saw (another maze size, aspect ratio, lens).
"""

from dataclasses import asdict, dataclass
from pathlib import Path

from mowm_ros import geometry
from mowm_ros.data import bag_messages
from mowm_ros.data.maze_env import check_fovy, CONTROL_PERIOD_NS, MAZE_SIZES
from mowm_ros.data.maze_robot import MazeRobot
from mowm_ros.extrinsics import DEFAULT_EXTRINSICS, extrinsics_matrix
from rosbags.rosbag2 import StoragePlugin, Writer
from tqdm import tqdm

TOPICS = {'rgb': '/camera/image_raw', 'depth': '/camera/depth/image_raw',
          'info': '/camera/camera_info', 'odom': '/odom', 'tf': '/tf_static'}
STORAGE = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
START_NS = 10**9        # stamp of the first frame: 1 s of simulated time


@dataclass
class SimRecordingConfig:
    maze_size: int = 9
    seed: int = 0
    steps: int = 1000                # control periods (0.25 s) after the first frame
    width: int = 64
    height: int = 64
    fovy: float = 0.0                # vertical field of view, degrees; 0: Memory Maze's (80)
    storage: str = 'mcap'            # mcap | sqlite3
    camera_frame: str = 'camera_optical_frame'
    base_frame: str = 'base_link'
    odom_frame: str = 'odom'
    extrinsics: tuple = DEFAULT_EXTRINSICS   # base <- camera optical, as sim_robot's default

    def __post_init__(self):
        if self.maze_size not in MAZE_SIZES:
            raise ValueError(f'maze_size must be one of {MAZE_SIZES}, got {self.maze_size}')
        if self.steps < 1 or not (8 <= self.width <= 1024 and 8 <= self.height <= 1024):
            raise ValueError(f'steps must be >= 1 and the camera 8-1024 pixels a side, got '
                             f'{self.steps} steps, {self.width}x{self.height}')
        if self.storage not in STORAGE:
            raise ValueError(f'storage must be one of {sorted(STORAGE)}, got {self.storage!r}')
        if self.fovy:
            check_fovy(self.fovy)        # before the writer creates anything
        extrinsics_matrix(self.extrinsics)


def render_camera(robot, config):
    """Return (rgb, depth, K) of the robot's camera at the recording's size and lens."""
    camera = robot.camera
    if config.fovy and camera.fovy != config.fovy:
        camera.set_fovy(config.fovy)     # again after a respawn builds a new environment
    return (camera.render_rgb(config.width, config.height),
            camera.render_depth(config.width, config.height),
            camera.intrinsics(config.width, config.height))


def record_sim(path, config, progress=True):
    """Drive the simulated robot and write its recording to ``path``; return a summary."""
    path = Path(path)
    if path.exists():
        raise ValueError(f'{path} exists; choose a new path for the recording')
    base_from_camera = extrinsics_matrix(config.extrinsics)
    camera_from_base = geometry.invert_pose(base_from_camera)
    names = {'rgb': 'sensor_msgs/msg/Image', 'depth': 'sensor_msgs/msg/Image',
             'info': 'sensor_msgs/msg/CameraInfo', 'odom': 'nav_msgs/msg/Odometry',
             'tf': 'tf2_msgs/msg/TFMessage'}
    robot = MazeRobot(config.maze_size, config.seed, image_size=16, depth=False)
    frame_id = config.camera_frame
    try:
        with Writer(path, version=9, storage_plugin=STORAGE[config.storage]) as writer:
            connections = {key: writer.add_connection(TOPICS[key], msgtype,
                                                      typestore=bag_messages.STORE)
                           for key, msgtype in names.items()}

            def write(key, stamp, msg):
                writer.write(connections[key], stamp,
                             bag_messages.serialize(msg, names[key]))

            write('tf', START_NS, bag_messages.tf_message(START_NS, [
                (config.base_frame, config.camera_frame, base_from_camera)]))
            for step in tqdm(range(config.steps + 1), desc='record', unit='step',
                             disable=not progress):
                frame = robot.frame if step == 0 else robot.step(robot.explore_action())
                stamp = START_NS + step * CONTROL_PERIOD_NS
                rgb, depth, K = render_camera(robot, config)
                write('rgb', stamp, bag_messages.rgb_msg(stamp, rgb, frame_id))
                write('depth', stamp, bag_messages.depth_msg(stamp, depth, frame_id))
                write('info', stamp, bag_messages.camera_info_msg(
                    stamp, K, config.width, config.height, frame_id))
                write('odom', stamp, bag_messages.odometry_msg(
                    stamp, frame.pose @ camera_from_base, config.base_frame, config.odom_frame))
        return {'path': str(path), 'frames': config.steps + 1,
                'seconds': config.steps * CONTROL_PERIOD_NS / 1e9, 'respawns': robot.respawns,
                'fovy': robot.camera.fovy, 'topics': list(TOPICS.values()), **asdict(config)}
    finally:
        robot.close()
