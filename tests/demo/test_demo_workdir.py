"""`tokenomy demo --workdir`: the demo deletes and remakes its folder on each run, so it deletes only a folder it
made (or an empty one). Run through the real entry point with the playbook's steps left out, so no model loads."""

from __future__ import annotations

import sys

import pytest

import tokenomy.demo
from tokenomy.cli import main


def _demo(monkeypatch, capsys, workdir: str) -> tuple[int, str]:
    monkeypatch.setattr(tokenomy.demo, "STEPS", ())
    monkeypatch.setattr(sys, "argv", ["tokenomy", "demo", "--workdir", workdir])
    try:
        main()
    except SystemExit as exited:
        return (exited.code if isinstance(exited.code, int) else 0), capsys.readouterr().err
    return 0, capsys.readouterr().err


@pytest.mark.parametrize("given", ["", ".", "project"])
def test_a_workdir_the_demo_did_not_make_is_refused_not_deleted(given, tmp_path, monkeypatch, capsys) -> None:
    # `tokenomy demo --workdir .` (or '', or any folder with work in it) deleted the folder's files, then ran.
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / given / "notes.txt"  # given "" or ".": the folder the command runs in
    mine.write_text("mine")
    code, err = _demo(monkeypatch, capsys, given)
    assert code == 2 and "Traceback" not in err, err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: --workdir {given or '.'}: holds files the demo did not make"), line
    assert mine.read_text() == "mine"


def test_the_demo_remakes_its_own_workdir_and_takes_an_empty_one(tmp_path, monkeypatch, capsys) -> None:
    workdir = tmp_path / "demo"
    workdir.mkdir()
    assert _demo(monkeypatch, capsys, str(workdir))[0] == 0  # empty: taken
    (workdir / "left-over.jsonl").write_text("{}")
    code, err = _demo(monkeypatch, capsys, str(workdir))  # its own, from the run before: remade
    assert code == 0, err
    assert not (workdir / "left-over.jsonl").exists() and (workdir / "ledger.duckdb").exists()


def test_a_workdir_an_older_demo_made_is_remade_and_one_with_more_in_it_is_not(tmp_path, monkeypatch, capsys) -> None:
    # Demos from before the marker wrote none: their default folder was refused on the next `make demo`.
    older = tmp_path / "older"
    older.mkdir()
    for name in ("ledger.duckdb", "ledger.duckdb.wal", "gateway.duckdb", "batch.jsonl", "report.html"):
        (older / name).write_text("")
    (older / "bench").mkdir()
    code, err = _demo(monkeypatch, capsys, str(older))
    assert code == 0, err
    assert (older / ".tokenomy-demo").is_file() and not (older / "batch.jsonl").exists()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "ledger.duckdb").write_text("")  # a lone ledger may be a real one: not the demo's
    code, err = _demo(monkeypatch, capsys, str(mixed))
    assert code == 2 and (mixed / "ledger.duckdb").exists(), err
    for name in ("gateway.duckdb", "bench", "notes.txt"):  # the demo's outputs beside other work: not the demo's
        (mixed / name).mkdir() if name == "bench" else (mixed / name).write_text("mine")
    code, err = _demo(monkeypatch, capsys, str(mixed))
    assert code == 2 and (mixed / "notes.txt").read_text() == "mine", err
