"""
The world_model node's parameters: names and defaults, validation, the configs built from them.

Pure Python (no rclpy): the node declares them, ``check_parameter`` validates a value when the
node starts and when it is set at run time.
"""

from dataclasses import replace
import math
import os

from mowm_ros.device import check_device
from mowm_ros.extrinsics import DEFAULT_EXTRINSICS, extrinsics_matrix
from mowm_ros.memory.episodic import EpisodicBufferConfig
from mowm_ros.model import checkpoint
from mowm_ros.model.experts import DEFAULT_WEIGHTS, EXPERT_NAMES
from mowm_ros.planning.navigator import NavigatorConfig
from mowm_ros.world_model import spatial_config_for, WorldModelConfig


PARAMETERS = {
    'checkpoint': '', 'device': 'auto', 'sampler_steps': 4, 'horizon': 4,
    'frame_interval_s': 0.5, 'prediction_period_s': 1.0,
    'experts': list(EXPERT_NAMES), 'composition': 'contrastive',
    **{f'weight_{name}': weight for name, weight in DEFAULT_WEIGHTS.items()},
    'finetune': True, 'max_points': 1_000_000, 'voxel_size': 0.0, 'keyframe_capacity': 1000,
    'keyframe_min_translation': 0.3, 'keyframe_min_rotation': 0.35, 'snapshot_dir': '',
    'snapshot_period_s': 60.0, 'odom_frame': 'odom', 'use_depth': True, 'pair_slop_s': 0.02,
    'max_odom_gap_s': 0.5, 'plan_timeout_s': 2.0, 'plan_spacing_m': 0.0,
    'memory_period_s': 2.0, 'cloud_max_points': 200_000, 'costmap_resolution': 0.1,
    'camera_extrinsics': list(DEFAULT_EXTRINSICS), 'base_frame': 'base_link',
    'extrinsics_from_tf': True, 'integration_max_width': 320, 'torch_threads': 0,
    'goal_experts': ['short_term', 'spatial'], 'goal_sampler_steps': 2,
    'goal_time_budget_s': 10.0, 'goal_replan_period_s': 2.0, 'goal_max_candidates': 256,
    'goal_candidate_yaws': 8, 'goal_approach_distance_m': 2.0, 'goal_arrive_distance_m': 0.5,
    'goal_robot_radius_m': 0.3,
}

# Parameters the node reads while it runs; a change of any other one needs a restart.
LIVE_PARAMETERS = ('horizon', 'frame_interval_s', 'plan_timeout_s', 'plan_spacing_m',
                   'cloud_max_points', 'costmap_resolution', 'integration_max_width',
                   'odom_frame')
_AT_LEAST = {'sampler_steps': 1, 'horizon': 1, 'max_points': 1, 'keyframe_capacity': 2,
             'cloud_max_points': 0, 'integration_max_width': 0, 'torch_threads': 0,
             'voxel_size': 0.0, 'keyframe_min_translation': 0.0, 'keyframe_min_rotation': 0.0,
             'snapshot_period_s': 0.0, 'pair_slop_s': 0.0, 'plan_timeout_s': 0.0,
             'plan_spacing_m': 0.0, 'goal_sampler_steps': 1, 'goal_time_budget_s': 0.0,
             'goal_replan_period_s': 0.0, 'goal_max_candidates': 1, 'goal_candidate_yaws': 1,
             'goal_approach_distance_m': 0.0, 'goal_robot_radius_m': 0.0}
_POSITIVE = ('frame_interval_s', 'prediction_period_s', 'memory_period_s', 'max_odom_gap_s',
             'costmap_resolution', 'goal_arrive_distance_m')


def check_parameter(name, value):
    """Return why ``value`` is not valid for parameter ``name``, or None when it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return f'{name} must be finite, got {value}'
    if name in _AT_LEAST and value < _AT_LEAST[name]:
        return f'{name} must be >= {_AT_LEAST[name]}, got {value}'
    if name in _POSITIVE and not value > 0:
        return f'{name} must be > 0, got {value}'
    if name in ('experts', 'goal_experts') and (not value or not set(value) <= set(EXPERT_NAMES)):
        return f'{name} must be a non-empty subset of {list(EXPERT_NAMES)}, got {list(value)}'
    if name == 'composition' and value not in ('contrastive', 'naive'):
        return f"composition must be 'contrastive' or 'naive', got {value!r}"
    if name == 'device':
        try:
            check_device(value)
        except ValueError as exc:
            return str(exc)
    if name == 'camera_extrinsics':
        try:
            extrinsics_matrix(value, name)
        except ValueError as exc:
            return str(exc)
    if name in ('odom_frame', 'base_frame') and not value:
        return f'{name} must not be empty'
    if name == 'snapshot_dir' and value and os.path.exists(os.path.expanduser(value)) \
            and not os.path.isdir(os.path.expanduser(value)):
        return f'snapshot_dir {value!r} exists and is not a directory'
    return None


def experts_from(params, name='experts'):
    """
    Return the experts of parameter ``name`` the node can run.

    Without depth (``use_depth: false``, an RGB-only camera) the spatial memory stays empty,
    so the spatial expert is left out and the node runs short-term + episodic.
    """
    experts = list(params[name])
    return experts if params['use_depth'] else [e for e in experts if e != 'spatial']


def model_config_from(params):
    """Build the WorldModelConfig from node parameters; raise ValueError naming a bad one."""
    directory = params['checkpoint'] or str(checkpoint.default_checkpoint_dir())
    spatial = spatial_config_for(checkpoint.read_config(directory))
    spatial = replace(spatial, max_points=int(params['max_points']))
    if params['voxel_size'] > 0:
        spatial = replace(spatial, voxel_size=float(params['voxel_size']))
    episodic = EpisodicBufferConfig(capacity=int(params['keyframe_capacity']),
                                    min_translation=float(params['keyframe_min_translation']),
                                    min_rotation=float(params['keyframe_min_rotation']))
    return WorldModelConfig(
        checkpoint=directory, device=params['device'],
        sampler_steps=int(params['sampler_steps']), experts=tuple(experts_from(params)),
        composition=params['composition'],
        weights={name: params[f'weight_{name}'] for name in EXPERT_NAMES},
        finetune_on_observe=bool(params['finetune']), spatial=spatial, episodic=episodic)


def navigator_config_from(params):
    """Build the NavigatorConfig of image-goal planning from node parameters."""
    return NavigatorConfig(
        grid_resolution=float(params['costmap_resolution']),
        robot_radius=float(params['goal_robot_radius_m']),
        candidate_yaws=int(params['goal_candidate_yaws']),
        max_candidates=int(params['goal_max_candidates']),
        approach_distance=float(params['goal_approach_distance_m']),
        arrive_distance=float(params['goal_arrive_distance_m']),
        time_budget_s=float(params['goal_time_budget_s']))
