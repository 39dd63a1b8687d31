"""
Node parameters written once: a ``Spec`` per parameter gives its default, description and limits.

From the same spec come the ParameterDescriptor the node declares (description, range,
``read_only`` for the start-up-only ones, so ``ros2 param describe`` explains each) and the
check run when the node is configured and when a live parameter is set. Defaults are taken
from the config dataclasses (``default_of``), so a node and its library agree on them.
"""

from dataclasses import dataclass, fields
import math
import sys

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)


@dataclass(frozen=True)
class Spec:
    default: object
    description: str
    minimum: float = None       # value >= minimum
    positive: bool = False      # value > 0
    maximum: float = None       # value <= maximum
    live: bool = False          # may change while the node runs; else read only
    choices: tuple = None       # the allowed values (or, for a list, the allowed items)
    check: object = None        # callable(value) -> reason it is invalid, or None

    def descriptor(self):
        kind = type(self.default)
        descriptor = ParameterDescriptor(description=self.description, read_only=not self.live,
                                         dynamic_typing=kind is float)
        low = self.minimum if self.minimum is not None else (0 if self.positive else None)
        constraints = []
        if self.positive:
            constraints.append('> 0')
        elif self.minimum is not None:
            constraints.append(f'>= {self.minimum}')
        if self.maximum is not None:
            constraints.append(f'<= {self.maximum}')
        if self.choices:
            constraints.append(f'one of {list(self.choices)}')
        descriptor.additional_constraints = ', '.join(constraints)
        if low is not None and kind is int:
            descriptor.integer_range = [IntegerRange(
                from_value=int(low), to_value=int(self.maximum or sys.maxsize), step=0)]
        elif low is not None and kind is float:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(low), to_value=float(self.maximum or sys.float_info.max),
                step=0.0)]
        return descriptor

    def problem(self, name, value):
        """Return why ``value`` is not valid for parameter ``name``, or None when it is."""
        kind = type(self.default)
        if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f'{name} must be a number, got {value!r}'
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind in (int, float) and number:
            if not math.isfinite(value):
                return f'{name} must be finite, got {value}'
            if self.minimum is not None and value < self.minimum:
                return f'{name} must be >= {self.minimum}, got {value}'
            if self.positive and not value > 0:
                return f'{name} must be > 0, got {value}'
            if self.maximum is not None and value > self.maximum:
                return f'{name} must be <= {self.maximum}, got {value}'
        if self.choices is not None:
            items = list(value) if isinstance(self.default, list) else [value]
            if not set(items) <= set(self.choices) or (isinstance(self.default, list)
                                                       and not items):
                what = 'a non-empty subset of' if isinstance(self.default, list) else 'one of'
                return f'{name} must be {what} {list(self.choices)}, got {value!r}'
        return self.check(name, value) if self.check is not None else None


def check_by(function):
    """Make a Spec check of ``function(value, name)``, which raises ValueError if bad."""
    def check(name, value):
        try:
            function(value, name)
        except ValueError as exc:
            return str(exc)
        return None
    return check


def default_of(config_class, field_name):
    """Return the default of ``field_name`` in dataclass ``config_class`` (one source)."""
    for field in fields(config_class):
        if field.name == field_name:
            return field.default
    raise KeyError(f'{config_class.__name__} has no field {field_name}')


def declare(node, specs):
    """
    Declare every parameter of ``specs`` on ``node``; return {name: reason} of refused overrides.

    A value outside a declared range is refused by rclpy; the parameter is then declared with
    its default and the reason kept, so that configuring the node fails naming it (instead of
    the constructor raising, which would take a managed node's process down).
    """
    refused = {}
    for name, spec in specs.items():
        descriptor = spec.descriptor()
        try:
            node.declare_parameter(name, spec.default, descriptor)
        except Exception as exc:  # noqa: B902 - rclpy raises several types for a bad override
            override = getattr(node, '_parameter_overrides', {}).get(name)
            refused[name] = (override is not None and spec.problem(name, override.value)) \
                or f'{name}: {exc}'
            node.declare_parameter(name, spec.default, descriptor, ignore_override=True)
    return refused


def read(node, specs, refused=None):
    """Return {name: value} of ``specs`` on ``node``; raise ValueError naming a bad one."""
    for reason in (refused or {}).values():
        raise ValueError(f'invalid parameter: {reason} (out of its declared range)')
    values = {name: node.get_parameter(name).value for name in specs}
    for name, value in values.items():
        reason = specs[name].problem(name, value)
        if reason:
            raise ValueError(f'invalid parameter: {reason}')
        if type(specs[name].default) is float:
            values[name] = float(value)
    return values


def live_setter(specs, values):
    """
    Return an on-set-parameters callback: values are checked, live ones applied to ``values()``.

    Start-up-only parameters are read only (rclpy refuses them); parameters not in ``specs``
    (``use_sim_time``) are left to rclpy.
    """
    def on_set(parameters):
        for parameter in parameters:
            spec = specs.get(parameter.name)
            if spec is None:
                continue
            reason = spec.problem(parameter.name, parameter.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for parameter in parameters:
            spec = specs.get(parameter.name)
            applied = values()
            if spec is not None and spec.live and applied is not None:
                applied[parameter.name] = float(parameter.value) \
                    if type(spec.default) is float else parameter.value
        return SetParametersResult(successful=True)
    return on_set
