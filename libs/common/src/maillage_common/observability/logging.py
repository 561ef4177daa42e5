"""structlog configured once per process by the app factory (never at import time)."""

from __future__ import annotations

import contextlib
import logging
import sys

import structlog

from maillage_common.observability.tracing import current_traceparent, trace_id_of


def _add_trace_id(
    logger: object, method_name: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    trace_id = trace_id_of(current_traceparent())
    if trace_id:
        event_dict.setdefault("trace_id", trace_id)
    return event_dict


class _CurrentStderr:
    """Writes to whatever sys.stderr is now; a failed log write never breaks the caller."""

    def write(self, text: str) -> None:
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.write(text)

    def flush(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()


def configure_logging(*, service: str, level: str = "INFO", json: bool = True) -> None:
    # Never frame locals in tracebacks: a frame's variables may hold patient data.
    rendering: list[structlog.types.Processor] = (
        [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(),
        ]
        if json
        else [structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_trace_id,
            *rendering,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
