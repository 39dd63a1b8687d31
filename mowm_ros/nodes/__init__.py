"""ROS 2 nodes, message conversion and bringup: the only layer that imports rclpy."""
