"""The labels file of `leadscore evaluate`: outcomes learned after scoring, as `id,is_converted`.

Any column order; other columns are ignored (the competition's truth file has more). The first
problem (missing column, an id that is not an integer, a label that is not one, a duplicate id,
not UTF-8, header only) fails with one line naming the file, line and column.

The labels accepted are a lead file's (input_format.label_value: true/false, 1/0, 1.0/0.0,
yes/no, any case), and the file is read as a lead file is (csv_input.open_text: gzip whatever
its name, UTF-8 with or without a byte-order mark): an outcomes file exported the way the lead
files were is taken as it is.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leadscore.csv_input import invalid_utf8, open_text
from leadscore.errors import LeadscoreError
from leadscore.fileio import check_input_file, sha256_file
from leadscore.input_format import ID_COLUMN, LABEL_COLUMN, LABEL_WORDS, label_value


@dataclass
class Labels:
    path: Path
    sha256: str
    ids: np.ndarray       # int64, file order
    labels: np.ndarray    # int8 0/1
    lines: np.ndarray     # the file line of each row (header = line 1)


def _parse_id(text: str) -> int | None:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def read_labels(path: Path) -> Labels:
    """Read `id,is_converted` (any column order, other columns ignored); one-line errors name the
    file, line and column of the first problem."""
    path = Path(path)
    check_input_file(path, f"a header row with {ID_COLUMN},{LABEL_COLUMN}", LeadscoreError)
    ids: list[int] = []
    labels: list[int] = []
    lines: list[int] = []
    first_line: dict[int, int] = {}
    try:
        with open_text(path) as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            names = [h.strip() for h in (header or [])]
            for col in (ID_COLUMN, LABEL_COLUMN):
                if col not in names:
                    raise LeadscoreError(
                        f"{path}: no '{col}' column (header: {', '.join(names) or 'empty'}; "
                        f"expected {ID_COLUMN},{LABEL_COLUMN})"
                    )
            id_at, label_at = names.index(ID_COLUMN), names.index(LABEL_COLUMN)
            for record in reader:
                line = reader.line_num
                if not record or all(not v.strip() for v in record):
                    continue  # blank line
                raw_id = record[id_at] if id_at < len(record) else ""
                raw_label = record[label_at] if label_at < len(record) else ""
                value = _parse_id(raw_id)
                if value is None:
                    raise LeadscoreError(f"{path}: line {line}, column {ID_COLUMN}: {raw_id!r} is not an integer id")
                converted = label_value(raw_label)
                if converted is None:
                    raise LeadscoreError(
                        f"{path}: line {line}, column {LABEL_COLUMN}: {raw_label!r} is not a label "
                        f"(expected {LABEL_WORDS}, any case)"
                    )
                label = int(converted)
                if value in first_line:
                    raise LeadscoreError(
                        f"{path}: line {line}, column {ID_COLUMN}: duplicate id {value} (first on line {first_line[value]})"
                    )
                first_line[value] = line
                ids.append(value)
                labels.append(label)
                lines.append(line)
    except UnicodeDecodeError as exc:
        problem = invalid_utf8(path) or "not valid UTF-8; save it as UTF-8"
        raise LeadscoreError(f"{path}: {problem}") from exc
    except csv.Error as exc:
        raise LeadscoreError(f"{path}: cannot be read as CSV: {exc}") from exc
    except (OSError, EOFError) as exc:  # a damaged gzip file
        raise LeadscoreError(f"{path}: cannot be read: {exc}") from exc
    if not ids:
        raise LeadscoreError(f"{path}: header only, no data rows")
    return Labels(
        path=path,
        sha256=sha256_file(path),
        ids=np.asarray(ids, dtype=np.int64),
        labels=np.asarray(labels, dtype=np.int8),
        lines=np.asarray(lines, dtype=np.int64),
    )
