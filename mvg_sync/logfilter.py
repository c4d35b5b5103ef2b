"""One logging filter, on every logger and handler, that masks personnummer and samordningsnummer."""

from __future__ import annotations

import logging
import traceback

from mvg_sync.rules.patient_id import mask_patient_ids

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
