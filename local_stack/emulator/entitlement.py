"""Who may do what: the controller's implicit entitlement rules (openwhisk-api.md sections 3, 4, 11, 12).

Owners may do anything in their namespace. Another namespace may only read published packages
(never a binding) and read or invoke the actions inside them; everything else is a 403 naming the
resource as `ns/name`. A package missing from someone else's namespace is a 403 too, not a 404,
so nothing leaks.
"""

from __future__ import annotations

from .entities import Package
from .errors import NOT_FOUND, ApiError, not_authorized
from .identities import Identity
from .store import Store


def require_owner(identity: Identity, namespace: str, resource: str) -> None:
    if identity.namespace != namespace:
        raise ApiError(403, not_authorized(resource))


def check_package_read(store: Store, identity: Identity, namespace: str, name: str) -> None:
    """May `identity` read package (or binding) `namespace/name`? Raises 403, 404 or 409 if not."""
    if not _may_read(store, identity, namespace, name, identity.namespace == namespace):
        raise ApiError(403, not_authorized(f"{namespace}/{name}"))


def _may_read(store: Store, identity: Identity, namespace: str, name: str, is_owner: bool) -> bool:
    try:
        pkg = store.get(f"{namespace}/{name}", Package)
    except ApiError:
        if is_owner:
            raise
        return False
    if pkg is None:
        if is_owner:
            raise ApiError(404, NOT_FOUND)
        return False
    if pkg.binding is None:
        return pkg.publish or is_owner
    if not is_owner:
        return False
    target = pkg.binding
    return _may_read(store, identity, target.namespace, target.name, target.namespace == identity.namespace)
