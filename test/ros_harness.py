"""Real ROS 2 for tests: own Context and domain, executor in a thread, ordered teardown."""

import contextlib
import fcntl
import os
import tempfile
import threading
import time

from mowm_ros.geometry import wrap_angle
from mowm_ros.planning.paths import base_yaw

# Domain ids 0..101 avoid ephemeral-port clashes on Linux; 0 is left to people's own systems.
DOMAIN_IDS = range(1, 102)
LOCK_DIR = os.path.join(tempfile.gettempdir(), 'mowm_ros_test_domains')


@contextlib.contextmanager
def claim_domain_id():
    """
    Hold an exclusive lock on a free domain id for the duration of the block.

    Locks live in the temp directory, so pytest-xdist workers and concurrent test runs on the
    same machine never share a domain; a crashed holder's lock is released by the kernel.
    """
    os.makedirs(LOCK_DIR, exist_ok=True)
    start = (os.getpid() * 7) % len(DOMAIN_IDS)
    for offset in range(len(DOMAIN_IDS)):
        domain = DOMAIN_IDS[(start + offset) % len(DOMAIN_IDS)]
        handle = open(os.path.join(LOCK_DIR, f'{domain}.lock'), 'w')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield domain
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        return
    raise RuntimeError('no free ROS domain id for this test')


def wait_for(predicate, timeout=30.0, interval=0.01, what=None):
    """
    Poll ``predicate`` until it returns something true, and return that.

    Waits for an event, never for a time: after ``timeout`` seconds without the event it raises
    AssertionError saying what did not happen (``what``, or where the predicate was written).
    Timeouts are generous because they bound only the failing case: a passing test returns as
    soon as the event happens, however busy the machine is.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            if callable(what):
                what = what()
            if what is None:
                code = getattr(predicate, '__code__', None)
                where = f'{code.co_filename}:{code.co_firstlineno}' if code else repr(predicate)
                what = f'the condition at {where}'
            raise AssertionError(f'timed out after {timeout:g} s waiting for {what}')
        time.sleep(interval)


def publish_until(publish, predicate, what, timeout=60.0, every=0.05):
    """
    Call ``publish()`` every ``every`` seconds until ``predicate()`` is true; return its value.

    For best-effort topics (sensor data, cmd_vel), where one message may be lost: the test keeps
    sending until the receiver shows the effect, instead of sending once and hoping.
    """
    def shown():
        value = predicate()
        if not value:
            publish()
        return value
    return wait_for(shown, timeout=timeout, interval=every, what=f'{what} (while publishing)')


def yaw_turned(bases, yaw):
    """Return the yaw turned from ``yaw`` over base poses in order: unwrapped, step by step."""
    total = 0.0
    for base in bases:
        total += wrap_angle(base_yaw(base) - yaw)
        yaw = base_yaw(base)
    return total


class Inbox:
    """Keeps every message of the subscribed topics with its arrival time (monotonic)."""

    def __init__(self, node, topics):
        self.lock = threading.Lock()
        self.messages = {topic: [] for topic, _, _ in topics}
        for topic, msg_type, qos in topics:
            node.create_subscription(msg_type, topic, self._keep(topic), qos)

    def _keep(self, topic):
        def callback(msg):
            with self.lock:
                self.messages[topic].append((time.monotonic(), msg))
        return callback

    def get(self, topic, since=0.0):
        with self.lock:
            return [m for t, m in self.messages[topic] if t >= since]


class RosHarness:
    """An rclpy Context on its own domain with a MultiThreadedExecutor spinning in a thread."""

    def __init__(self, domain_id, num_threads=4):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        self.domain_id = domain_id
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.executor = MultiThreadedExecutor(num_threads=num_threads, context=self.context)
        self.nodes = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        from rclpy.executors import ExternalShutdownException
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def node(self, name, **kwargs):
        """Create a plain rclpy node in this context, spun by the executor."""
        from rclpy.node import Node
        return self.add(Node(name, context=self.context, **kwargs))

    def add(self, node, start=True):
        """
        Spin ``node`` in this context.

        A managed (lifecycle) node is configured and activated first unless ``start`` is false
        (a test that drives its transitions itself).
        """
        if start:
            from mowm_ros.nodes.lifecycle import ManagedNode
            if isinstance(node, ManagedNode):
                node.start()
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def subprocess_env(self):
        """Environment for a separate process that should join this test's domain."""
        env = dict(os.environ)
        env['ROS_DOMAIN_ID'] = str(self.domain_id)
        env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
        return env

    def close(self):
        import rclpy
        # Executor first, so no callback runs while its node is destroyed.
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=5.0)
        for node in reversed(self.nodes):
            close = getattr(node, 'close', None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


class LifecycleClient:
    """Drives a managed node through the standard lifecycle services, as a manager does."""

    def __init__(self, node, target, timeout=60.0):
        from lifecycle_msgs.srv import ChangeState, GetState

        self.timeout = timeout
        self._change = node.create_client(ChangeState, f'{target}/change_state')
        self._get = node.create_client(GetState, f'{target}/get_state')
        for client in (self._change, self._get):
            assert client.wait_for_service(timeout_sec=30.0), \
                f'lifecycle service {client.srv_name} not available'

    def _call(self, client, request):
        future = client.call_async(request)
        wait_for(future.done, timeout=self.timeout, what=f'an answer from {client.srv_name}')
        return future.result()

    def change(self, label):
        """Request the transition ``label`` (configure, activate, ...); return its success."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        return self._call(self._change, ChangeState.Request(
            transition=Transition(label=label))).success

    def state(self):
        from lifecycle_msgs.srv import GetState

        return self._call(self._get, GetState.Request()).current_state.label
