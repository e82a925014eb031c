"""Result tables are written whole or not at all."""

import csv

import pytest

from spectra_lightning.common.files import write_csv


def test_a_table_has_every_rows_columns_and_replaces_the_old_one_only_when_complete(tmp_path):
    path = tmp_path / "t.csv"
    write_csv(path, [{"seed": 1, "rv": 2.5}, {"seed": 2, "teff": 0.9}])
    assert list(csv.reader(path.open())) == [["seed", "rv", "teff"], ["1", "2.5", ""], ["2", "", "0.9"]]
    with pytest.raises(AttributeError):  # a row that is not a mapping fails the write
        write_csv(path, [{"seed": 3}, ["not", "a", "row"]])
    assert path.read_text().splitlines()[0] == "seed,rv,teff"  # the old table, whole
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no temporary left behind
