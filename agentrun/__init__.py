"""The names a plugin (a package adding execution types) builds on, in one public place.

A plugin registers an ``ExecutionDefinition`` instance under the entry-point group
``agentrun.execution_definitions``; its tools and validators see the run as an
``ExecutionRun``. ``agentrun.testing`` runs a definition in tests. Neither ``app`` nor
``workers`` imports this package: it is an entry layer over them (docs/plugins.md).
"""

from app.definitions.base import ExecutionDefinition, files_paragraph
from app.definitions.effects import effectful, read_only
from app.definitions.files import FILE_TOOLS
from app.definitions.registry import ENTRY_POINT_GROUP
from app.definitions.run import AttachedFile, ExecutionRun
from app.definitions.validators import OK, ExecutionFailed, Fail, Ok, Retry, Validator, Verdict

__all__ = [
    "ENTRY_POINT_GROUP",
    "FILE_TOOLS",
    "OK",
    "AttachedFile",
    "ExecutionDefinition",
    "ExecutionFailed",
    "ExecutionRun",
    "Fail",
    "Ok",
    "Retry",
    "Validator",
    "Verdict",
    "effectful",
    "files_paragraph",
    "read_only",
]
