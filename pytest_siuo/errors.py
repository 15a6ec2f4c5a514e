"""The configuration errors of pytest-siuo, in a module light enough for the plugin to import
on every pytest run (the modules that raise them load heavy libraries only when used).

Each is a usage error for the plugin (exit code 4): its message names the option, file, row or
value at fault and the fix.
"""

from __future__ import annotations


class DataError(Exception):
    """The dataset as a whole is unusable: message names the file, row, field and the fix.
    (The plugin turns it into a usage error, exit code 4.)"""


class CacheError(Exception):
    """The cache folder cannot be used; the message names it and the fix."""


class AnswersFileError(Exception):
    """An answers file that cannot be used; the message names the file, the row and the fix."""


class BaselineError(Exception):
    """A baseline that cannot be used; the message names the file and the fault."""


class EndpointError(Exception):
    """An endpoint that cannot be used as configured (bad spec, unreachable, no key, ...)."""


class SiuoEvaluationError(Exception):
    """A sample could not be evaluated (endpoint, judge or image error): a test *error*."""
