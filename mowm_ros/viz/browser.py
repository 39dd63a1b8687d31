"""
Screenshots of a web page in headless Chromium, for the viewer's test and the README image.

Chromium is driven over its DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON
messages ending in NUL on file descriptors 3 and 4), so nothing beyond the Debian package
``chromium`` is needed. WebGL runs on SwiftShader (CPU), as there is no GPU.
"""

import base64
import io
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

import numpy as np
from PIL import Image

CANDIDATES = ('chromium', 'chromium-browser', 'google-chrome')


def find_chromium():
    """Path of a Chromium executable, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class HeadlessBrowser:
    """One headless Chromium showing ``url``; ``screenshot()`` returns an (H, W, 3) uint8."""

    def __init__(self, url, size=(1280, 800), executable=None, reply_timeout_s=30.0):
        executable = executable or find_chromium()
        if executable is None:
            raise FileNotFoundError('no Chromium found (Debian: apt-get install chromium; '
                                    '`make setup` installs it as root)')
        self.reply_timeout_s = reply_timeout_s
        self.profile = tempfile.TemporaryDirectory(prefix='mowm-chromium-')
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()

        # Chromium reads commands on fd 3 and writes replies on fd 4: the shell puts the
        # pipe's ends there and execs it (no preexec_fn: this process runs threads; bash, as
        # dash takes one-digit descriptors only).
        arguments = ['--headless=new', '--no-sandbox', '--remote-debugging-pipe',
                     '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--no-first-run',
                     '--disable-extensions', '--mute-audio', f'--window-size={size[0]},{size[1]}',
                     f'--user-data-dir={self.profile.name}', url]
        self.process = subprocess.Popen(
            ['bash', '-c', f'exec "$0" "$@" 3<&{commands_read} 4>&{replies_write}', executable,
             *arguments], pass_fds=(commands_read, replies_write), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands_read)
        os.close(replies_write)
        self._next_id = 0
        self._buffer = b''
        try:
            pages = [t for t in self.call('Target.getTargets')['targetInfos']
                     if t['type'] == 'page']
            if not pages:
                raise RuntimeError(f'Chromium opened no page for {url}')
            self.session = self.call('Target.attachToTarget', targetId=pages[0]['targetId'],
                                     flatten=True)['sessionId']
        except BaseException:
            self.close()
            raise

    def call(self, method, session=None, **params):
        """Send one DevTools command and return its result (events in between are skipped)."""
        self._next_id += 1
        message = {'id': self._next_id, 'method': method, 'params': params}
        if session is not None:
            message['sessionId'] = session
        os.write(self._commands, json.dumps(message).encode() + b'\0')
        deadline = time.monotonic() + self.reply_timeout_s
        while True:
            while b'\0' not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                    raise TimeoutError(f'Chromium did not answer {method} within '
                                       f'{self.reply_timeout_s:.0f} s')
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise RuntimeError(f'Chromium exited (status {self.process.poll()}) '
                                       f'during {method}')
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b'\0', 1)
            reply = json.loads(raw)
            if reply.get('id') == self._next_id:
                if 'error' in reply:
                    raise RuntimeError(f'Chromium: {method} failed: {reply["error"]}')
                return reply['result']

    def screenshot_png(self):
        result = self.call('Page.captureScreenshot', session=self.session, format='png')
        return base64.b64decode(result['data'])

    def screenshot(self):
        return np.asarray(Image.open(io.BytesIO(self.screenshot_png())).convert('RGB'))

    def wait_for(self, ready, timeout_s, period_s=0.5):
        """Screenshot until ``ready(image)``; return that image, or raise TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while True:
            image = self.screenshot()
            if ready(image):
                return image
            if time.monotonic() > deadline:
                raise TimeoutError(f'the page did not get ready within {timeout_s:.0f} s')
            time.sleep(period_s)

    def close(self):
        for fd in (self._commands, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.profile.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
