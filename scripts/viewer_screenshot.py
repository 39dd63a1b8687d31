"""
Take the README's screenshot of the Rerun viewer during the demo.

    .venv/bin/python scripts/viewer_screenshot.py [--out docs/images/demo_viewer.png]
        [--port 9090] [--seconds 90]

Runs ``mowm demo --live --view`` (into a temporary directory); after ``--seconds`` of demo it
opens the viewer in headless Chromium (late: the software-rendered browser would otherwise
take CPU from the demo, and the viewer gets everything logged so far), takes the screenshot
once the viewer has drawn the scene and ends the demo with Ctrl-C (SIGINT).
"""

import argparse
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import time

from mowm_ros.viz.browser import HeadlessBrowser
import numpy as np

DRAWN_COLOURS = 2000     # the loading page has a handful; images and the cloud give thousands


def wait_for_url(log_path, process, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in log_path.read_text().splitlines():
            if 'viewer is at http' in line:
                return line.split(' at ', 1)[1].split()[0]
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f'the demo printed no viewer URL:\n{log_path.read_text()[-3000:]}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='docs/images/demo_viewer.png')
    parser.add_argument('--port', type=int, default=9090)
    parser.add_argument('--seconds', type=float, default=90.0,
                        help='demo time before the screenshot')
    parser.add_argument('--settle', type=float, default=10.0,
                        help='seconds between the viewer drawing and the screenshot')
    parser.add_argument('--size', type=int, nargs=2, default=(1600, 1000))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='mowm-demo-') as tmp:
        log_path = Path(tmp) / 'demo.log'
        with open(log_path, 'w') as log:
            demo = subprocess.Popen(
                [sys.executable, '-m', 'mowm_ros.cli', 'demo', '--live', '--view', '--port',
                 str(args.port), '--out', str(Path(tmp) / 'demo')],
                stdout=log, stderr=subprocess.STDOUT)
        try:
            url = wait_for_url(log_path, demo, timeout_s=120)
            print(f'viewer at {url}; opening it in {args.seconds:.0f} s')
            time.sleep(args.seconds)
            with HeadlessBrowser(url, size=args.size) as browser:
                browser.wait_for(lambda image: len(np.unique(image.reshape(-1, 3), axis=0))
                                 > DRAWN_COLOURS, timeout_s=120)
                time.sleep(args.settle)            # the last panels and the 3D view
                png = browser.screenshot_png()
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_bytes(png)
            print(f'wrote {args.out}')
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
    return 0


if __name__ == '__main__':
    sys.exit(main())
