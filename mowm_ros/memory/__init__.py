"""The robot's memories: spatial point cloud, episodic keyframes, crash-safe snapshots."""

from mowm_ros.memory.episodic import EpisodicBuffer, EpisodicBufferConfig, Keyframe, \
    KeyframeArrays
from mowm_ros.memory.spatial import IntegrationResult, OccupancyGrid, SpatialMemory, \
    SpatialMemoryConfig
from mowm_ros.memory.store import MemoryStore, RejectedSnapshot, Snapshot, SnapshotError

__all__ = ['EpisodicBuffer', 'EpisodicBufferConfig', 'IntegrationResult', 'Keyframe',
           'KeyframeArrays', 'MemoryStore', 'OccupancyGrid', 'RejectedSnapshot', 'Snapshot',
           'SnapshotError', 'SpatialMemory', 'SpatialMemoryConfig']
