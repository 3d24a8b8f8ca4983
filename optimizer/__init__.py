"""The planner: one problem in, one plan out — OR-Tools LP, minimum-current repair, fallback."""

from optimizer.planner import PlanReport, optimise, optimise_with_report

__all__ = ["PlanReport", "optimise", "optimise_with_report"]
