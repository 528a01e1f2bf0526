"""The monitoring loop: rules as data, evaluated as set-based SQL; warnings with a life; push and feedback."""

from lidm.monitor.engine import Compiled, evaluate
from lidm.monitor.lifecycle import OPEN, MonitorResult, WarningError, monitor, run_monitor, transition
from lidm.monitor.rules import Rule, RuleError, load_rules

__all__ = [
    "OPEN",
    "Compiled",
    "MonitorResult",
    "Rule",
    "RuleError",
    "WarningError",
    "evaluate",
    "load_rules",
    "monitor",
    "run_monitor",
    "transition",
]
