"""
The world_model node's memory: published for viewing (cloud, keyframes, costmap) and persisted.

The cloud and costmap are latched; snapshots go to ``snapshot_dir`` (never outside it) on
``~/save_memory``, every ``snapshot_period_s`` and at shutdown; ``~/reset_memory`` clears it.
"""

from geometry_msgs.msg import Point
from mowm_ros.geometry import wrap_angle
from mowm_ros.memory.store import SnapshotError
from mowm_ros.nodes import conversions
from mowm_ros.planning.paths import base_yaw
from nav_msgs.msg import OccupancyGrid
import numpy as np
from visualization_msgs.msg import Marker, MarkerArray

LOG_THROTTLE_S = 5.0


class MemoryMixin:
    """Publishing, resetting and saving the memory; the node provides model and publishers."""

    def _publish_memory(self):
        stamp = self.get_clock().now().nanoseconds
        frame = self.params['memory_frame']
        points, colours = self.model.spatial.points_and_colors()
        limit = int(self.params['cloud_max_points'])
        if len(points) > limit > 0:
            keep = np.linspace(0, len(points) - 1, limit).astype(np.int64)
            points, colours = points[keep], colours[keep]
        self.cloud_pub.publish(conversions.points_to_cloud(points, colours, frame, stamp))
        self.keyframes_pub.publish(self._keyframe_markers(frame, stamp))
        grid = self.model.occupancy_grid(resolution=self.params['costmap_resolution'])
        self.costmap_pub.publish(self._occupancy_message(grid, frame, stamp))

    def _keyframe_markers(self, frame, stamp):
        poses = self.model.episodic.snapshot().pose
        marker = Marker(header=conversions.make_header(frame, stamp), ns='keyframes', id=0,
                        type=Marker.LINE_LIST, action=Marker.ADD)
        marker.scale.x = 0.03
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = 1.0, 0.6, 0.0, 1.0
        marker.pose.orientation.w = 1.0
        for pose in poses:
            origin, forward = pose[:3, 3], pose[:3, 3] + 0.3 * pose[:3, 2]
            marker.points.extend([Point(x=float(origin[0]), y=float(origin[1]),
                                        z=float(origin[2])),
                                  Point(x=float(forward[0]), y=float(forward[1]),
                                        z=float(forward[2]))])
        clear = Marker(header=marker.header, ns='keyframes', action=Marker.DELETEALL)
        return MarkerArray(markers=[clear, marker] if len(poses) else [clear])

    @staticmethod
    def _occupancy_message(grid, frame, stamp):
        msg = OccupancyGrid(header=conversions.make_header(frame, stamp))
        msg.info.resolution = float(grid.resolution)
        msg.info.width, msg.info.height = int(grid.width), int(grid.height)
        msg.info.origin.position.x = float(grid.origin_x)
        msg.info.origin.position.y = float(grid.origin_y)
        msg.info.origin.orientation.w = 1.0
        msg.data = grid.data.astype(np.int8).tolist()
        return msg

    def _reset_memory(self, request, response):
        self.observer.wait_idle(timeout=5.0)
        self._end_goal('cancelled')          # a plan in flight is then discarded
        self.model.reset()
        self.odometry.clear()
        self.last_observed_stamp = None
        response.success, response.message = True, 'memory cleared'
        self._publish_memory()
        return response

    def _save_memory(self, request, response):
        if not self.snapshot_dir:
            response.success = False
            response.message = 'parameter snapshot_dir is empty: nowhere to save'
            return response
        try:
            path = self.save_snapshot()
        except (OSError, SnapshotError, ValueError) as exc:
            response.success, response.message = False, f'save failed: {exc}'
            return response
        response.success, response.message = True, f'saved {path}'
        return response

    def save_snapshot(self):
        """Save the memory with its frame and the robot's pose in it (where it left off)."""
        self.observer.wait_idle(timeout=5.0)
        latest = self.odometry.latest() if self.odometry is not None else None
        anchor = latest[1] if latest is not None else self.restored_anchor
        meta = {'memory_frame': self.params['memory_frame'],
                'robot_pose': None if anchor is None else np.asarray(anchor).tolist()}
        return self.model.save(self.snapshot_dir, extra_meta=meta)

    def restore_snapshot(self):
        """
        Restore the newest snapshot of ``snapshot_dir`` if it was built in ``memory_frame``.

        With ``memory_frame`` = ``odom_frame`` its recorded robot pose is kept: the first
        odometry decides whether the memory is kept (``_check_restored_memory``). In another
        memory frame (``map``: global, the odometry reaches it through TF) an odometry restart
        moves nothing, so the memory is kept as restored. A snapshot of another frame is not
        restored: the memory starts empty, and the log says why.
        """
        self.restored_anchor = None
        snapshot = self.model.load(self.snapshot_dir)
        if snapshot is None:
            return
        frame = snapshot.meta.get('memory_frame', 'odom')
        if frame != self.params['memory_frame']:
            self.model.reset()
            self._refuse_snapshot(f'the snapshot in {snapshot.path} was built in frame '
                                  f'{frame!r}, memory_frame is {self.params["memory_frame"]!r}')
            return
        pose = snapshot.meta.get('robot_pose')
        self.restored_anchor = None if pose is None else np.array(pose, dtype=np.float64)
        in_odometry = frame == self.params['odom_frame']
        self.get_logger().info(
            f'restored memory from {snapshot.path}: {len(self.model.spatial)} points, '
            f'{len(self.model.episodic)} keyframes, frame {frame!r}; ' +
            ('kept if the odometry starts where the snapshot left the robot' if in_odometry
             else f'kept: {frame!r} does not move when the odometry restarts'))

    def _check_restored_memory(self, pose):
        """
        Drop a restored memory when the first odometry shows that the odometry restarted.

        A restarted odometry puts the robot at its origin: the first pose lies at the origin
        (within ``restore_tolerance_*``) while the snapshot left the robot elsewhere. The
        memory, anchored in the old odometry, would be silently misaligned, so it is emptied.
        An odometry that kept running (only the node restarted) keeps the memory wherever the
        robot went meanwhile. Only with ``memory_frame`` = ``odom_frame``: ``pose`` in another
        memory frame comes through TF and says nothing about an odometry restart.
        """
        anchor, self.restored_anchor = self.restored_anchor, None
        if anchor is None or self.params['memory_frame'] != self.params['odom_frame']:
            return
        metres, radians = self.params['restore_tolerance_m'], self.params['restore_tolerance_rad']

        def near(a, b):
            return float(np.linalg.norm(a[:2, 3] - b[:2, 3])) <= metres \
                and abs(wrap_angle(base_yaw(a) - base_yaw(b))) <= radians

        if near(pose, anchor) or not near(pose, np.eye(4)):
            return
        self.model.reset()
        where = anchor[:2, 3]
        self._refuse_snapshot(
            f'the odometry restarted: the robot starts at its origin, the snapshot left it at '
            f'({where[0]:.2f}, {where[1]:.2f}) (tolerance {metres:g} m, {radians:g} rad)')

    def _refuse_snapshot(self, reason):
        self.rejected['snapshot'] = self.rejected.get('snapshot', 0) + 1
        self.get_logger().error(f'memory not restored, starting empty: {reason}')

    def _periodic_snapshot(self):
        try:
            self.save_snapshot()
        except (OSError, SnapshotError, ValueError) as exc:
            self.get_logger().error(f'periodic snapshot failed: {exc}',
                                    throttle_duration_sec=LOG_THROTTLE_S)
