"""
The main job: the simulated robot and the world model together, and a monitor that scores them.

The robot explores a held-out maze along a route that leaves places and comes back; the world
model observes it over DDS and predicts the views ahead along the robot's velocity. The monitor
compares each predicted view with the camera frame the robot took nearest to the predicted
pose, and splits the comparisons into revisits (the robot stood within ``revisit_radius`` and
``revisit_yaw`` of that pose at least ``revisit_gap_s`` earlier) and novel views.
"""

from dataclasses import asdict, dataclass
import json
import math
from pathlib import Path
import threading
import time

from mowm_ros.data.drift import DriftConfig
from mowm_ros.extrinsics import CAMERA_MOUNT
from mowm_ros.nodes import conversions
from mowm_ros.nodes.rerun_view import open_recording, RerunView
from mowm_ros.nodes.sim_robot import SimRobot
from mowm_ros.nodes.world_model_node import WorldModelNode
from mowm_ros.planning.paths import base_yaw
from nav_msgs.msg import Odometry, Path as PathMsg
import numpy as np
from PIL import Image as PILImage
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from skimage.metrics import peak_signal_noise_ratio


# How long the summary waits for the node to catch up with the end of the route.
DRAIN_TIMEOUT_S = 60.0


@dataclass
class DemoConfig:
    out_dir: str = 'out/demo'
    seed: int = 90_003             # a maze never used in training (seeds 0..23)
    steps: int = 480               # robot control steps (4 Hz: two minutes of simulated time)
    rate_hz: float = 4.0
    horizon: int = 2
    sampler_steps: int = 4
    prediction_period_s: float = 0.5
    frame_interval_s: float = 0.5  # predicted views are this far apart (the model's spacing)
    revisit_radius: float = 0.6    # metres
    revisit_yaw: float = 0.5       # radians
    revisit_gap_s: float = 15.0
    # Memory Maze's robot covers about 0.5 m per 0.25 s step: sparser keyframes than the
    # node's defaults (made for slower robots) keep test-time finetuning in step on 2 cores.
    keyframe_min_translation: float = 1.0
    keyframe_min_rotation: float = 0.6
    live: bool = False             # run until Ctrl-C (no step limit)
    # The robot waits for the world model: it steps once the node has observed its last frame
    # and, every prediction_period_s of simulated time, predicted from it; stamps count
    # simulated time. The scores then do not depend on how fast the machine is. The node
    # predicts as each frame is observed (predict_on_frame) and the robot steps as soon as the
    # gate opens, so the run goes as fast as the machine predicts. Off in live runs (the robot
    # runs in real time, as on a real robot).
    lockstep: bool = True
    view_port: int = 0             # serve the Rerun web viewer on this port (0: only demo.rrd)
    rgb_only: bool = False         # the node ignores depth: short-term + episodic experts
    drift: bool = False            # the robot's odometry drifts (DriftConfig's nominal rates)
    # The world model trusts only memory seen within this many metres travelled (node parameter
    # trust_travel_m); None: DRIFT_TRUST_TRAVEL_M with drift, 0 (all of it) without.
    trust_travel_m: float = None
    strip_samples: int = 8


MAX_FRAMES_KEPT = 4000
# With DriftConfig's nominal rates, the memory benchmark's drift condition (8 episodes) gave
# + spatial over no memory +0.31 dB trusting 2 m, +1.17 dB 4 m, +0.98 dB 8 m, +0.82 dB 16 m,
# -1.90 dB trusting everything (docs/results.md).
DRIFT_TRUST_TRAVEL_M = 4.0
MONITOR_SENSOR_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
MONITOR_RELIABLE_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def psnr(a, b):
    return float(peak_signal_noise_ratio(a, b, data_range=255))


class DemoMonitor(Node):
    """Keeps camera frames and odometry, pairs predictions with the frames that followed."""

    def __init__(self, config, **kwargs):
        super().__init__('demo_monitor', **kwargs)
        self.config = config
        self.lock = threading.Lock()
        self.frames = {}            # stamp -> rgb uint8 (64x64)
        self.poses = []             # (stamp, x, y, yaw)
        # stamp of the predicted view -> its rgb; a later prediction for the same stamp (made
        # from the same moment, as when the robot waits for the node) replaces the earlier
        self.predictions = {}
        self.paths = {}             # stamp of the first pose -> (base pose, stamp made from)
        self.frames_seen = 0
        self.odometry_seen = 0
        self.predictions_seen = 0
        self.paths_seen = 0
        self.first_prediction = None
        # Deep queues: the monitor scores what it keeps, so a busy moment must not drop any.
        self.create_subscription(Image, 'camera/image_raw', self.on_frame, MONITOR_SENSOR_QOS)
        self.create_subscription(Odometry, 'odom', self.on_odometry, MONITOR_SENSOR_QOS)
        self.create_subscription(Image, '/world_model/predicted/image', self.on_prediction,
                                 MONITOR_RELIABLE_QOS)
        self.create_subscription(PathMsg, '/world_model/predicted/path', self.on_path,
                                 MONITOR_RELIABLE_QOS)

    def caught_up(self, robot, world_model):
        """Whether every frame, odometry, prediction and path sent so far has arrived here."""
        return (self.frames_seen >= robot.frames_published
                and self.odometry_seen >= robot.frames_published
                and self.predictions_seen >= world_model.predictions_published
                and self.paths_seen >= world_model.predictions_published)

    def on_frame(self, msg):
        with self.lock:
            self.frames[conversions.stamp_to_ns(msg.header.stamp)] = \
                conversions.image_to_rgb(msg)
            self.frames_seen += 1
            if len(self.frames) > MAX_FRAMES_KEPT:      # live runs: keep the recent past
                del self.frames[min(self.frames)]

    def on_odometry(self, msg):
        stamp, pose = conversions.odometry_to_pose(msg)
        with self.lock:
            self.poses.append((stamp, pose[0, 3], pose[1, 3], base_yaw(pose)))
            self.odometry_seen += 1

    def on_path(self, msg):
        self.paths_seen += 1
        if msg.poses:
            stamp = conversions.stamp_to_ns(msg.poses[0].header.stamp)
            # The header stamp is the moment the prediction was made from: no frame it used
            # is newer (see WorldModelNode._predict).
            made_at = conversions.stamp_to_ns(msg.header.stamp)
            with self.lock:
                self.paths[stamp] = (conversions.pose_msg_to_matrix(msg.poses[0].pose), made_at)

    def on_prediction(self, msg):
        with self.lock:
            self.predictions[conversions.stamp_to_ns(msg.header.stamp)] = \
                conversions.image_to_rgb(msg)
            self.predictions_seen += 1
            if self.first_prediction is None:
                self.first_prediction = time.monotonic()

    def is_revisit(self, stamp, poses):
        """Whether the robot stood at about the same pose ``revisit_gap_s`` or more before."""
        c = self.config
        now = [p for p in poses if p[0] == stamp]
        if not now:
            return False
        _, x, y, yaw = now[0]
        gap = int(c.revisit_gap_s * 1e9)
        for t, px, py, pyaw in poses:
            if t > stamp - gap:
                break
            turn = abs((yaw - pyaw + math.pi) % (2 * math.pi) - math.pi)
            if math.hypot(x - px, y - py) <= c.revisit_radius and turn <= c.revisit_yaw:
                return True
        return False

    def score(self, window_s=4.0, max_distance=0.2, max_turn=0.2):
        """
        Pair each prediction with the camera frame taken nearest to its predicted pose.

        The robot's real motion differs from the extrapolated one, so the truth of a
        predicted view is the frame the robot took closest to that pose (within
        ``max_distance`` metres and ``max_turn`` radians) among the frames taken after the
        moment the prediction was made from (its path's header stamp: no frame the model used
        is newer), up to ``window_s`` after the predicted time; the baseline guess is the
        newest frame taken at or before that moment.
        """
        with self.lock:
            frames, poses = dict(self.frames), sorted(self.poses)
            predictions, paths = sorted(self.predictions.items()), dict(self.paths)
        kept = [p for p in poses if p[0] in frames]
        times = np.array([p[0] for p in kept], dtype=np.int64)
        pose_array = np.array([p[1:] for p in kept], dtype=np.float64).reshape(-1, 3)
        comparisons = []
        for stamp, predicted in predictions:
            if stamp not in paths or not len(pose_array):
                continue
            target, made_at = paths[stamp]
            x, y, yaw = target[0, 3], target[1, 3], base_yaw(target)
            near = (times > made_at) & (times <= stamp + int(window_s * 1e9))
            distance = np.hypot(pose_array[:, 0] - x, pose_array[:, 1] - y)
            turn = np.abs((pose_array[:, 2] - yaw + np.pi) % (2 * np.pi) - np.pi)
            ok = near & (distance <= max_distance) & (turn <= max_turn)
            if not ok.any():
                continue
            best = np.flatnonzero(ok)[np.argmin((distance + 0.5 * turn)[ok])]
            seen = times[times <= made_at]
            if not len(seen):
                continue
            truth_stamp, last_stamp = int(times[best]), int(seen[-1])
            truth, last = frames[truth_stamp], frames[last_stamp]
            comparisons.append({
                'stamp': stamp, 'revisit': self.is_revisit(truth_stamp, poses),
                'psnr': psnr(truth, predicted), 'psnr_last_frame': psnr(truth, last),
                'pose_error_m': float(distance[best]), 'truth': truth,
                'predicted': predicted})
        return comparisons


def summarise(comparisons, monitor, robot, world_model, wall_s):
    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    groups = {'all': comparisons, 'revisit': [c for c in comparisons if c['revisit']],
              'novel': [c for c in comparisons if not c['revisit']]}
    span = (time.monotonic() - monitor.first_prediction) if monitor.first_prediction else 0
    return {
        'wall_seconds': wall_s,
        'frames_observed': world_model.model.frames_observed,
        'predictions_published': world_model.predictions_published,
        'prediction_rate_hz': world_model.predictions_published / span if span else 0.0,
        'prediction_latency_ms_per_frame': float(np.median(world_model.latency_ms))
        if world_model.latency_ms else None,
        'dropped_prediction_requests': world_model.predictor.dropped,
        'experts': list(world_model.model.config.experts),
        'memory_points': len(world_model.model.spatial),
        'keyframes': len(world_model.model.episodic),
        'adapter_version': world_model.model.finetuner.latest().version,
        'rejected_inputs': dict(world_model.rejected),
        'monitor_received': {'frames': monitor.frames_seen, 'odometry': monitor.odometry_seen,
                             'predictions': monitor.predictions_seen,
                             'paths': monitor.paths_seen},
        'robot_gate_polls_shut': robot.gated_ticks, 'robot_gate_timeouts': robot.gate_timeouts,
        **{f'{name}_predictions_scored': len(group) for name, group in groups.items()},
        **{f'{name}_psnr': mean(c['psnr'] for c in group) for name, group in groups.items()},
        **{f'{name}_psnr_last_frame_baseline': mean(c['psnr_last_frame'] for c in group)
           for name, group in groups.items()},
        'mean_predicted_pose_error_m': mean(c['pose_error_m'] for c in comparisons),
    }


def write_strip(comparisons, path, count):
    revisits = [c for c in comparisons if c['revisit']] or comparisons
    if not revisits:
        return None
    chosen = [revisits[int(i)] for i in np.linspace(0, len(revisits) - 1,
                                                    min(count, len(revisits)))]
    size = chosen[0]['truth'].shape[0]
    strip = np.full((2 * size + 2, len(chosen) * (size + 2), 3), 255, np.uint8)
    for i, c in enumerate(chosen):
        x = i * (size + 2)
        strip[:size, x:x + size] = c['truth']
        strip[size + 2:, x:x + size] = c['predicted']
    PILImage.fromarray(strip).resize((strip.shape[1] * 3, strip.shape[0] * 3),
                                     PILImage.NEAREST).save(path)
    return path


def write_cloud(world_model, path):
    if len(world_model.model.spatial) == 0:      # nothing to write (an RGB-only camera)
        return None
    import open3d as o3d  # lazy: slow to import, only for this export
    o3d.t.io.write_point_cloud(str(path), world_model.model.spatial.to_open3d())
    return path


def run_demo(config, log=print):
    """Run the robot, the world model and the monitor; write out_dir; return the summary."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recording = open_recording(out / 'demo.rrd', config.view_port, log)   # None: no rerun
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    lockstep = config.lockstep and not config.live
    world_model = None

    def world_model_caught_up():
        return (node_caught_up(robot, world_model, config.prediction_period_s, len(nodes) - 1)
                and monitor.caught_up(robot, world_model))

    robot = SimRobot(
        context=context, step_gate=world_model_caught_up if lockstep else None,
        parameter_overrides=[
            Parameter('mode', value='explore'), Parameter('seed', value=config.seed),
            Parameter('rate_hz', value=config.rate_hz),
            Parameter('max_steps', value=0 if config.live else config.steps),
            Parameter('camera_extrinsics', value=list(CAMERA_MOUNT)),
            *drift_parameters(config)]).start()
    world_model = WorldModelNode(context=context, parameter_overrides=[
        Parameter('horizon', value=config.horizon),
        Parameter('sampler_steps', value=config.sampler_steps),
        Parameter('prediction_period_s', value=config.prediction_period_s),
        Parameter('predict_on_frame', value=lockstep),
        Parameter('frame_interval_s', value=config.frame_interval_s),
        Parameter('snapshot_dir', value=str(out / 'memory')),
        Parameter('snapshot_period_s', value=0.0),
        Parameter('keyframe_min_translation', value=config.keyframe_min_translation),
        Parameter('keyframe_min_rotation', value=config.keyframe_min_rotation),
        Parameter('use_depth', value=not config.rgb_only),
        Parameter('trust_travel_m', value=trusted_travel(config)),
        Parameter('camera_extrinsics', value=list(CAMERA_MOUNT))]).start()
    monitor = DemoMonitor(config, context=context)
    view = recording and RerunView(recording, context=context, parameter_overrides=[
        Parameter('camera_extrinsics', value=list(CAMERA_MOUNT))])
    nodes = [robot, world_model, monitor] + ([view] if view else [])
    for node in nodes:
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    start = time.monotonic()
    spinner.start()
    log(f'demo: exploring maze seed {config.seed} for '
        f'{"ever (Ctrl-C stops)" if config.live else f"{config.steps} steps"} at '
        f'{config.rate_hz} Hz' + (' of simulated time, in step with the world model'
                                  if lockstep else '') + f'; writing {out}/')
    try:
        last_report = start
        while config.live or not robot.finished:
            time.sleep(0.5)
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                log(f'  {monitor.frames_seen} frames, {world_model.predictions_published} '
                    f'predictions, {len(world_model.model.spatial)} memory points, '
                    f'{len(world_model.model.episodic)} keyframes')
                if view and config.live:
                    view.log_scores(monitor.score())
        if not config.live and not wait_for_the_node(robot, world_model, DRAIN_TIMEOUT_S):
            log(f'demo: the world model had not observed the last frame and predicted from it '
                f'{DRAIN_TIMEOUT_S:g} s after the route ended; summarising what it did')
    except KeyboardInterrupt:
        pass
    finally:
        wall = time.monotonic() - start
        executor.shutdown(timeout_sec=5.0)
        spinner.join(timeout=5.0)
        comparisons = monitor.score()
        if view:
            view.log_scores(comparisons)
        summary = summarise(comparisons, monitor, robot, world_model, wall)
        summary['config'] = dict(asdict(config), trust_travel_m=world_model.get_parameter(
            'trust_travel_m').value)
        write_strip(comparisons, out / 'revisits.png', config.strip_samples)
        write_cloud(world_model, out / 'memory_cloud.ply')
        for node in reversed(nodes):
            close = getattr(node, 'close', None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown(context=context)
    (out / 'metrics.json').write_text(json.dumps(summary, indent=2))
    return summary


def trusted_travel(config):
    """Return the metres of travel the world model trusts its memory over (0: all of it)."""
    if config.trust_travel_m is not None:
        return float(config.trust_travel_m)
    return DRIFT_TRUST_TRAVEL_M if config.drift else 0.0


def drift_parameters(config):
    """Return the sim robot's odometry drift parameters (DriftConfig's nominal rates, or 0)."""
    nominal = DriftConfig(seed=config.seed) if config.drift else DriftConfig(0.0, 0.0)
    return [Parameter('odom_drift_yaw_per_metre', value=nominal.yaw_per_metre),
            Parameter('odom_drift_scale', value=nominal.scale),
            Parameter('odom_drift_seed', value=nominal.seed)]


def node_caught_up(robot, world_model, prediction_period_s, camera_subscribers):
    """
    Whether the world model has caught up with the robot (the demo's step gate).

    Before the first frame: the robot's camera and odometry reach ``camera_subscribers``
    nodes and the world model sees the robot's camera. Then: the node has received every
    frame the robot published, observed it (or rejected it: the first one comes before any
    camera_info) and, once it has the context to predict, made a prediction less than
    ``prediction_period_s`` (of stamps: simulated time) before the newest frame.
    """
    if world_model is None:
        return False
    if robot.previous is None:
        return (robot.rgb_pub.get_subscription_count() >= camera_subscribers
                and robot.odom_pub.get_subscription_count() >= 1
                and world_model.count_publishers('camera/image_raw') >= 1)
    newest = robot.previous[1]
    if world_model.frames_received < robot.frames_published or world_model.parked \
            or world_model.observer.pending or world_model.observer.busy:
        return False
    if not world_model.model.context_ready:
        return True
    made_at = world_model.last_prediction_made_at
    return made_at is not None and newest - made_at < int(prediction_period_s * 1e9)


def wait_for_the_node(robot, world_model, timeout_s):
    """
    Wait, after the route, for the node to observe the last frame and predict once more.

    Return whether it did within ``timeout_s``. The robot runs in real time and the node as
    fast as the machine lets it, so on a busy machine it is still working when the route ends:
    the summary waits for it, not for a time.
    """
    last_stamp = robot.previous[1] if robot.previous is not None else None
    published = world_model.predictions_published
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        observed = last_stamp is None or (world_model.last_observed_stamp or 0) >= last_stamp
        if observed and world_model.predictions_published > published:
            return world_model.observer.wait_idle(timeout=max(0.0, deadline - time.monotonic()))
        time.sleep(0.05)
    return False


def format_summary(summary):
    def db(value):
        return 'n/a' if value is None else f'{value:.1f} dB'

    return '\n'.join([
        f"demo finished in {summary['wall_seconds']:.0f} s: {summary['frames_observed']} frames "
        f"observed, {summary['predictions_published']} predictions "
        f"({summary['prediction_rate_hz']:.2f} Hz, "
        f"{summary['prediction_latency_ms_per_frame'] or 0:.0f} ms per predicted frame)",
        f"memory: {summary['memory_points']} points, {summary['keyframes']} keyframes, "
        f"adapters v{summary['adapter_version']}",
        'PSNR of predicted views against the camera at that pose: revisits '
        f"{db(summary['revisit_psnr'])} ({summary['revisit_predictions_scored']} views), "
        f"novel {db(summary['novel_psnr'])} ({summary['novel_predictions_scored']}), all "
        f"{db(summary['all_psnr'])}; the previous camera frame as a guess: revisits "
        f"{db(summary['revisit_psnr_last_frame_baseline'])}, all "
        f"{db(summary['all_psnr_last_frame_baseline'])}",
    ])
