"""The monitoring loop: rules as data, evaluated as set-based SQL; warnings with a life; push and feedback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lidm import lazy

# Imported on first use (PEP 562): the monitoring DAGs' parse reads the rules and must not load the engine.
_WHERE = {
    "Compiled": "lidm.monitor.engine",
    "evaluate": "lidm.monitor.engine",
    "OPEN": "lidm.monitor.lifecycle",
    "MonitorResult": "lidm.monitor.lifecycle",
    "WarningError": "lidm.monitor.lifecycle",
    "monitor": "lidm.monitor.lifecycle",
    "run_monitor": "lidm.monitor.lifecycle",
    "transition": "lidm.monitor.lifecycle",
    "Rule": "lidm.monitor.rules",
    "RuleError": "lidm.monitor.rules",
    "load_rules": "lidm.monitor.rules",
}

if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy.exports(__name__, _WHERE)
