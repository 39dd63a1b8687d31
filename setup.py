from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'mowm_ros'

# The one place where Python dependencies are declared; constraints.txt pins the versions
# that matter (torch among them: a pin here would stop a ROS user's CUDA build of torch).
# Pinned here only where another version breaks the package (see the comments). Never add
# PyPI's `launch`: it is an unrelated 2017 package that would shadow ROS 2's launch.
core_requires = [
    'numpy>=2.0',
    'torch',
    'safetensors',
    'open3d-cpu==0.20.0',
    'transforms3d',
    'scikit-image',
    'scipy',
    'pyyaml',
    'tqdm',
    'rosbags',
    'pillow',
    'matplotlib',
]
extras = {
    # ROS 2 (Kilted) from PyPI wheels, for a pip-only install without a ROS distribution.
    'ros': [
        'ros-rclpy',
        'ros-std-msgs',
        'ros-sensor-msgs',
        'ros-nav-msgs',
        'ros-geometry-msgs',
        'ros-std-srvs',
        'ros-visualization-msgs',
        'ros-diagnostic-msgs',
        'ros-builtin-interfaces',
        'ros-rmw-fastrtps-cpp',
        'ros-ament-index-python',
    ],
    # Memory Maze on dm_control/MuJoCo; mujoco 4 breaks dm_control 1.0.50.
    'sim': [
        'memory-maze==1.0.3',
        'gym',
        'mujoco==3.17.0',
        'dm-control==1.0.50',
        'absl-py',
    ],
    # The Rerun view (`mowm demo` writes demo.rrd; `--view` and `mowm view` serve the web
    # viewer, which ships inside the wheel). Optional: without it the view is off.
    'view': [
        'rerun-sdk',
    ],
    'test': [
        # rerun's dataframe API (reading demo.rrd back) needs its `catalog` extra.
        'rerun-sdk[catalog]',
        'pytest',
        'pytest-timeout',
        'pytest-xdist',
        'hypothesis',
        'ros-ament-lint',
        'ros-ament-flake8',
        'ros-ament-pep257',
        'flake8',
        'pydocstyle',
        'flake8-builtins',
        'flake8-comprehensions',
        'flake8-docstrings',
        'flake8-import-order',
        'flake8-quotes',
        'colcon-common-extensions',
    ],
}


def shipped(pattern):
    return sorted(p for p in glob(pattern) if os.path.isfile(p))


def shipped_checkpoints():
    """One data_files entry per checkpoint directory, installed under share/mowm_ros."""
    return [(os.path.join('share', package_name, 'checkpoints', os.path.basename(d)),
             shipped(os.path.join(d, '*')))
            for d in sorted(glob('mowm_ros/checkpoints/*')) if os.path.isdir(d)]


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={package_name: ['checkpoints/*/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        (os.path.join('share', package_name, 'launch'), shipped('launch/*.launch.py')),
        (os.path.join('share', package_name, 'config'), shipped('config/*')),
    ] + shipped_checkpoints(),
    python_requires='>=3.10',
    install_requires=['setuptools'] + core_requires,
    extras_require=extras,
    zip_safe=False,
    maintainer='mowm_ros developers',
    maintainer_email='mowm-ros@users.noreply.github.com',
    description='Memory-augmented diffusion world model for ROS 2 '
                '(composition of memory experts).',
    license='MIT',
    entry_points={
        'console_scripts': [
            'mowm = mowm_ros.cli:main',
            'episode_player = mowm_ros.nodes.episode_player:main',
            'world_model = mowm_ros.nodes.world_model_node:main',
            'mowm_bringup = mowm_ros.nodes.bringup:main',
            'sim_robot = mowm_ros.nodes.sim_robot:main',
            'mowm_nav2_bridge = mowm_ros.nodes.nav2_bridge:main',
            'mowm_path_follower = mowm_ros.nodes.path_follower:main',
            'mowm_view = mowm_ros.nodes.rerun_view:main',
        ],
    },
)
