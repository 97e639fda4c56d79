"""In-memory storage of entities and activations.

Entities share one document-id space per namespace, as in the controller's database: a trigger
and an action may not have the same name, and reading one through the other's collection is a
409 conformance error. Activations are kept per namespace, newest last, bounded in number.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from .entities import Action, Activation, Entity, Package, Rule, Trigger
from .errors import CONFORMANCE, ApiError

E = TypeVar("E", Package, Action, Trigger, Rule)


class Store:
    def __init__(self, activations_per_namespace_max: int) -> None:
        self._docs: dict[str, Entity] = {}
        self._written: dict[str, int] = {}  # docid -> write sequence, orders entities updated in the same ms
        self._writes = itertools.count()
        self._activations: dict[str, OrderedDict[str, Activation]] = {}
        self._activations_max = activations_per_namespace_max
        self.on_change: Callable[[], None] | None = None  # set by a state file (persistence.py)

    # ---- entities ----

    def get(self, docid: str, kind: type[E]) -> E | None:
        """The entity with this id, None if absent; 409 if the id belongs to another collection."""
        doc = self._docs.get(docid)
        if doc is None:
            return None
        if not isinstance(doc, kind):
            raise ApiError(409, CONFORMANCE)
        return doc

    def get_trigger_fast(self, docid: str) -> Trigger | Entity | None:
        """The fire path's lookup: no type check here, the caller checks."""
        return self._docs.get(docid)

    def put(self, entity: Entity) -> None:
        self._docs[entity.docid] = entity
        self._written[entity.docid] = next(self._writes)
        self.changed()

    def delete(self, docid: str) -> None:
        self._docs.pop(docid, None)
        self._written.pop(docid, None)
        self.changed()

    def changed(self) -> None:
        """An entity changed in place (a rule link on its trigger) or through put/delete: tell the state file."""
        if self.on_change is not None:
            self.on_change()

    def entities_in_write_order(self) -> list[Entity]:
        return sorted(self._docs.values(), key=lambda d: self._written.get(d.docid, 0))

    def list(self, kind: type[E], namespace: str, include_nested: bool = False) -> list[E]:
        """Entities of one kind whose namespace is `namespace` (or below it), newest update first."""
        prefix = namespace + "/"
        found = [d for d in self._docs.values() if isinstance(d, kind)
                 and (d.namespace == namespace or (include_nested and d.namespace.startswith(prefix)))]
        found.sort(key=lambda d: (d.updated, self._written.get(d.docid, 0)), reverse=True)
        return found

    def clear_entities(self) -> None:
        self._docs.clear()
        self._written.clear()
        self.changed()

    # ---- activations ----

    def add_activation(self, activation: Activation) -> None:
        per_ns = self._activations.setdefault(activation.namespace, OrderedDict())
        per_ns[activation.activation_id] = activation
        while len(per_ns) > self._activations_max:
            per_ns.popitem(last=False)

    def get_activation(self, namespace: str, activation_id: str) -> Activation | None:
        return self._activations.get(namespace, {}).get(activation_id)

    def list_activations(self, namespace: str) -> list[Activation]:
        """Newest first (by start time, then by arrival)."""
        found = list(reversed(self._activations.get(namespace, {}).values()))
        found.sort(key=lambda a: a.start, reverse=True)
        return found

    def clear_activations(self) -> None:
        self._activations.clear()
