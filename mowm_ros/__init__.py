"""
mowm_ros: a memory-augmented diffusion world model for ROS 2.

Layers (each imports only those below it): ``nodes`` (rclpy lives only here), ``planning``,
``world_model``, ``memory``, ``model``, ``data``, ``geometry``.
"""

__version__ = '0.1.0'
