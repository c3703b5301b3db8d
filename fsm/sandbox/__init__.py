"""A stateful Bleepay sandbox served from the spec (issue 17).

``fsm.sandbox.app(...)`` is an ASGI app (``voucher-fsm serve`` runs it under uvicorn) answering every
in-scope call as the model predicts: one model a context, answered through
:meth:`fsm.Validator.predict`, the same prediction the validator judges with. It sits on top of the
library's public API; nothing in the library imports it (an import-linter contract).
"""

from fsm.sandbox.asgi import SandboxApp, app
from fsm.sandbox.core import FAULTS, Fault, Sandbox, convert

__all__ = ["FAULTS", "Fault", "Sandbox", "SandboxApp", "app", "convert"]
