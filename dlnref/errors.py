"""dlnref's own error types: bad input, told apart from bugs.

Every check of what a caller passed raises :class:`InputError` (or
:class:`InputTypeError` for a value of the wrong type), naming the argument,
the value received and what was expected. Both subclass the built-in errors
that the library raised before (``ValueError``, and ``TypeError`` too), so code
that catches those keeps working.

The command line relies on the distinction: it turns an ``InputError`` into
exit code 2 and one line on stderr, while any other exception is a bug in
dlnref and keeps its traceback (see :data:`dlnref.cli.EXIT_CODES`).
"""


class InputError(ValueError):
    """Bad input to dlnref: an argument, an option, a file's content, or sizes that do not fit together."""


class InputTypeError(InputError, TypeError):
    """Bad input of the wrong type (say a list where an array is expected); also a ``TypeError``."""
