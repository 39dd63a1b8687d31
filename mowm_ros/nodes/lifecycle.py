"""
The managed (lifecycle) node the mowm_ros nodes share: what each transition does.

- constructed (``unconfigured``): parameters declared (``parameters.Spec``), nothing else;
- configure: parameters read and validated, ``configure(params)`` of the node (load the model,
  create publishers, subscriptions and services); an exception there makes the transition
  return FAILURE with the reason logged (``failure``) and what was made is released, so the
  node stays ``unconfigured`` and can be configured again;
- activate: lifecycle publishers enabled and ``activate()`` (timers); input is taken;
- deactivate: timers stopped, and a timer callback already running (on another executor
  thread) finishes before anything else happens, so nothing a timer does follows the
  transition; ``deactivate()``, publishers disabled; input is ignored and counted in
  ``inputs_ignored``; what the node holds is kept;
- cleanup: ``release()``: everything made at configure is dropped;
- shutdown (from any state): deactivated, ``finish()`` (the world model saves its memory),
  released.

The node's ``autostart`` parameter (default true) makes ``runtime.run_nodes`` configure and
activate it at start, as a standalone ``ros2 run`` expects; set it false where a lifecycle
manager (Nav2's) drives the transitions.
"""

import threading

from mowm_ros.nodes import parameters as node_parameters
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.service import Service
from rclpy.subscription import Subscription

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
TIMER_DRAIN_S = 30.0    # longest wait at deactivate for timer callbacks still running


class ManagedNode(LifecycleNode):

    def __init__(self, name, specs, **kwargs):
        super().__init__(name, **kwargs)
        self.specs = specs
        self.declare_parameter('autostart', True, ParameterDescriptor(
            description='configure and activate at start; false: wait for a lifecycle manager',
            read_only=True))
        self._refused = node_parameters.declare(self, specs)
        self.params = None                  # the values read at configure
        self.configured = False
        self.active = False
        self.failure = None                 # why the last transition failed
        self.inputs_ignored = 0             # messages that arrived while inactive
        self._made = []                     # publishers, subscriptions, services of configure
        self._timers = []                   # timers of activate
        self._ticking = threading.Condition()
        self._ticks_running = set()         # threads inside a timer callback now
        self.add_on_set_parameters_callback(
            node_parameters.live_setter(specs, lambda: self.params))

    # --- hooks of the nodes --------------------------------------------------------------
    def configure(self, params):
        """Make what the node needs from ``params``; raise to fail the transition."""

    def activate(self):
        """Start the node's timers (``make_timer``; they stop at deactivate)."""

    def deactivate(self):
        """After the timers are stopped: wait for work in flight."""

    def finish(self):
        """Last work at shutdown, before ``release`` (the world model saves its memory)."""

    def release(self):
        """Drop what ``configure`` made; must work after a configure that failed half way."""

    # --- what configure and activate make ----------------------------------------------------
    def make_publisher(self, *args, **kwargs):
        """Make a lifecycle publisher (silent unless active), destroyed at cleanup."""
        return self.keep(self.create_lifecycle_publisher(*args, **kwargs))

    def make_subscription(self, msg_type, topic, callback, qos, **kwargs):
        """Subscribe; messages are taken only while active; destroyed at cleanup."""
        return self.keep(self.create_subscription(
            msg_type, topic, self.when_active(callback), qos, **kwargs))

    def make_service(self, *args, **kwargs):
        """Make a service (answering while configured), destroyed at cleanup."""
        return self.keep(self.create_service(*args, **kwargs))

    def make_timer(self, period_s, callback, **kwargs):
        """Make a timer on the node's clock, running while active (made in ``activate``)."""
        def tick_while_active():
            with self._ticking:
                if not self.active:
                    return
                self._ticks_running.add(threading.get_ident())
            try:
                callback()
            finally:
                with self._ticking:
                    self._ticks_running.discard(threading.get_ident())
                    self._ticking.notify_all()

        timer = self.create_timer(period_s, tick_while_active, **kwargs)
        self._timers.append(timer)
        return timer

    def _drain_ticks(self):
        """Wait for timer callbacks running on other threads (not this one) to return."""
        me = threading.get_ident()
        with self._ticking:
            if not self._ticking.wait_for(lambda: not (self._ticks_running - {me}),
                                          TIMER_DRAIN_S):
                self.get_logger().warning(
                    f'a timer callback still runs {TIMER_DRAIN_S:g} s after deactivate')

    def keep(self, entity):
        """Destroy ``entity`` (a publisher, subscription or service) at cleanup."""
        self._made.append(entity)
        return entity

    def _destroy_made(self):
        for timer in self._timers:
            self.destroy_timer(timer)
        self._timers = []
        for entity in reversed(self._made):
            if isinstance(entity, LifecyclePublisher):
                self.destroy_lifecycle_publisher(entity)
            elif isinstance(entity, Publisher):
                self.destroy_publisher(entity)
            elif isinstance(entity, Subscription):
                self.destroy_subscription(entity)
            elif isinstance(entity, Service):
                self.destroy_service(entity)
        self._made = []

    def now_s(self):
        """
        Return the node clock in seconds: ROS time, /clock under use_sim_time.

        Every age, period and timeout of the nodes is measured on it, so they agree with the
        stamps.
        """
        return self.get_clock().now().nanoseconds * 1e-9

    # --- input ---------------------------------------------------------------------------
    def when_active(self, callback):
        """Wrap an input callback: while the node is not active the message is counted only."""
        def taken_when_active(*messages):
            if not self.active:
                self.inputs_ignored += 1
                return None
            return callback(*messages)
        return taken_when_active

    # --- transitions ---------------------------------------------------------------------
    def on_configure(self, state):
        try:
            self.params = node_parameters.read(self, self.specs, self._refused)
            self.configure(self.params)
        except Exception as exc:  # noqa: B902 - any failure fails the transition, named
            self.failure = str(exc) if isinstance(exc, (ValueError, OSError)) \
                else f'{type(exc).__name__}: {exc}'
            self.get_logger().error(f'configure failed: {self.failure}')
            self._release()
            return FAILURE
        self.failure = None
        self.configured = True
        return SUCCESS

    def on_activate(self, state):
        result = super().on_activate(state)       # enables the lifecycle publishers
        self.activate()
        self.active = True
        return result

    def on_deactivate(self, state):
        with self._ticking:
            self.active = False             # no timer callback starts after this
        for timer in self._timers:
            self.destroy_timer(timer)
        self._timers = []
        self._drain_ticks()
        self.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        self._release()
        return SUCCESS

    def on_shutdown(self, state):
        if self.active:
            self.on_deactivate(state)
        if self.configured:
            self.finish()
        self._release()
        return SUCCESS

    def on_error(self, state):
        self.active = False
        self._release()
        return SUCCESS

    def _release(self):
        self.release()
        self._destroy_made()
        self.params = None
        self.configured = False

    def close(self):
        """Shut the node down (from whatever state it is in); used before destroy_node."""
        if not (self.configured or self.active):
            return
        if self.context.ok():
            self.trigger_shutdown()
        if self.configured:            # the context is gone (Ctrl-C): no state machine left
            self.on_shutdown(None)

    def destroy_node(self):
        # rclpy's LifecycleNode leaves its state machine holding the node handle, so the DDS
        # participant outlives the context (its nodes stay in the graph): destroy it too.
        self._state_machine.destroy_when_not_in_use()
        super().destroy_node()

    def start(self):
        """Configure and activate; raise ValueError with the reason when configure fails."""
        if self.trigger_configure() != SUCCESS:
            raise ValueError(self.failure or 'configure failed')
        if self.trigger_activate() != SUCCESS:
            raise ValueError(self.failure or 'activate failed')
        return self


def autostart(node):
    """Configure and activate ``node`` when it is managed and its ``autostart`` is true."""
    if isinstance(node, ManagedNode) and node.get_parameter('autostart').value:
        node.start()
    return node
