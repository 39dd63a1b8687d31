"""
The Rerun view: topics over DDS into a recording, read back; the served viewer in Chromium.

Real rclpy nodes, real rerun-sdk (recording, gRPC and web servers, dataframe API) and a real
headless Chromium (the Debian package that `make setup` installs).
"""

import signal
import socket
import subprocess
import sys
import urllib.request

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from mowm_ros import cli
from mowm_ros.extrinsics import DEFAULT_EXTRINSICS, extrinsics_matrix
from mowm_ros.nodes import conversions
from mowm_ros.nodes.qos import LATCHED, RELIABLE_1, RELIABLE_2
from mowm_ros.nodes.rerun_view import open_recording, RerunView
from mowm_ros.viz import MISSING_MESSAGE
from mowm_ros.viz.browser import HeadlessBrowser
from mowm_ros.viz.recording import WorldModelRecording
from nav_msgs.msg import Odometry, Path
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from ros_harness import publish_until, wait_for
from rrd_tables import free_port_pair, read_rrd, rows, stamps
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import Marker, MarkerArray

pytestmark = [pytest.mark.ros]

K = np.array([[32.0, 0.0, 32.0], [0.0, 32.0, 32.0], [0.0, 0.0, 1.0]])
T0 = 1_800_000_000_000_000_000          # sensor stamps (ns)
STEP = 250_000_000
MAGENTA = (255, 0, 255)


def pose(x):
    matrix = np.eye(4)
    matrix[0, 3] = x
    return matrix


def publishers(node, world_model='/world_model'):
    sensor = qos_profile_sensor_data
    return {
        'image': node.create_publisher(Image, 'camera/image_raw', sensor),
        'depth': node.create_publisher(Image, 'camera/depth/image_raw', sensor),
        'info': node.create_publisher(CameraInfo, 'camera/camera_info', sensor),
        'odom': node.create_publisher(Odometry, 'odom', sensor),
        'prediction': node.create_publisher(Image, f'{world_model}/predicted/image',
                                            RELIABLE_2),
        'prediction_info': node.create_publisher(
            CameraInfo, f'{world_model}/predicted/camera_info', RELIABLE_2),
        'path': node.create_publisher(Path, f'{world_model}/predicted/path', RELIABLE_1),
        'cloud': node.create_publisher(PointCloud2, f'{world_model}/memory/cloud', LATCHED),
        'keyframes': node.create_publisher(MarkerArray, f'{world_model}/memory/keyframes',
                                           RELIABLE_1),
        'diagnostics': node.create_publisher(DiagnosticArray, '/diagnostics', 10),
    }


def keyframe_markers(origins):
    marker = Marker(type=Marker.LINE_LIST, ns='keyframes')
    for x, y, z in origins:
        marker.points.extend([Point(x=x, y=y, z=z), Point(x=x, y=y, z=z + 0.3)])
    return MarkerArray(markers=[Marker(action=Marker.DELETEALL), marker])


def diagnostics(latency, points, keyframes):
    status = DiagnosticStatus(name='mowm_ros: world_model', values=[
        KeyValue(key='prediction latency (ms per frame)', value=str(latency)),
        KeyValue(key='memory points', value=str(points)),
        KeyValue(key='keyframes', value=str(keyframes))])
    return DiagnosticArray(status=[status])


def publish_until_logged(view, publisher, msg, topic):
    """
    Publish ``msg`` until the view logged it (sensor topics are best effort).

    A repeat may be logged twice, at the same stamp: the checks below compare stamps.
    """
    before = view.logged.get(topic, 0)
    publish_until(lambda: publisher.publish(msg), lambda: view.logged.get(topic, 0) > before,
                  what=f'the view logging a message on {topic}')


def test_view_node_logs_the_topics_on_the_sensor_timeline(ros, tmp_path):
    path = tmp_path / 'view.rrd'
    import rerun as rr
    view = ros.add(RerunView(WorldModelRecording(rr, rrd_path=path, cloud_points=50),
                             context=ros.context))
    pub = publishers(ros.node('fake_world_model'))
    wait_for(lambda: all(p.get_subscription_count() for p in pub.values()),
             what='the view subscribing to every topic')
    frames = [T0 + i * STEP for i in range(4)]
    for i, stamp in enumerate(frames):
        rgb = np.full((64, 64, 3), 40 * i, np.uint8)
        publish_until_logged(view, pub['image'], conversions.rgb_to_image(rgb, 'cam', stamp),
                             'camera/image_raw')
        publish_until_logged(view, pub['depth'], conversions.depth_to_image(
            np.full((64, 64), 1.0 + i, np.float32), 'cam', stamp), 'camera/depth/image_raw')
        publish_until_logged(view, pub['info'], conversions.intrinsics_to_camera_info(
            K, (64, 64), 'cam', stamp), 'camera/camera_info')
        publish_until_logged(view, pub['odom'], conversions.pose_to_odometry(
            pose(0.5 * i), stamp), 'odom')
    predicted = T0 + 5 * STEP
    publish_until_logged(view, pub['prediction'], conversions.rgb_to_image(
        np.zeros((64, 64, 3), np.uint8), 'cam', predicted), '/world_model/predicted/image')
    publish_until_logged(view, pub['prediction_info'], conversions.intrinsics_to_camera_info(
        K, (64, 64), 'cam', predicted), '/world_model/predicted/camera_info')
    publish_until_logged(view, pub['path'], conversions.poses_to_path(
        [pose(2.5), pose(3.0)], 'odom', [predicted, predicted + STEP]),
        '/world_model/predicted/path')
    rng = np.random.default_rng(0)
    publish_until_logged(view, pub['cloud'], conversions.points_to_cloud(
        rng.uniform(-1, 1, (200, 3)), rng.integers(0, 255, (200, 3)), 'odom', 0),
        '/world_model/memory/cloud')
    publish_until_logged(view, pub['keyframes'], keyframe_markers(
        [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (2.0, 0.0, 0.0)]), '/world_model/memory/keyframes')
    publish_until_logged(view, pub['diagnostics'], diagnostics(850, 12345, 3), '/diagnostics')
    bad = conversions.rgb_to_image(np.zeros((64, 64, 3), np.uint8), 'cam', T0)
    bad.encoding = 'yuv422_nonsense'
    publish_until(lambda: pub['image'].publish(bad),
                  lambda: view.rejected.get('camera/image_raw'),
                  what='the view counting an image with an unknown encoding as rejected')
    view.log_scores([{'stamp': predicted, 'truth': np.zeros((64, 64, 3), np.uint8),
                      'predicted': np.zeros((64, 64, 3), np.uint8), 'psnr': 27.5,
                      'psnr_last_frame': 19.0}])
    view.recording.close()

    table = read_rrd(path)
    assert set(table['stamp'].astype('int64')) == set(frames) | {predicted}
    for entity, component in (('world/camera/rgb', 'Image:buffer'),
                              ('world/camera/depth', 'DepthImage:buffer'),
                              ('world/camera', 'Transform3D:translation')):
        assert stamps(table, entity, component) == set(frames), entity
    assert rows(table, 'world/camera', 'Pinhole:image_from_camera') == 1   # K never changed
    at_prediction = table[table['stamp'].astype('int64') == predicted].iloc[0]
    # The first predicted base pose composed with the default camera mount.
    assert np.allclose(at_prediction['/world/prediction:Transform3D:translation'][0],
                       (pose(2.5) @ extrinsics_matrix(DEFAULT_EXTRINSICS))[:3, 3])
    assert len(at_prediction['/world/predicted_path:LineStrips3D:strips'][0]) == 2
    assert at_prediction['/metrics/psnr:Scalars:scalars'][0] == 27.5
    assert rows(table, 'scored/predicted', 'Image:buffer') == 1
    newest = table[table['stamp'].astype('int64') == frames[-1]].iloc[0]
    assert len(newest['/world/memory:Points3D:positions']) == 50          # subsampled
    assert len(newest['/world/keyframes:Arrows3D:vectors']) == 3
    assert newest['/metrics/latency_ms:Scalars:scalars'][0] == 850
    assert newest['/metrics/memory_points:Scalars:scalars'][0] == 12345
    assert stamps(table, 'world/camera/rgb', 'Image:buffer') == set(frames)  # not the bad one


def test_without_rerun_the_view_is_off_with_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, 'rerun', None)       # `import rerun` now fails
    lines = []
    assert open_recording(tmp_path / 'demo.rrd', 0, lines.append) is None
    assert lines == [MISSING_MESSAGE] and not (tmp_path / 'demo.rrd').exists()
    assert cli.main(['view', '--port', str(free_port_pair())]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == MISSING_MESSAGE and captured.err == ''


def test_a_port_in_use_is_a_clear_error(capsys):
    port = free_port_pair()
    with socket.socket() as taken:
        taken.bind(('0.0.0.0', port))
        taken.listen()
        assert cli.main(['view', '--port', str(port)]) == 1
    error = capsys.readouterr().err
    assert f'port {port}' in error and 'in use' in error and '--port' in error
    assert cli.main(['view', '--port', '70000']) == 1
    assert 'port 70000 is not a TCP port' in capsys.readouterr().err


@pytest.mark.slow
def test_mowm_view_serves_the_viewer_that_chromium_renders(ros, tmp_path):
    port, path = free_port_pair(), tmp_path / 'view.rrd'
    log = tmp_path / 'view.log'
    with open(log, 'w') as out:
        process = subprocess.Popen([sys.executable, '-m', 'mowm_ros.cli', 'view', '--port',
                                    str(port), '--rrd', str(path)], env=ros.subprocess_env(),
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        url = wait_for(lambda: next((line.split(' at ')[1].split()[0]
                                     for line in log.read_text().splitlines()
                                     if 'viewer is at http' in line), None), 60, 0.1,
                       what=lambda: f'mowm view printing its URL:\n{log.read_text()}')
        assert url.startswith(f'http://localhost:{port}/')
        page = urllib.request.urlopen(url, timeout=10).read().decode()
        assert 'rerun' in page.lower()
        image_pub = publishers(ros.node('fake_camera'))['image']
        colour = np.zeros((64, 64, 3), np.uint8)
        colour[:] = MAGENTA
        sent = []

        def publish_frame():
            sent.append(T0 + len(sent) * STEP)
            image_pub.publish(conversions.rgb_to_image(colour, 'cam', sent[-1]))
        ros.node('camera_timer').create_timer(0.25, publish_frame)

        def magenta_shown(image):
            hits = np.all(np.abs(image.astype(int) - MAGENTA) < 40, axis=-1)
            return hits.sum() > 2000
        with HeadlessBrowser(url) as browser:
            try:
                shot = browser.wait_for(magenta_shown, timeout_s=60)
            except TimeoutError:
                last = browser.screenshot_png()
                (tmp_path / 'viewer.png').write_bytes(last)
                raise AssertionError(f'the viewer never showed the camera frame: '
                                     f'{tmp_path / "viewer.png"}\n{log.read_text()}')
        # Rendered, not blank: the UI, the 3D view and the image give many colours.
        assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert 'view: stopped after logging' in log.read_text()
    assert rows(read_rrd(path), 'world/camera/rgb', 'Image:buffer') >= 1
