"""One exception type the CLI turns into a one-line message and a non-zero exit code.

Library code raises it with a message that names the file, row or column, so the user never
has to read a traceback to learn what was wrong with their input."""


class LeadscoreError(Exception):
    """An expected failure with a message meant for the user."""
