"""The robot's memories: spatial point cloud, episodic keyframes, crash-safe snapshots."""
