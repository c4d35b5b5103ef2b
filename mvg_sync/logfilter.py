"""One logging filter, on every logger and handler, that masks personnummer and samordningsnummer."""

from __future__ import annotations

import logging
import re
import sys
import traceback

from mvg_sync.rules.patient_id import mask_patient_ids as _mask_all

# An HSA id: "SE", an organisation number, "-", a suffix (e.g. SE2321000065-E1025). An
# organisation number's third digit is 2 or more, a personnummer's (a month) 0 or 1, so no
# personnummer hides in this shape; unprotected, its ten digits were masked (issue 11.7).
_HSA_ID = re.compile(r"SE\d\d[2-9]\d{7}-[A-Za-z0-9]+")


def mask_patient_ids(text: str) -> str:
    """R13 masking for log text, leaving HSA ids (units, practitioners) readable."""
    out, last = [], 0
    for match in _HSA_ID.finditer(text):
        out += [_mask_all(text[last:match.start()]), match.group()]
        last = match.end()
    return "".join([*out, _mask_all(text[last:])])


def one_line(exc: BaseException | None) -> str:
    """An exception as one masked line: its message, prefixed by its type unless it is ours."""
    if exc is None:
        return ""
    text = " ".join(str(exc).split())
    ours = type(exc).__module__.startswith(("mvg_sync", "flows", "tasks"))
    text = text if ours and text else f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return mask_patient_ids(text[:400])

# Loggers that log directly (a logger's own filters do not see records propagated from its
# children, so the ones Prefect and the libraries write to are named, not just their parents).
KNOWN_LOGGERS = (
    "prefect", "prefect.extra", "prefect.flow_runs", "prefect.task_runs", "prefect.workers",
    "prefect.server", "prefect.client", "prefect.infrastructure", "prefect._internal",
    "prefect.deployments", "prefect.runner", "prefect.events",
    "httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access", "fastapi",
    "great_expectations", "duckdb", "pandera", "py.warnings",
    "mvg_sync", "tasks", "flows",
)


class PiiFilter(logging.Filter):
    """Masks anything shaped like a personnummer/samordningsnummer (R13) in a log record.

    The message is formatted with its arguments first, so a `%s` argument is masked too;
    exception and stack text are rendered and masked here, and the raw exception is dropped
    from the record so no handler can render it again unmasked. Never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed call still must not leak its arguments
            message = f"{record.msg} (unformattable log arguments dropped)"
        masked = mask_patient_ids(message)
        if record.args or masked != message or not isinstance(record.msg, str):
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[0] is not None:
            if not record.exc_text:
                record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_info = None
        if record.exc_text:
            record.exc_text = mask_patient_ids(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_patient_ids(record.stack_info)
        return True


PII_FILTER = PiiFilter(name="")


def install_pii_filter() -> PiiFilter:
    """Attach the one PII filter to the root logger's handlers and every known logger.

    Covers the loggers Prefect configures (flow/task run loggers and their API handlers),
    the project's and the libraries' loggers, and every logger created so far. Idempotent:
    call it at flow start and in the CLI's main, after Prefect has configured logging.
    """
    names = set(KNOWN_LOGGERS) | {
        name for name, logger in logging.root.manager.loggerDict.items() if isinstance(logger, logging.Logger)
    }
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in sorted(names)]
    for logger in loggers:
        _attach(logger)
        for handler in logger.handlers:
            _attach(handler)
    return PII_FILTER


def _attach(target: logging.Filterer) -> None:
    if PII_FILTER not in target.filters:
        target.addFilter(PII_FILTER)


# Libraries that log a line per request at INFO: with them on, `reconcile` printed every GET.
CHATTY = ("httpx", "httpcore", "urllib3")


def configure_console(*, verbose: bool, debug: bool) -> None:
    """The terminal's share of the logs: warnings and up, one line each, unless -v / --debug.

    Applies to every handler writing to the terminal (Prefect's console handler included;
    call after Prefect is imported). Prefect's API handler, which feeds the UI, keeps its
    level and its (masked) tracebacks.
    """
    if not logging.root.handlers:
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    names = [None, *sorted(n for n, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger))]
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if not _is_terminal(handler):
                continue
            if not verbose:
                handler.setLevel(max(handler.level, logging.WARNING))
            if not debug and not getattr(handler, "_mvg_no_traceback", False):
                _without_traceback(handler)
    install_pii_filter()


def _is_terminal(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler) and (
        stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__) or stream is None
    )


def _without_traceback(handler: logging.Handler) -> None:
    """Format records without their traceback on this handler only (the record is shared)."""
    original = handler.format

    def format_one_line(record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return original(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved

    handler.format = format_one_line  # type: ignore[method-assign]
    handler._mvg_no_traceback = True  # type: ignore[attr-defined]
