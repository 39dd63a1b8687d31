"""
The world_model node's parameters: names and defaults, validation, the configs built from them.

One ``parameters.Spec`` each (default, description, limits; defaults from the config
dataclasses where they have one): the node declares them with descriptors and checks them at
configure and when a live one is set.
"""

from dataclasses import replace
import os

from mowm_ros.device import check_device
from mowm_ros.extrinsics import DEFAULT_EXTRINSICS, extrinsics_matrix
from mowm_ros.memory.episodic import EpisodicBufferConfig
from mowm_ros.memory.retrieval import RetrievalConfig
from mowm_ros.model import checkpoint
from mowm_ros.model.experts import DEFAULT_WEIGHTS, EXPERT_NAMES
from mowm_ros.nodes.parameters import check_by, default_of, Spec
from mowm_ros.planning.navigator import NavigatorConfig
from mowm_ros.world_model import spatial_config_for, WorldModelConfig


def _not_empty(name, value):
    return None if value else f'{name} must not be empty'


def _directory_or_absent(name, value):
    path = os.path.expanduser(value)
    if value and os.path.exists(path) and not os.path.isdir(path):
        return f'{name} {value!r} exists and is not a directory'
    return None


_MODEL = WorldModelConfig
_EPISODIC = EpisodicBufferConfig
_NAVIGATOR = NavigatorConfig
SPECS = {
    'checkpoint': Spec(default_of(_MODEL, 'checkpoint'),
                       "model checkpoint directory; '' = the one shipped with the package"),
    'device': Spec(default_of(_MODEL, 'device'), 'torch device: auto | cpu | cuda | cuda:N',
                   check=check_by(lambda value, name: check_device(value))),
    'sampler_steps': Spec(default_of(_MODEL, 'sampler_steps'),
                          'DDIM steps per predicted view', minimum=1),
    'horizon': Spec(4, 'predicted frames per request', minimum=1, live=True),
    'frame_interval_s': Spec(0.5, 'seconds between predicted frames (the model spacing)',
                             positive=True, live=True),
    'prediction_period_s': Spec(1.0, 'seconds between prediction requests', positive=True),
    'predict_on_frame': Spec(False, 'also request a prediction as each camera frame is '
                             'observed (as fast as the machine predicts)', live=True),
    'experts': Spec(list(EXPERT_NAMES), 'experts composed when predicting',
                    choices=EXPERT_NAMES),
    'composition': Spec(default_of(_MODEL, 'composition'), 'how experts are composed',
                        choices=('contrastive', 'naive')),
    **{f'weight_{name}': Spec(weight, f'composition weight of the {name} expert')
       for name, weight in DEFAULT_WEIGHTS.items()},
    'finetune': Spec(default_of(_MODEL, 'finetune_on_observe'),
                     'test-time finetuning of the episodic adapters'),
    'episodic_retrieval': Spec(default_of(_MODEL, 'episodic_retrieval'),
                               'the episodic expert reads the keyframes taken nearest each '
                               'predicted pose in place of the recent frames'),
    'episodic_memory_view': Spec(default_of(_MODEL, 'episodic_memory_view'),
                                 'with depth, the adapters learn each keyframe beside the '
                                 'spatial render it was taken with'),
    'retrieval_radius_m': Spec(RetrievalConfig().radius_m,
                               'keyframes are retrieved for a pose only if one lies this close',
                               positive=True),
    'trust_travel_m': Spec(default_of(_MODEL, 'trust_travel_m'),
                           'drifting wheel odometry: render and retrieve only what was seen '
                           'within the last this many metres travelled; 0 = all of it',
                           minimum=0.0),
    'max_points': Spec(1_000_000, 'spatial memory cap (points)', minimum=1),
    'voxel_size': Spec(0.0, 'spatial memory voxel (m); 0 = as the checkpoint was trained',
                       minimum=0.0),
    'keyframe_capacity': Spec(default_of(_EPISODIC, 'capacity'), 'episodic memory keyframes',
                              minimum=2),
    'keyframe_min_translation': Spec(default_of(_EPISODIC, 'min_translation'),
                                     'metres moved before a new keyframe', minimum=0.0),
    'keyframe_min_rotation': Spec(default_of(_EPISODIC, 'min_rotation'),
                                  'radians turned before a new keyframe', minimum=0.0),
    'snapshot_dir': Spec('', 'memory snapshots: restored at configure, saved periodically and '
                             "at shutdown; '' = none", check=_directory_or_absent),
    'snapshot_period_s': Spec(60.0, 'seconds between snapshots; 0 = only at shutdown',
                              minimum=0.0),
    'odom_frame': Spec('odom', 'frame_id odometry messages must have', check=_not_empty),
    'memory_frame': Spec('odom', 'frame of the memory, its snapshots and the paths the node '
                                 'publishes; plan must be in it; odometry in another frame '
                                 'is composed with TF memory_frame <- odom_frame (map: a '
                                 'localiser; needs tf2_ros or tf2_msgs)',
                         check=_not_empty),
    'restore_tolerance_m': Spec(0.5, 'memory_frame = odom_frame only: a restored memory is '
                                     'dropped when the first odometry lies this close to the '
                                     'odometry origin (it restarted) but not to where the '
                                     'snapshot left the robot', minimum=0.0),
    'restore_tolerance_rad': Spec(0.5, 'likewise for the heading', minimum=0.0),
    'use_depth': Spec(True, 'pair camera/depth/image_raw with colour; false: RGB only '
                            '(no spatial memory)'),
    'pair_slop_s': Spec(0.02, 'colour and depth stamps pair within this (s)', minimum=0.0),
    'max_odom_gap_s': Spec(0.5, 'odometry further than this from an image stamp is unusable',
                           positive=True),
    'plan_timeout_s': Spec(2.0, 'predict along `plan` while it is this fresh (s)',
                           minimum=0.0, live=True),
    'plan_spacing_m': Spec(0.0, 'metres between predicted poses on a plan; 0 = from speed',
                           minimum=0.0, live=True),
    'memory_period_s': Spec(2.0, 'seconds between memory cloud/keyframes/costmap messages',
                            positive=True),
    'cloud_max_points': Spec(200_000, 'points in ~/memory/cloud; 0 = all', minimum=0,
                             live=True),
    'costmap_resolution': Spec(_NAVIGATOR.grid_resolution, 'metres per ~/memory/costmap cell',
                               positive=True, live=True),
    'camera_extrinsics': Spec(list(DEFAULT_EXTRINSICS), 'camera optical frame in the base '
                              'frame: x y z qx qy qz qw (until TF gives it)',
                              check=check_by(extrinsics_matrix)),
    'base_frame': Spec('base_link', 'robot base frame (TF extrinsics)', check=_not_empty),
    'extrinsics_from_tf': Spec(True, 'take base_frame <- camera frame from TF when known'),
    'integration_max_width': Spec(320, 'wider frames are subsampled before the memory sees '
                                       'them; 0 = full resolution', minimum=0, live=True),
    'torch_threads': Spec(default_of(_MODEL, 'torch_threads'), 'sampler intra-op threads; 0 = '
                          'the CPUs the finetuning thread leaves', minimum=0),
    'goal_experts': Spec(['short_term', 'spatial'], 'experts imagining candidate goal views',
                         choices=EXPERT_NAMES),
    'goal_sampler_steps': Spec(2, 'DDIM steps per imagined view while planning', minimum=1),
    'goal_time_budget_s': Spec(10.0, 'seconds of candidate scoring per plan; 0 = no limit',
                               minimum=0.0),
    'goal_replan_period_s': Spec(2.0, 'plan again this often while a goal is active; 0 = once',
                                 minimum=0.0),
    'goal_max_candidates': Spec(_NAVIGATOR.max_candidates, 'candidate goal poses scored',
                                minimum=1),
    'goal_candidate_yaws': Spec(_NAVIGATOR.candidate_yaws, 'headings per candidate position',
                                minimum=1),
    'goal_approach_distance_m': Spec(_NAVIGATOR.approach_distance, 'within this of the goal a '
                                     'CEM over controls shapes the path', minimum=0.0),
    'goal_arrive_distance_m': Spec(_NAVIGATOR.arrive_distance, 'the goal is reached within '
                                                               'this', positive=True),
    'goal_robot_radius_m': Spec(_NAVIGATOR.robot_radius, 'obstacles are inflated by this',
                                minimum=0.0),
}
PARAMETERS = {name: spec.default for name, spec in SPECS.items()}
# Parameters the node reads while it runs; any other one is read only (read at configure).
LIVE_PARAMETERS = tuple(name for name, spec in SPECS.items() if spec.live)


def check_parameter(name, value):
    """Return why ``value`` is not valid for parameter ``name``, or None when it is."""
    return SPECS[name].problem(name, value)


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
        finetune_on_observe=bool(params['finetune']), spatial=spatial, episodic=episodic,
        torch_threads=int(params['torch_threads']),
        episodic_retrieval=bool(params['episodic_retrieval']),
        episodic_memory_view=bool(params['episodic_memory_view']),
        retrieval=RetrievalConfig(radius_m=float(params['retrieval_radius_m'])),
        trust_travel_m=float(params['trust_travel_m']))


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
