"""The PII log filter: masks personnummer/samordningsnummer (R13 shape) wherever a record goes."""

import io
import logging

import pytest

from mvg_sync.logfilter import PII_FILTER, install_pii_filter

PERSONNUMMER = "19121212-1212"
SAMORDNINGSNUMMER = "701063-2391"


@pytest.fixture
def captured():
    """A plain stream handler on the root logger, added before the filter is installed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream, handler
    root.removeHandler(handler)


def _logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    return logger


def test_r13_percent_s_argument_is_masked(captured):
    stream, _ = captured
    install_pii_filter()
    _logger("mvg_sync.test").info("booking %s for %s", "B-1", PERSONNUMMER)
    out = stream.getvalue()
    assert "1212-1212" not in out
    assert "booking B-1 for XXXXXXXX-XXXX" in out


def test_r13_samordningsnummer_in_message_is_masked(captured):
    stream, _ = captured
    install_pii_filter()
    _logger("httpx").warning("GET /Patient?identifier=" + SAMORDNINGSNUMMER)
    assert SAMORDNINGSNUMMER not in stream.getvalue()
    assert "XXXXXXXX-XXXX" in stream.getvalue()


def test_r13_exception_text_is_masked(captured):
    stream, _ = captured
    install_pii_filter()
    try:
        raise ValueError(f"no patient {PERSONNUMMER}")
    except ValueError:
        _logger("prefect.task_runs").exception("step failed")
    out = stream.getvalue()
    assert "ValueError: no patient XXXXXXXX-XXXX" in out
    assert PERSONNUMMER not in out


def test_r13_library_logger_created_later_is_covered_through_the_root_handler(captured):
    stream, _ = captured
    install_pii_filter()
    _logger("some_library.deep.module").warning("id %s", PERSONNUMMER.replace("-", ""))
    assert "121212121212" not in stream.getvalue()


def test_ids_inside_longer_digit_runs_are_left_alone(captured):
    stream, _ = captured
    install_pii_filter()
    _logger("mvg_sync.test").info("sequence %s", "12345678901234567")
    assert "12345678901234567" in stream.getvalue()


def test_install_is_idempotent_and_reaches_prefect_handlers():
    import prefect  # noqa: F401 - configures Prefect's loggers and handlers
    from prefect.logging.configuration import setup_logging

    setup_logging()
    install_pii_filter()
    install_pii_filter()
    for name in ["", "prefect", "prefect.flow_runs", "prefect.task_runs", "httpx", "uvicorn", "duckdb",
                 "great_expectations", "mvg_sync"]:
        logger = logging.getLogger(name)
        assert logger.filters.count(PII_FILTER) == 1, name
        for handler in logger.handlers:
            assert handler.filters.count(PII_FILTER) == 1, (name, handler)
    assert any(logging.getLogger("prefect.flow_runs").handlers)


def test_hsa_ids_stay_readable_and_a_personnummer_beside_them_is_masked(captured):
    """Issue 11.7: the filter turned SE2321000065-E1025 into SEXXXXXXXX-XXXX-E1025."""
    stream, _ = captured
    install_pii_filter()
    _logger("mvg_sync.test_hsa").warning(
        "unit %s: booking of %s at SE2321000016-7MVG", "SE2321000065-E1025", PERSONNUMMER)
    message = stream.getvalue()
    assert "SE2321000065-E1025" in message and "SE2321000016-7MVG" in message
    assert PERSONNUMMER not in message and "XXXXXXXX-XXXX" in message
