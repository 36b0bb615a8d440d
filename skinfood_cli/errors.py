"""The project's exceptions and the exit codes they map to.

Every error a person can cause (a wrong path, a broken checkpoint, a bad YAML
file) is a `SkinfoodError` whose message already says what to do. The CLI turns
it into one red line on stderr and `exit_code`; `--debug` shows the traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class SkinfoodError(Exception):
    """An error with a message meant for the person at the terminal."""

    exit_code = EXIT_USAGE
    silent = False  # True: already reported elsewhere; the CLI exits with the code, printing nothing

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(SkinfoodError):
    """Options that do not fit together, or a value out of range."""


class DataError(SkinfoodError):
    """A dataset folder that can't be used as given."""


class ModelError(SkinfoodError):
    """No model, or a model file that is not a valid skinfood checkpoint."""


class HubError(ModelError):
    """A model on the Hugging Face Hub that can't be fetched, published or used (exit 2)."""


class WeightsError(SkinfoodError):
    """Pretrained weights that can't be fetched or don't match their hash."""


class DescriptionsError(SkinfoodError):
    """A descriptions YAML file that fails validation."""


class ImageError(SkinfoodError):
    """One input image that can't be read; recorded per input, the run goes on.

    `reason` sorts the failure for callers that answer differently (the server's
    HTTP status): "not_image", "too_large", "empty" or "unreadable".
    """

    exit_code = EXIT_SOME_FAILED

    def __init__(self, message: str, *, reason: str = "unreadable"):
        super().__init__(message)
        self.reason = reason


class PeerError(SkinfoodError):
    """Rank 0 of a torchrun job failed and printed why; the other ranks exit with its code, quietly."""

    silent = True


class MissingExtraError(SkinfoodError):
    """An optional extra (serve, export) is not installed."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's first line, for a one-line message (its type's name if it has no text)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def os_error_in(exc: BaseException | None) -> OSError | None:
    """The OSError behind `exc`, if there is one.

    torch.save and torch.jit.save report a full disk as a RuntimeError ("unexpected
    pos ...") raised while handling the OSError, so the reason sits in the chain.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
