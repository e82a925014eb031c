"""Label tables: one set of rules for `ingest --labels` and `analyze --labels` (BOMs, bad cells, duplicates)."""

import math

import numpy as np
import pytest

from spectra_lightning.cli import main
from spectra_lightning.ingest.label_table import LabelTable, LabelTableError, parse_cell
from spectra_lightning.ingest.pipeline import ingest
from spectra_lightning.store import SpectraStore

from helpers import REAL, real_file


@pytest.mark.parametrize(
    "cell, value",
    [("5777", 5777.0), (" -0.18 ", -0.18), ("+0.22", 0.22), ("1e-3", 1e-3), (".5", 0.5), ("~3600", 3600.0)],
)
def test_numbers(cell, value):
    assert parse_cell(cell) == value


def test_alternatives_take_the_first_and_missing_spellings_are_nan():
    assert parse_cell("3203|3344") == 3203.0 and parse_cell("~+0.2|0.3") == 0.2
    for cell in ("", "  ", "NaN", "nan", "NA", "n/a", "null", "None", "-"):
        assert math.isnan(parse_cell(cell)), cell
    for cell in ("hot", "4,49", "5777K", "1.2.3", "inf"):
        assert parse_cell(cell) is None, cell


def write(path, text: str, bom: bool = False):
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


def test_a_bom_is_read_and_the_header_is_clean(tmp_path):
    t = LabelTable(write(tmp_path / "l.csv", "id,teff\na,5000\nb,6000\n", bom=True))
    assert t.header == ["id", "teff"] and t.keys == ["id"]
    assert t.numeric["teff"][t.row_of({"id": "b"})] == 6000.0


def test_one_bad_cell_is_an_error_naming_file_line_column_and_value(tmp_path):
    path = write(tmp_path / "l.csv", "id,teff,logg\na,5000,4.4\nb,hot,4.5\nc,6000,NaN\n")
    with pytest.raises(LabelTableError) as e:
        LabelTable(path)
    msg = str(e.value)
    assert str(path) in msg and "line 3" in msg and "'teff'" in msg and "'hot'" in msg and "--labels-text teff" in msg
    t = LabelTable(path, text=["teff"])  # asked for: kept as text, never dropped silently
    assert t.text["teff"] == ["5000", "hot", "6000"] and np.isnan(t.numeric["logg"][2])


def test_a_decimal_comma_is_an_error_not_a_truncation(tmp_path):
    path = write(tmp_path / "l.csv", 'id,logg\na,4.49\nb,"4,49"\n')
    with pytest.raises(LabelTableError, match=r"line 3, column 'logg': '4,49' is a decimal comma"):
        LabelTable(path)


def test_text_columns_stay_text_and_all_missing_columns_are_nan(tmp_path):
    t = LabelTable(write(tmp_path / "l.csv", "id,sptype,rv\na,G2V,\nb,K0III,NA\nc,5,\n"))
    assert t.text["sptype"] == ["G2V", "K0III", "5"] and np.isnan(t.numeric["rv"]).all()


def test_duplicate_keys_are_refused_with_a_list(tmp_path):
    path = write(tmp_path / "l.csv", "id,teff\na,1\nb,2\na,3\nc,4\nb,5\n")
    with pytest.raises(LabelTableError) as e:
        LabelTable(path)
    assert "2 value(s) of the key column 'id' appear more than once: 'a' (lines 2, 4); 'b' (lines 3, 6)" in str(e.value)


def test_a_repeated_secondary_key_is_not_joined_on(tmp_path):
    t = LabelTable(
        write(tmp_path / "l.csv", "file,object,teff\nx.fits,Sun,5777\ny.fits,Sun,5778\n"), keys=("file", "object")
    )
    assert t.row_of({"object": "Sun"}) is None and t.row_of({"file": "y.fits", "object": "Sun"}) == 1


def codes_and_shuffled_labels(tmp_path, bom: bool):
    rng = np.random.default_rng(0)
    n = 300
    z = rng.normal(size=(n, 2))
    teff = 5000 + 500 * z[:, 0] + 20 * rng.normal(size=n)
    ids = [f"s{i:03d}" for i in range(n)]
    (tmp_path / "codes.csv").write_text("id,z0,z1\n" + "".join(f"{i},{a},{b}\n" for i, (a, b) in zip(ids, z)))
    order = rng.permutation(n)
    rows = "".join(f"{ids[i]},{teff[i]}\n" for i in order)
    return write(tmp_path / "labels.csv", "id,teff\n" + rows, bom=bom)


def test_analyze_joins_a_bom_file_by_id_not_by_row(tmp_path, capsys):
    import json

    reports = []
    for bom in (False, True):
        labels = codes_and_shuffled_labels(tmp_path, bom)
        out = tmp_path / f"a{bom}"
        args = ["analyze", "--codes", str(tmp_path / "codes.csv"), "--labels", str(labels), "--output", str(out)]
        assert main([*args, "--no-figures"]) == 0
        reports.append(json.loads((out / "report.json").read_text()))
    values = [r["mi"]["ksg"]["teff"]["values"] for r in reports]
    assert values[0] == values[1] and values[1][0] > 1.5  # node 0 is teff: joined by id through the BOM
    capsys.readouterr()


def test_analyze_refuses_a_numeric_column_with_one_text_cell(tmp_path, capsys):
    labels = codes_and_shuffled_labels(tmp_path, bom=False)
    lines = labels.read_text().splitlines()
    lines[5] = lines[5].split(",")[0] + ",hot"
    labels.write_text("\n".join(lines) + "\n")
    args = ["analyze", "--codes", str(tmp_path / "codes.csv"), "--labels", str(labels), "--output", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 6, column 'teff': 'hot' is not a number" in err
    assert not (tmp_path / "o").exists()


def test_ingest_reads_a_bom_label_file(tmp_path):
    src = real_file("harps/s1d/HARPS.2010-09-18T23:42:36.178_s1d_A.fits")
    labels = write(tmp_path / "labels.csv", (REAL / "labels.csv").read_text(), bom=True)
    ingest([str(src)], str(tmp_path / "s.zarr"), workers=1, progress=False, labels=str(labels))
    meta = SpectraStore.open(tmp_path / "s.zarr").meta
    assert meta["teff_K"][0] == 3203.0 and meta["sptype_approx"][0] == "M3V"


def test_ingest_with_a_bad_label_cell_writes_nothing(tmp_path, capsys):
    src = real_file("harps/s1d/HARPS.2010-09-18T23:42:36.178_s1d_A.fits")
    text = (REAL / "labels.csv").read_text().replace(",5777,", ",hot,", 1)
    labels = write(tmp_path / "labels.csv", text)
    out = tmp_path / "s.zarr"
    assert main(["ingest", str(src), "--output", str(out), "--labels", str(labels), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "column 'teff_K': 'hot' is not a number" in err
    assert not out.exists()
    assert (
        main(["ingest", str(src), "--output", str(out), "--labels", str(labels), "--labels-text", "teff_K", "--quiet"])
        == 0
    )
    assert SpectraStore.open(out).meta["teff_K"][0] == "3203|3344"  # as text, as asked
    capsys.readouterr()


def test_ingest_header_error_shows_the_header_read(tmp_path, capsys):
    labels = write(tmp_path / "labels.csv", "name;teff\nx;1\n")
    assert main(["ingest", str(tmp_path), "--output", str(tmp_path / "s.zarr"), "--labels", str(labels)]) == 2
    assert "the header read is ['name;teff']" in capsys.readouterr().err
