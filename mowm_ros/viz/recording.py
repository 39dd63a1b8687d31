"""
A Rerun recording of the world model, on one timeline ``stamp``: the sensor stamps.

Entities (poses in the odometry frame ``world``, z up; cameras in the optical frame):

    world/camera               camera pose (Transform3D) and intrinsics (Pinhole)
    world/camera/rgb, /depth   the camera frames
    world/prediction           pose and intrinsics of the first predicted view; /rgb its image
    world/predicted_path       the base poses the model predicts along
    world/memory               the spatial memory's cloud, subsampled to ``cloud_points``
    world/keyframes            keyframe poses: arrows along their optical axes
    scored/camera, /predicted  each scored prediction beside the camera frame it is scored on
    metrics/<name>             time series: psnr, psnr_last_frame, latency_ms, memory_points,
                               keyframes

Everything is logged at a sensor stamp: frames and poses at their own stamps, predictions at
the stamp of the view they predict, memory and diagnostics at the newest camera stamp.
"""

import numpy as np

TIMELINE = 'stamp'
CAMERA = 'world/camera'
PREDICTION = 'world/prediction'
PATH = 'world/predicted_path'
MEMORY = 'world/memory'
KEYFRAMES = 'world/keyframes'
SCORED = 'scored'
METRICS = 'metrics'
FRUSTUM_DEPTH_M = 0.3
# What the gRPC server keeps for viewers that connect late (the oldest is dropped first).
SERVER_MEMORY_LIMIT = '256MiB'


def blueprint(rr):
    """Lay out the 3D scene; camera, prediction and scored pairs; the time series."""
    rrb = rr.blueprint
    images = rrb.Horizontal(
        rrb.Spatial2DView(origin=f'{CAMERA}/rgb', name='camera'),
        rrb.Spatial2DView(origin=f'{CAMERA}/depth', name='depth'),
        rrb.Spatial2DView(origin=f'{PREDICTION}/rgb', name='predicted'),
        rrb.Spatial2DView(origin=f'{SCORED}/camera', name='scored: camera'),
        rrb.Spatial2DView(origin=f'{SCORED}/predicted', name='scored: predicted'))
    plots = rrb.Horizontal(
        rrb.TimeSeriesView(origin=METRICS, name='PSNR (dB)',
                           contents=[f'{METRICS}/psnr', f'{METRICS}/psnr_last_frame']),
        rrb.TimeSeriesView(origin=f'{METRICS}/latency_ms', name='latency (ms per frame)'),
        rrb.TimeSeriesView(origin=f'{METRICS}/memory_points', name='memory points'),
        rrb.TimeSeriesView(origin=f'{METRICS}/keyframes', name='keyframes'))
    return rrb.Blueprint(
        rrb.Vertical(rrb.Spatial3DView(origin='world', name='world (odometry frame)'),
                     images, plots, row_shares=[3, 2, 2]),
        collapse_panels=True)


class WorldModelRecording:
    """
    One Rerun recording stream, to an .rrd file and/or a gRPC server for the web viewer.

    ``grpc_port`` serves the stream on 127.0.0.1 (late viewers get everything logged so far);
    the methods are safe to call from several threads (Rerun keeps the time per thread).
    """

    def __init__(self, rr, rrd_path=None, grpc_port=None, cloud_points=20_000,
                 application_id='mowm_ros'):
        if rrd_path is None and grpc_port is None:
            raise ValueError('a recording needs an .rrd path or a gRPC port')
        self.rr = rr
        self.cloud_points = int(cloud_points)
        self.stream = rr.RecordingStream(application_id)
        sinks = []
        if rrd_path is not None:
            sinks.append(rr.FileSink(str(rrd_path)))
        self.grpc = None
        if grpc_port is not None:
            self.grpc = rr.GrpcServerSink(bind_ip='127.0.0.1', port=int(grpc_port),
                                          server_memory_limit=SERVER_MEMORY_LIMIT)
            sinks.append(self.grpc)
        rr.set_sinks(*sinks, default_blueprint=blueprint(rr), recording=self.stream)
        self.stream.log('world', rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
        self._intrinsics = {}
        self.closed = False

    @property
    def grpc_uri(self):
        return self.grpc.uri if self.grpc is not None else None

    def _at(self, stamp):
        self.stream.set_time(TIMELINE, timestamp=np.datetime64(int(stamp), 'ns'))

    def view(self, entity, stamp, pose=None, K=None, size=None, rgb=None, depth=None):
        """Log a camera at ``entity``: any of pose, intrinsics (K, (w, h)), RGB and depth."""
        rr = self.rr
        self._at(stamp)
        if pose is not None:
            pose = np.asarray(pose, dtype=np.float64)
            self.stream.log(entity, rr.Transform3D(translation=pose[:3, 3], mat3x3=pose[:3, :3]))
        if K is not None:
            key = (tuple(np.asarray(K, dtype=np.float64).ravel()), tuple(size))
            if self._intrinsics.get(entity) != key:     # logged again only when it changes
                self._intrinsics[entity] = key
                self.stream.log(entity, rr.Pinhole(image_from_camera=np.asarray(K),
                                                   resolution=list(size),
                                                   image_plane_distance=FRUSTUM_DEPTH_M))
        if rgb is not None:
            self.stream.log(f'{entity}/rgb', rr.Image(np.asarray(rgb, dtype=np.uint8)))
        if depth is not None:
            depth = np.nan_to_num(np.asarray(depth, dtype=np.float32), nan=0.0, posinf=0.0)
            self.stream.log(f'{entity}/depth', rr.DepthImage(depth, meter=1.0))

    def predicted_path(self, stamp, positions):
        self._at(stamp)
        positions = np.asarray(positions, dtype=np.float32).reshape(-1, 3)
        self.stream.log(PATH, self.rr.LineStrips3D([positions], colors=[[80, 200, 255]]),
                        self.rr.Points3D(positions, radii=0.04, colors=[[80, 200, 255]]))

    def memory(self, stamp, points, colours):
        points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
        colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
        if len(points) > self.cloud_points > 0:
            keep = np.linspace(0, len(points) - 1, self.cloud_points).astype(np.int64)
            points, colours = points[keep], colours[keep]
        self._at(stamp)
        self.stream.log(MEMORY, self.rr.Points3D(points, colors=colours, radii=0.025))

    def keyframes(self, stamp, origins, vectors):
        self._at(stamp)
        self.stream.log(KEYFRAMES, self.rr.Arrows3D(
            origins=np.asarray(origins, dtype=np.float32).reshape(-1, 3),
            vectors=np.asarray(vectors, dtype=np.float32).reshape(-1, 3),
            colors=[[255, 153, 0]]))

    def scalars(self, stamp, **values):
        """Time series under metrics/: one Scalars per value that is not None."""
        self._at(stamp)
        for name, value in values.items():
            if value is not None:
                self.stream.log(f'{METRICS}/{name}', self.rr.Scalars(float(value)))

    def scored(self, stamp, camera, predicted, **values):
        """Log a prediction beside the camera frame it is scored against, and its scores."""
        self._at(stamp)
        self.stream.log(f'{SCORED}/camera', self.rr.Image(np.asarray(camera, dtype=np.uint8)))
        self.stream.log(f'{SCORED}/predicted',
                        self.rr.Image(np.asarray(predicted, dtype=np.uint8)))
        self.scalars(stamp, **values)

    def close(self):
        """Flush everything to the sinks and end the stream (the .rrd is then complete)."""
        if self.closed:
            return
        self.closed = True
        self.stream.flush()
        self.stream.disconnect()
