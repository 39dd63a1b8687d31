"""Imagination along paths, path scoring and costmap export (plain Python, no rclpy)."""
