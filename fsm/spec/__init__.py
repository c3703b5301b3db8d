"""The protocol spec: loader, typed model and load-time checks.

The protocol itself is data in ``fsm/protocol/``; this package reads it.
"""

from fsm.spec.loader import load_spec
from fsm.spec.model import MachineSpec, OperationSpec, Spec

__all__ = ["MachineSpec", "OperationSpec", "Spec", "load_spec"]
