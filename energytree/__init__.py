"""energytree: an energy manager for EV charging sites.

The library face: EVerest's energy types, the live manager and its ports, the planning core
(problem, plan, instant allocator) and the errors. Adapters and the optimiser live in the
``adapters`` and ``optimizer`` packages.
"""

from energytree.allocator import SlotAllocation, allocate_slot
from energytree.clock import Clock, ManualClock, SystemClock
from energytree.errors import (
    ConfigError,
    EnergyTreeError,
    FormulaError,
    MeterError,
    NotFoundError,
    PlanningError,
    RequestError,
)
from energytree.leaf import LimitReceiver
from energytree.manager import EnergyManager, ManagerOptions, MeterFeed, Status
from energytree.plan import Plan, Planner, instant_plan
from energytree.problem import ExternalSource, PlanOptions, Problem, build_problem
from energytree.site import SiteConfig, site_request
from energytree.types import (
    EnergyFlowRequest,
    EnforcedLimits,
    EvseState,
    ExternalLimits,
    LimitsReq,
    LimitsRes,
    NodeType,
    OptimizerTarget,
    Powermeter,
    PricePerKwh,
    ScheduleReqEntry,
    ScheduleResEntry,
)

__all__ = [
    "Clock",
    "ConfigError",
    "EnergyFlowRequest",
    "EnergyManager",
    "EnergyTreeError",
    "EnforcedLimits",
    "EvseState",
    "ExternalLimits",
    "ExternalSource",
    "FormulaError",
    "LimitReceiver",
    "LimitsReq",
    "LimitsRes",
    "ManagerOptions",
    "ManualClock",
    "MeterError",
    "MeterFeed",
    "NodeType",
    "NotFoundError",
    "OptimizerTarget",
    "Plan",
    "PlanOptions",
    "Planner",
    "PlanningError",
    "Powermeter",
    "PricePerKwh",
    "Problem",
    "RequestError",
    "ScheduleReqEntry",
    "ScheduleResEntry",
    "SiteConfig",
    "SlotAllocation",
    "Status",
    "SystemClock",
    "allocate_slot",
    "build_problem",
    "instant_plan",
    "site_request",
]
__version__ = "0.1.0"
