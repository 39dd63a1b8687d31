"""ROS 2 nodes, message conversion and bringup: the only layer that imports rclpy."""

import os

# Node processes do small numpy products (N x 3 points by 3 x 3 rotations) next to PyTorch's
# own thread pool: multi-threaded OpenBLAS only spins there. On the loaded 2-core test machine
# one 640x480 frame took 306 ms to observe with OpenBLAS's default threads and 91 ms with one
# (the (N, 3) @ (3, 3) product alone: 200 ms against 1.2 ms). Set before numpy loads; an
# explicit OPENBLAS_NUM_THREADS in the environment wins.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
