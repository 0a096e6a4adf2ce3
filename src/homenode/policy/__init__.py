"""Decision code: snapshot in, actions out.  Importing this package registers them all."""

from homenode.policy import autonuma as _autonuma  # noqa: F401
from homenode.policy import esxi as _esxi  # noqa: F401
from homenode.policy import numad as _numad  # noqa: F401
from homenode.policy import optimal as _optimal  # noqa: F401
from homenode.policy import static as _static  # noqa: F401
from homenode.policy.base import Policy, make_policy, policy_names

__all__ = ["Policy", "make_policy", "policy_names"]
