"""The emulator's optional state file: entities survive a restart (`--state-file PATH`).

`./deploy.sh --local` stops the emulator on Ctrl-C and starts it again on the next run; without this
the user's packages, actions, triggers and rules would be gone. Only entities are kept (with their
parameters, annotations, versions, update times and the triggers' rule links): activations, fires,
limits and faults are run-time state, as a restarted controller's caches would be.

Writes are debounced (a burst of PUTs makes one write) and atomic (a temp file in the same folder,
fsync, rename), so a kill at any moment leaves either the old or the new file, never a torn one.
The final write happens on shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from .entities import Action, Entity, EntityRef, Exec, Package, Rule, RuleLink, Trigger
from .store import Store

log = logging.getLogger(__name__)
FORMAT = 1
SAVE_DELAY_S = 0.2


class StateFileError(ValueError):
    """The state file cannot be read as emulator state; the message names the file."""


# ---- one entity <-> one JSON object ------------------------------------------------------------

def _ref(ref: EntityRef | None) -> dict[str, str] | None:
    return ref.as_json() if ref is not None else None


def _unref(value: dict[str, str] | None) -> EntityRef | None:
    return EntityRef(value["path"], value["name"]) if value is not None else None


def entity_to_state(entity: Entity) -> dict[str, Any]:
    """Every field of the entity, tagged with its kind (not the API's JSON: that hides some fields)."""
    common = {"namespace": entity.namespace, "name": entity.name, "version": entity.version,
              "publish": entity.publish, "annotations": entity.annotations, "updated": entity.updated}
    if isinstance(entity, Package):
        return {"kind": "package", **common, "parameters": entity.parameters, "binding": _ref(entity.binding)}
    if isinstance(entity, Action):
        exec_ = {"kind": entity.exec.kind, "code": entity.exec.code, "binary": entity.exec.binary,
                 "main": entity.exec.main}
        return {"kind": "action", **common, "parameters": entity.parameters, "limits": entity.limits,
                "exec": exec_}
    if isinstance(entity, Trigger):
        rules = None if entity.rules is None else {
            name: {"action": link.action.as_json(), "status": link.status} for name, link in entity.rules.items()}
        return {"kind": "trigger", **common, "parameters": entity.parameters, "limits": entity.limits,
                "rules": rules}
    return {"kind": "rule", **common, "trigger": entity.trigger.as_json(), "action": entity.action.as_json()}


def entity_from_state(doc: dict[str, Any]) -> Entity:
    kind = doc["kind"]
    common = {k: doc[k] for k in ("namespace", "name", "version", "publish", "annotations", "updated")}
    if kind == "package":
        return Package(**common, parameters=doc["parameters"], binding=_unref(doc["binding"]))
    if kind == "action":
        return Action(**common, parameters=doc["parameters"], limits=doc["limits"], exec=Exec(**doc["exec"]))
    if kind == "trigger":
        rules = None if doc["rules"] is None else {
            name: RuleLink(EntityRef(**link["action"]), link["status"]) for name, link in doc["rules"].items()}
        return Trigger(**common, parameters=doc["parameters"], limits=doc["limits"], rules=rules)
    if kind == "rule":
        return Rule(**common, trigger=EntityRef(**doc["trigger"]), action=EntityRef(**doc["action"]))
    raise ValueError(f"unknown entity kind {kind!r}")


def dump(store: Store) -> dict[str, Any]:
    """The store's entities, oldest write first (so a load keeps the list order of same-ms updates)."""
    return {"format": FORMAT, "entities": [entity_to_state(e) for e in store.entities_in_write_order()]}


def load(store: Store, data: dict[str, Any]) -> int:
    """Puts the saved entities into the store; returns how many."""
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entities"), list):
        raise ValueError(f"not emulator state of format {FORMAT}")
    entities = [entity_from_state(doc) for doc in data["entities"]]
    for entity in entities:
        store.put(entity)
    return len(entities)


# ---- the file ----------------------------------------------------------------------------------

def write_atomically(path: Path, text: str) -> None:
    """Temp file next to `path`, fsync, rename: readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)  # actions' parameters may hold secrets (messagingWeb's do)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StateFile:
    """Binds a store to a file: loads it once, then saves after every change (debounced) and on close."""

    def __init__(self, path: Path, store: Store, delay_s: float = SAVE_DELAY_S) -> None:
        self.path = path
        self.store = store
        self.delay_s = delay_s
        self._pending: asyncio.TimerHandle | None = None

    def load(self) -> int:
        """The saved entities into the store (0 when there is no file yet); then watches for changes."""
        count = 0
        if self.path.exists():
            try:
                count = load(self.store, json.loads(self.path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise StateFileError(f"{self.path} is not a readable emulator state file ({e}); "
                                     "move it away to start empty") from e
        self.store.on_change = self.schedule_save
        return count

    def schedule_save(self) -> None:
        """Called by the store on every change; one write per burst, after `delay_s`."""
        if self._pending is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): write now
            self.save()
            return
        self._pending = loop.call_later(self.delay_s, self._save_pending)

    def _save_pending(self) -> None:
        self._pending = None
        self.save()

    def save(self) -> None:
        try:
            write_atomically(self.path, json.dumps(dump(self.store), separators=(",", ":")))
        except OSError:
            log.exception("could not save the emulator state to %s (will retry on the next change)", self.path)

    def close(self) -> None:
        """The last write, if one is pending: called on shutdown."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
            self.save()
