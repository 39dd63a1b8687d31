"""Evaluation of the world model: the memory benchmark, its report and the scaling benchmark."""
