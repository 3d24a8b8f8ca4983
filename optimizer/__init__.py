"""The planner: one problem in, one plan out — OR-Tools LP, minimum-current repair, fallback."""

from optimizer.planner import PlanReport, optimise

__all__ = ["PlanReport", "optimise"]
