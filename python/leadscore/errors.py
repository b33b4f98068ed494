"""One exception type the CLI turns into a one-line message and a non-zero exit code, and the
exit codes a cron job can tell apart.

Library code raises LeadscoreError with a message that names the file, row or column, so the
user never has to read a traceback to learn what was wrong with their input."""

# Exit codes of every `leadscore` command (README "Exit codes", `leadscore --help`).
EXIT_OK = 0  # done
EXIT_FAILED = 1  # failed; nothing half-written (the reason is the one line on stderr)
EXIT_USAGE = 2  # bad command line (argparse)
EXIT_FILES_REFUSED = 3  # done, but some input files were refused (quarantined; see raw.loads)
EXIT_BUSY = 75  # another leadscore command holds the database; nothing done, try again later
EXIT_INTERRUPTED = 130  # interrupted (Ctrl-C); what was not committed is rolled back

EXIT_CODES_HELP = (
    "exit codes: 0 done; 1 failed (one-line reason on stderr, nothing half-written); "
    "2 bad command line; 3 done, with input files refused (nightly: quarantined, see raw.loads); "
    "75 busy (another leadscore command holds the database; nothing done, try again later); "
    "130 interrupted (Ctrl-C; nothing half-written)"
)


class LeadscoreError(Exception):
    """An expected failure with a message meant for the user."""

    exit_code = EXIT_FAILED


class Busy(LeadscoreError):
    """Another process holds the database: nothing was done, the same command can simply be rerun."""

    exit_code = EXIT_BUSY


def save_traceback(command: str) -> str:
    """Append the traceback of the exception being handled (an unexpected error: a bug) to
    leadscore-errors.log beside the database and return its path. The CLI calls it for any
    command; the nightly's ingest for one file that must not stop the others."""
    import traceback
    from datetime import datetime

    from leadscore import config

    try:
        path = config.data_dir() / "leadscore-errors.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(f"--- {datetime.now():%Y-%m-%d %H:%M:%S} leadscore {command}\n{traceback.format_exc()}\n")
        return str(path)
    except OSError:
        return "nowhere (the log could not be written)"
