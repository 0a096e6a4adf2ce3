"""Decision code: snapshot in, actions out.  The built-in policies are imported when
first asked for by name (``make_policy``), so a daemon running one policy never loads
the others (the oracle's MIP solver above all)."""

from homenode.policy.base import BUILTIN, Policy, make_policy, policy_names

__all__ = ["BUILTIN", "Policy", "make_policy", "policy_names"]
