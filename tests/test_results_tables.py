"""The results pages are their files rendered: every table and every sentence that states a result is re-rendered
from the CSVs beside docs/results/README.md and compared, and a number typed into a result sentence by hand is
caught."""

import importlib.util

from helpers import REPO


def load_tables():
    spec = importlib.util.spec_from_file_location("results_tables", REPO / "docs" / "results" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_results_block_is_its_file_rendered():
    tables = load_tables()
    used: dict[str, set[str]] = {"table": set(), "prose": set()}
    for doc in tables.DOCUMENTS:
        text = doc.read_text()
        for m in tables.BLOCK.finditer(text):
            used[m.group(2)].add(m.group(3))
        assert tables.render(text) == text, f"{doc.name}: a block differs from its file: run docs/results/tables.py"
        assert tables.outside_blocks(doc) == [], doc.name  # no result table, no figure in nats without a file
    assert used == {"table": set(tables.TABLES), "prose": set(tables.PROSE)}  # every renderer used


def test_every_number_in_a_result_sentence_comes_from_a_file():
    tables = load_tables()
    for name in tables.PROSE:
        text, given = tables.render_block("prose", name)
        assert tables.unsourced(text, given) == [], name


def test_a_stale_block_and_a_typed_number_are_caught(monkeypatch, tmp_path):
    tables = load_tables()
    text = tables.README.read_text()
    block = next(tables.BLOCK.finditer(text))
    stale = text.replace(block.group(4), block.group(4).replace("|", "| 9.99 |", 1), 1)
    assert tables.render(stale) != stale
    monkeypatch.setattr(tables, "README", tmp_path / "README.md")
    tables.README.write_text(text + "\n| a | b |\n")
    assert tables.outside_blocks(tables.README) == ["| a | b |"]
    other = tmp_path / "other.md"
    other.write_text("| layout | table |\nthe node carries 0.96 nat of RV\n")
    assert tables.outside_blocks(other) == ["the node carries 0.96 nat of RV"]

    def typed(given):
        return f"RV on a node of its own in {given.count(3, 3)} seeds, at 40× the null ({given.span([0.5, 1.25])})."

    monkeypatch.setitem(tables.PROSE, "typed", typed)
    rendered, given = tables.render_block("prose", "typed")
    assert tables.unsourced(rendered, given) == ["40"]
