"""The dialect macros' SQL, rendered from dbt_project/macros with plain Jinja and run in DuckDB.

`hash_fold` decides which out-of-fold target rates a training lead gets. Its DuckDB form is
computed from md5_number's two 64-bit halves (a 128-bit modulo is slow), so the arithmetic
must give exactly md5(key) as a little-endian 128-bit number, modulo K, the definition the
Spark form also implements; a swapped half or a wrong 2^64 mod K would silently move leads
between folds (and change every training row's rates) without failing any other check.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import jinja2
import pytest

MACROS = Path(__file__).resolve().parents[1] / "dbt_project" / "macros" / "dialect" / "lists.sql"


class _CompilerError(Exception):
    pass


class _Exceptions:
    @staticmethod
    def raise_compiler_error(message: str) -> None:
        raise _CompilerError(message)


def _macro(name: str):
    env = jinja2.Environment(extensions=["jinja2.ext.do"])
    template = env.from_string(MACROS.read_text(), globals={"exceptions": _Exceptions})
    return getattr(template.module, name)


def _md5_fold(key: str, k: int) -> int:
    return int.from_bytes(hashlib.md5(key.encode()).digest(), "little") % k


@pytest.mark.parametrize("k", [1, 2, 3, 7, 20, 97, 65_537, 2_147_483_647])
def test_duckdb_hash_fold_is_md5_little_endian_modulo_k(k):
    keys = [f"{i:016x}" for i in range(0, 3_000_000_000, 1_000_003)] + ["", "é", "lead 1"]
    sql = f"select key, {_macro('duckdb__hash_fold')('key', k)} as fold from keys"
    con = duckdb.connect()
    con.execute("create table keys (key varchar)")
    con.executemany("insert into keys values (?)", [(key,) for key in keys])
    got = dict(con.execute(sql).fetchall())
    assert got == {key: _md5_fold(key, k) for key in keys}


@pytest.mark.parametrize("k", [0, 2_147_483_648])
def test_duckdb_hash_fold_refuses_k_it_cannot_compute_exactly(k):
    with pytest.raises(_CompilerError, match="hash_fold"):
        _macro("duckdb__hash_fold")("key", k)
