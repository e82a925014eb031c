"""Every table of docs/results/README.md is rendered from the committed file beside it: re-render and compare."""

import importlib.util

from helpers import REPO


def load_tables():
    spec = importlib.util.spec_from_file_location("results_tables", REPO / "docs" / "results" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_results_table_is_its_file_rendered():
    tables = load_tables()
    text = tables.README.read_text()
    names = [m.group(2) for m in tables.BLOCK.finditer(text)]
    assert set(names) == set(tables.TABLES), names  # every renderer used, every block rendered
    assert tables.render(text) == text, "a table differs from its CSV: run `python docs/results/tables.py`"
    assert tables.outside_blocks(text) == []  # no table without a file


def test_a_stale_table_is_caught():
    tables = load_tables()
    text = tables.README.read_text()
    block = next(tables.BLOCK.finditer(text))
    stale = text.replace(block.group(3), block.group(3).replace("yes", "no", 1).replace("|", "| 9.99 |", 1), 1)
    assert tables.render(stale) != stale
    assert tables.outside_blocks(text + "\n| a | b |\n") == ["| a | b |"]
