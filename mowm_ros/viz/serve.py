"""The Rerun web viewer served over HTTP from this machine, fed live by a recording."""

import errno
import socket
from urllib.parse import quote

from mowm_ros.viz.recording import WorldModelRecording


def check_port(port, host):
    """Raise ValueError naming ``port`` when it cannot be bound on ``host``."""
    if not 0 < int(port) < 65536:
        raise ValueError(f'port {port} is not a TCP port (1-65535)')
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            why = 'in use' if exc.errno == errno.EADDRINUSE else exc.strerror
            raise ValueError(f'port {port} on {host} cannot be used ({why}); '
                             'pick another with --port') from exc


def viewer_url(port, grpc_uri):
    return f'http://localhost:{port}/?url={quote(grpc_uri, safe="")}'


def serve_recording(rr, port, rrd_path=None, **recording_options):
    """
    Start a recording served live and the web viewer on ``port`` (its data on ``port + 1``).

    Return (recording, URL of the viewer). The viewer ships inside rerun-sdk (no internet);
    both servers stop with the process or when the recording is closed.
    """
    grpc_port = int(port) + 1
    check_port(port, '0.0.0.0')          # Rerun's web server binds every interface
    check_port(grpc_port, '127.0.0.1')
    recording = WorldModelRecording(rr, rrd_path=rrd_path, grpc_port=grpc_port,
                                    **recording_options)
    try:
        rr.serve_web_viewer(web_port=int(port), open_browser=False,
                            connect_to=recording.grpc_uri)
    except RuntimeError as exc:
        recording.close()
        raise ValueError(f'cannot serve the viewer on port {port}: {exc}') from exc
    return recording, viewer_url(port, recording.grpc_uri)
