"""The engine's error classes, in one module that imports nothing (so the entry point can catch each by
its class without importing the module that raises it).

Every message names the argument, flag, file or column and what would fix it, never a private value, row
number or count (DESIGN rule 7). How ``pe-tabular`` reports each (:func:`pe_tabular.cli.main`):

=========================  =========  ==========================================================
class                      exit code  raised by
=========================  =========  ==========================================================
:class:`UsageError`        2          flag and input checks of every command (``cli_support``)
:class:`ConfigError`       2          run settings, before any private data is read (``evolution``)
:class:`SourceError`       2          a file or column that cannot be read as declared (``source``)
:class:`UnitTypeError`     2          a unit column whose type changes between chunks (``units``)
:class:`MemoryLimitExceeded` 2        ``--max-memory`` passed (``memory``)
=========================  =========  ==========================================================

The privacy errors (``AccountingError``, ``BudgetExceeded``: exit 3) stay in :mod:`pe_tabular.privacy`, a
leaf package that imports nothing of the rest of the engine. Each wing keeps its own domain errors
(``pe_tabular.tables.errors.SchemaError``).
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad flags or input; exit code 2. The message names the flag, column or file and the fix."""


class ConfigError(ValueError):
    """Invalid run settings, reported before any private data is touched.

    The library speaks of its arguments (``iterations``); ``param`` names the argument so a command
    line can say the flag instead (:meth:`for_cli`: ``--iterations``)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param

    def for_cli(self) -> str:
        """The message with the argument's name replaced by its flag (``k`` → ``--k``)."""
        msg = str(self)
        if not self.param:
            return msg
        flag = "--" + self.param.replace("_", "-")
        return msg.replace(f"`{self.param}`", flag, 1)


class SourceError(ValueError):
    """A file or column problem; the message names the file/column and the fix, never a value."""


class UnitTypeError(ValueError):
    """A unit column changed type between chunks: the same unit could get two digests."""


class MemoryLimitExceeded(MemoryError):
    """The process passed ``--max-memory``; the message says which knobs lower the footprint."""
