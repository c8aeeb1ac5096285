"""Error codes and the typed exceptions that the CLI edge turns into CNI error objects.

Codes below 100 are the CNI specification's well-known ones; 100 and above are ours and are
documented in README.md ("Error codes").
"""

from __future__ import annotations


class ErrorCode:
    """The codes, as plain ints (an IntEnum costs every plugin start ~0.4 ms to build)."""

    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT = 4
    IO_FAILURE = 5
    DECODING_FAILURE = 6
    INVALID_NETWORK_CONFIG = 7
    TRY_AGAIN_LATER = 11
    PLUGIN_NOT_AVAILABLE = 50
    PLUGIN_NOT_AVAILABLE_LIMITED_CONNECTIVITY = 51
    POLICY_DENIED = 100
    SYSCTL_NOT_FOUND = 101
    WRITE_REFUSED = 102
    LINK_FAILURE = 103
    CHECK_MISMATCH = 104
    ROLLBACK_FAILED = 105
    INSTALLATION = 106
    INTERNAL = 999


class CniError(Exception):
    """A failure that the edge reports as a CNI error object, unchanged."""

    code: int = ErrorCode.INTERNAL

    def __init__(self, msg: str, details: str = "", code: int | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details
        if code is not None:
            self.code = code

    def to_json(self, cni_version: str) -> dict[str, object]:
        obj: dict[str, object] = {"cniVersion": cni_version, "code": int(self.code), "msg": self.msg}
        if self.details:
            obj["details"] = self.details
        return obj


class VersionError(CniError):
    code = ErrorCode.INCOMPATIBLE_VERSION


class UnsupportedFieldError(CniError):
    code = ErrorCode.UNSUPPORTED_FIELD


class EnvironmentVariableError(CniError):
    code = ErrorCode.INVALID_ENVIRONMENT


class DecodingError(CniError):
    code = ErrorCode.DECODING_FAILURE


class ConfigError(CniError):
    code = ErrorCode.INVALID_NETWORK_CONFIG


class KeyRejectedError(ConfigError):
    """A sysctl key or value that can never be accepted, whatever the netns holds."""


class PolicyDeniedError(CniError):
    code = ErrorCode.POLICY_DENIED


class SysctlNotFoundError(CniError):
    code = ErrorCode.SYSCTL_NOT_FOUND


class WriteRefusedError(CniError):
    code = ErrorCode.WRITE_REFUSED


class LinkError(CniError):
    """A netlink or link-state failure; raised after the netns has been restored."""

    code = ErrorCode.LINK_FAILURE


class TryAgainError(CniError):
    code = ErrorCode.TRY_AGAIN_LATER


class CheckMismatchError(CniError):
    code = ErrorCode.CHECK_MISMATCH


class RollbackError(CniError):
    """Undoing a failed ADD itself failed: the netns is not as it was found."""

    code = ErrorCode.ROLLBACK_FAILED


class NotAvailableError(CniError):
    code = ErrorCode.PLUGIN_NOT_AVAILABLE


class NetnsNotFoundError(CniError):
    """The network namespace named by CNI_NETNS is gone (DEL treats this as success)."""

    code = ErrorCode.UNKNOWN_CONTAINER


class LinkNotFoundError(CniError):
    """A container-side interface is gone (DEL treats this as success)."""

    code = ErrorCode.LINK_FAILURE


class InstallationError(CniError):
    """cni-sysctl's installation is unusable: a dependency missing or of an unsupported version,
    or the launcher's import roots gone (after an upgrade). Not the container's fault."""

    code = ErrorCode.INSTALLATION


class FatalNetnsError(CniError):
    """Returning to the original netns failed; nothing else may run in this thread."""

    code = ErrorCode.INTERNAL
