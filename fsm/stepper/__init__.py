"""Stepper stage: each matched exchange steps the machines of the entities it names.

The model predicts every call's outcome (D16): accepted into a state, or refused with a code. An
entity's state is a set of *candidate* states: one state normally, several for an entity adopted
mid-flow (D18) whose past the log does not show. A prediction is judged only where every candidate
(and every value of a guard the log cannot decide) agrees, so adopted entities are never blamed for
their missing past. Refused calls never change the model.

The package, one concern a module (each imports only those above it in this list):

- :mod:`~fsm.stepper.refs`: where an exchange carries a value (read with :mod:`fsm.pointer`), and the
  readers references compile into at load;
- :mod:`~fsm.stepper.entities`: the entity store (find, adopt, settle, retire, related);
- :mod:`~fsm.stepper.coverage`: what a run exercised;
- :mod:`~fsm.stepper.call`: the exchange being stepped, as every check reads it;
- :mod:`~fsm.stepper.clock`: each input's clock (D19) and timed transitions (expiry, D2);
- :mod:`~fsm.stepper.predict`: three-valued outcomes, and the public :class:`Prediction`;
- :mod:`~fsm.stepper.terms`: values a call fixes and later calls must repeat;
- :mod:`~fsm.stepper.actors`: tokens and roles (D10);
- :mod:`~fsm.stepper.payments`: the token registry and payments (D14);
- :mod:`~fsm.stepper.lifecycle`: one machine step of an operation (D16);
- :mod:`~fsm.stepper.observe`: observations and independence (D17);
- :mod:`~fsm.stepper.core`: the :class:`Stepper`, dispatching each operation's keys to those checks,
  and :meth:`Stepper.predict`, the one prediction seam.

Everything an operation needs is compiled once, when the stepper is made: its checks, its steps
(:class:`~fsm.stepper.lifecycle.StepPlan`: references as readers, terms, and the
:class:`~fsm.stepper.lifecycle.Move` from every state whose outcomes nothing else decides) and its
observations (:class:`~fsm.stepper.observe.ObservePlan`). The hot path looks them up; it interprets
the spec only for what depends on the log (an entity adopted in several candidate states, a guard).
"""

from __future__ import annotations

from fsm.stepper.core import CHECKS, Stepper
from fsm.stepper.coverage import Coverage
from fsm.stepper.entities import Entity, Seen, history_location
from fsm.stepper.predict import Prediction

__all__ = ["CHECKS", "Coverage", "Entity", "Prediction", "Seen", "Stepper", "history_location"]
