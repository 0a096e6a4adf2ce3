"""The interface every policy implements, and the registry the CLI picks from."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

from homenode.errors import InputError
from homenode.model import Decision, Snapshot
from homenode.settings import Settings


class Policy(Protocol):
    """Pure decision code: a snapshot in, a decision (actions + what was considered) out.

    A policy may keep memory between calls (when it last rebalanced, cool-downs), but
    never reads the clock or the OS: time comes from ``snapshot.time``.
    """

    name: str

    def decide(self, snap: Snapshot) -> Decision: ...


_REGISTRY: dict[str, Callable[[Settings], Policy]] = {}


def register(name: str) -> Callable:
    def wrap(factory: Callable[[Settings], Policy]) -> Callable[[Settings], Policy]:
        _REGISTRY[name] = factory
        return factory
    return wrap


# The built-in policies, each in the module of its name (imported on first use).
BUILTIN = ("autonuma", "esxi", "numad", "optimal", "static")


def policy_names() -> list[str]:
    return sorted(set(BUILTIN) | set(_REGISTRY))


def make_policy(name: str, settings: Settings | None = None) -> Policy:
    if name not in _REGISTRY and name in BUILTIN:
        importlib.import_module(f"homenode.policy.{name}")   # registers it
    if name not in _REGISTRY:
        raise InputError("--policy", name,
                         f"unknown policy; choose from {', '.join(policy_names())}")
    return _REGISTRY[name](settings or Settings())
