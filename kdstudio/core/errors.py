"""User-facing errors: one sentence that says what is wrong and what to do."""


class KDError(Exception):
    """A mistake the user can fix; its message is shown as-is (GUI dialog or one CLI line, exit code 2)."""


class ConfigError(KDError):
    """The configuration is invalid; `key` names the offending field when there is one."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


class NotAvailableYet(KDError):
    """A documented option whose implementation has not landed yet."""


class RunStopped(Exception):
    """Raised inside the engine when a cooperative stop was requested."""


class NumericalError(KDError):
    """A loss became NaN or Inf."""
