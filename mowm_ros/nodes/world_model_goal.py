"""
Image-goal navigation of the world_model node: a goal image in, a planned path out.

An image on ``~/goal_image`` becomes the active goal (a newer one supersedes it). A worker
thread plans towards it with ``ImageGoalNavigator`` while the memory keeps integrating, and
again every ``goal_replan_period_s``; each plan is published as ``~/best_path`` (nav_msgs/Path,
odometry frame) with the view imagined at its end on ``~/goal/imagined_view``. The goal is
cleared, and an empty ``~/best_path`` published (a path follower stops on it), when the robot
arrives or on ``~/cancel_goal``.
"""

from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticStatus
from mowm_ros.data.resize import to_model_frame
from mowm_ros.nodes import conversions
from mowm_ros.nodes.world_model_params import experts_from
from mowm_ros.planning.navigator import world_model_imagine
import numpy as np

GOAL_CHECK_PERIOD_S = 0.25   # arrival checks and (re)planning requests of the active goal


@dataclass
class ActiveGoal:
    """The goal being planned for: its image at model size and the latest plan towards it."""

    number: int
    image: np.ndarray                  # uint8 (S, S, 3), S the model's image size
    received: float                    # node clock, seconds
    plan: object = None                # the latest NavigationPlan
    requested: float = None            # node clock time of the latest planning request
    plans: int = 0


class ImageGoalMixin:
    """The world_model node's image-goal state machine; the node provides the navigator."""

    def _imagine_for_goal(self, base_poses):
        p = self.params
        return world_model_imagine(self.model, self.base_from_camera,
                                   experts_from(p, 'goal_experts'),
                                   int(p['goal_sampler_steps']))(base_poses)

    def _occupancy_for_goal(self):
        c = self.navigator.config
        return self.model.occupancy_grid(
            resolution=self.params['costmap_resolution'], z_min=c.z_min, z_max=c.z_max)

    def _on_goal_image(self, msg):
        try:
            rgb = conversions.image_to_rgb(msg)
        except conversions.ConversionError as exc:
            self._reject('goal_image', exc)
            return
        image = to_model_frame(rgb, self.model.size)
        with self.goal_lock:
            self.goals_received += 1
            self.goal = ActiveGoal(self.goals_received, image, self.now_s())
            number = self.goal.number
        self.get_logger().info(f'goal {number}: a {rgb.shape[1]}x{rgb.shape[0]} goal image; '
                               'planning')
        self._check_goal()

    def _check_goal(self):
        """Clear the goal once the robot arrived; request a plan when one is due."""
        latest = self.odometry.latest()
        with self.goal_lock:
            goal = self.goal
            if goal is None:
                return
            if goal.plan is not None and latest is not None:
                target = goal.plan.believed_goal if goal.plan.believed_goal is not None \
                    else goal.plan.goal_pose
                distance = float(np.linalg.norm(latest[1][:2, 3] - target[:2, 3]))
                if distance <= self.params['goal_arrive_distance_m']:
                    goal = None
            if goal is not None:
                period = self.params['goal_replan_period_s']
                now = self.now_s()
                due = goal.requested is None or (period > 0 and now - goal.requested >= period)
                if due and not self.goal_planner.busy and not self.goal_planner.pending:
                    goal.requested = now
                    self.goal_planner.submit(goal.number)
                return
        self._end_goal('reached')

    def _plan_goal(self, number):
        with self.goal_lock:
            goal = self.goal
        if goal is None or goal.number != number:
            return                                     # cancelled or superseded meanwhile
        latest = self.odometry.latest()
        if latest is None or not self.model.context_ready:
            with self.goal_lock:
                goal.requested = None                  # nothing observed yet: ask again
            return
        if self._navigator_goal != number:
            self.navigator.reset()
            self._navigator_goal = number
        stamp, pose = latest
        plan = self.navigator.plan(pose, goal.image)
        with self.goal_lock:
            if self.goal is not goal:
                return
            goal.plan = plan
            goal.plans += 1
            self.last_goal_plan = plan
        frame = self.params['memory_frame']
        self.best_path_pub.publish(conversions.poses_to_path(plan.path, frame,
                                                             [stamp] * len(plan.path)))
        self.goal_view_pub.publish(conversions.rgb_to_image(plan.imagined_goal_view,
                                                            self.camera_frame, stamp))
        self.get_logger().info(
            f'goal {number}: plan {goal.plans} ({plan.stage}) of {len(plan.path)} poses, '
            f'{self._path_length(plan.path):.1f} m, score {plan.score:.4f}, '
            f'reachable {plan.reachable}, {plan.seconds:.1f} s')
        if plan.arrived:
            self._end_goal('reached')

    @staticmethod
    def _path_length(path):
        return float(np.linalg.norm(np.diff(path[:, :2, 3], axis=0), axis=1).sum())

    def _end_goal(self, outcome):
        """Clear the active goal and publish an empty best path; return whether one was set."""
        with self.goal_lock:
            goal, self.goal = self.goal, None
            if goal is None:
                return False
            self.goal_outcome = outcome
        stamp = self.get_clock().now().nanoseconds
        self.best_path_pub.publish(conversions.poses_to_path([], self.params['memory_frame'],
                                                             [stamp]))
        self.get_logger().info(f'goal {goal.number} {outcome} after {goal.plans} plans')
        return True

    def _cancel_goal(self, request, response):
        response.success = self._end_goal('cancelled')
        response.message = 'goal cancelled' if response.success else 'no active goal'
        return response

    def goal_status(self):
        """Return (level, message, values) of the image-goal navigation for /diagnostics."""
        with self.goal_lock:
            goal, plan = self.goal, self.last_goal_plan
        values = {'goals received': self.goals_received,
                  'goal plans': goal.plans if goal is not None else 0,
                  'rejected goal images': self.rejected.get('goal_image', 0)}
        if plan is not None:
            values.update({'planning time (s)': f'{plan.seconds:.2f}',
                           'score': f'{plan.score:.4f}', 'reachable': plan.reachable,
                           'stage': plan.stage, 'path poses': len(plan.path),
                           'path length (m)': f'{self._path_length(plan.path):.2f}'})
        if goal is None:
            message = f'no active goal (last: {self.goal_outcome})'
        elif goal.plan is None:
            message = 'planning'
        else:
            message = f'following a plan ({goal.plan.stage})'
        level = DiagnosticStatus.OK
        if goal is not None and goal.plan is not None and not goal.plan.reachable:
            level = DiagnosticStatus.WARN
            message += ': the goal is not reachable in the memory map'
        return level, message, values
