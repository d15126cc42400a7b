"""Keep feedback text out of the server log.

BentoML logs each rejected request with its pydantic traceback, and pydantic puts the offending
input (the request body, the text) into that message. This filter replaces such a record with the
error locations and types only.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

BENTOML_HTTP_LOGGER = "bentoml._internal.server.http_app"


class RedactValidationErrors(logging.Filter):
    """Turns 'Exception on /classify' + traceback into one line without any input value."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):
            problems = "; ".join(f"{'.'.join(str(part) for part in e['loc']) or 'body'}: {e['type']}"
                                 for e in error.errors(include_input=False, include_context=False))
            record.msg = "rejected request (%d problems: %s)"
            record.args = (error.error_count(), problems)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def install(logger_name: str = BENTOML_HTTP_LOGGER) -> None:
    """Attach the filter once (idempotent) to the logger BentoML reports rejected requests on."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactValidationErrors) for f in logger.filters):
        logger.addFilter(RedactValidationErrors())
