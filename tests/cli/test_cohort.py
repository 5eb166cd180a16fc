"""``reliable-change`` command: CSV in, categories out; reproduces clinicalsignificance."""

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mit_fhir.cli.cohort import reliable_change

REFERENCE = Path(__file__).parent.parent / "data" / "clinicalsignificance"
CLAUS = REFERENCE / "claus_2020_hamd.csv"
COLUMNS = ["--pre-column", "hamd_pre", "--post-column", "hamd_post"]


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(reliable_change, list(args), input=input)


def summary(*args: str) -> dict[str, int]:
    result = run(
        str(CLAUS),
        *COLUMNS,
        "--reliability",
        "0.8",
        "--direction",
        "lower-is-better",
        "--format",
        "json",
        *args,
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["summary"]


def test_reference_points_are_the_csv():
    rows = []
    for line in (REFERENCE / "distribution-jt-plot-points.txt").read_text().split("\n"):
        if not line.strip():
            continue
        cx, cy = map(float, line.split())
        pre = 10 + (cx - 220.71) * 20 / (657.71 - 220.71)
        post = 10 + (401.14 - cy) * 20 / (401.14 - 66.31)
        assert abs(pre - round(pre)) < 0.001 and abs(post - round(post)) < 0.001
        rows.append((round(pre), round(post)))
    with CLAUS.open() as f:
        assert [(int(r["hamd_pre"]), int(r["hamd_post"])) for r in csv.DictReader(f)] == rows
    assert len(rows) == 40


# cs_distribution(claus_2020, id, time, hamd, pre = 1, post = 4, reliability = 0.8, rci_method)
@pytest.mark.parametrize(
    ("method", "improved", "unchanged", "deteriorated"),
    [
        ("jacobson-truax", 29, 10, 1),
        ("edwards-nunnally", 32, 5, 3),
        ("hsu-lin-lord", 12, 16, 12),
        ("gulliksen-lord-novick", 29, 10, 1),
        ("hageman-arrindell", 32, 7, 1),
    ],
)
def test_reproduces_clinicalsignificance_distribution(method, improved, unchanged, deteriorated):
    assert summary("--method", method) == {
        "recovered": 0,
        "improved": improved,
        "unchanged": unchanged,
        "deteriorated": deteriorated,
        "harmed": 0,
    }


# cs_combined(..., m_functional = 8, sd_functional = 8, cutoff_type = "c", rci_method)
@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("jacobson-truax", (26, 3, 10, 1, 0)),
        ("edwards-nunnally", (26, 6, 5, 3, 0)),
        ("hsu-lin-lord", (12, 0, 16, 11, 1)),
        ("gulliksen-lord-novick", (26, 3, 10, 1, 0)),
    ],
)
def test_reproduces_clinicalsignificance_combined(method, expected):
    counts = summary(
        "--method", method, "--cutoff", "c", "--functional-mean", "8", "--functional-sd", "8"
    )
    assert tuple(counts.values()) == expected


CSV = "id,pre,post\nA,30,10\nB,,12\nC,25,24\nD,28,NA\nE,20,30\n"


def test_missing_rows_are_reported_and_skipped():
    result = run(
        "-",
        "--pre-column",
        "pre",
        "--post-column",
        "post",
        "--id-column",
        "id",
        "--reliability",
        "0.9",
        "--sd",
        "5",
        "--direction",
        "lower-is-better",
        "--format",
        "json",
        input=CSV,
    )
    assert result.exit_code == 0, result.output
    assert "row 2: missing value in column 'pre', skipped" in result.stderr
    assert "row 4: missing value in column 'post', skipped" in result.stderr
    data = json.loads(result.stdout)
    assert [r["id"] for r in data["rows"]] == ["A", "C", "E"]
    assert [r["category"] for r in data["rows"]] == ["improved", "unchanged", "deteriorated"]
    assert data["summary"]["improved"] == 1 and data["n"] == 3


def test_csv_output_with_summary(tmp_path):
    out = tmp_path / "out.csv"
    result = run(
        "-",
        "--pre-column",
        "pre",
        "--post-column",
        "post",
        "--reliability",
        "0.9",
        "--sd",
        "5",
        "--direction",
        "lower-is-better",
        "--output",
        str(out),
        input=CSV,
    )
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "row,id,pre,post,change,index,reliable,category"
    assert lines[1].startswith("1,1,30.0,10.0,-20.0,") and lines[1].endswith(",true,improved")
    assert lines[-5:] == ["recovered,0", "improved,1", "unchanged,1", "deteriorated,1", "harmed,0"]


def test_instrument_parameters_from_the_data_file():
    data = "pre,post\n118,57\n100,98\n"
    result = run(
        "-",
        "--pre-column",
        "pre",
        "--post-column",
        "post",
        "--instrument",
        "ders",
        "--format",
        "json",
        input=data,
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [r["category"] for r in rows] == ["recovered", "unchanged"]


def test_instrument_with_published_difference_rejects_other_methods():
    result = run(
        "-",
        "--pre-column",
        "pre",
        "--post-column",
        "post",
        "--instrument",
        "scl-90-r",
        "--method",
        "hsu-lin-lord",
        input="pre,post\n2.1,0.2\n1.5,1.4\n",
    )
    assert result.exit_code == 65
    assert "hsu-lin-lord needs reliability and sd" in result.stderr


@pytest.mark.parametrize(
    ("args", "data", "message"),
    [
        (["--pre-column", "before"], CSV, "--pre-column: no column 'before'"),
        (["--pre-column", "pre"], "pre,post\n1,2\nx,3\n", "row 2, column 'pre': 'x' is not a"),
        (
            ["--pre-column", "pre", "--reliability", "1.5"],
            CSV,
            "--reliability: must be between 0 and 1",
        ),
        (["--pre-column", "pre", "--reliability", "abc"], CSV, "--reliability: Not a valid"),
        (["--pre-column", "pre", "--cutoff", "c"], CSV, "cutoff c needs --functional-mean"),
        (["--pre-column", "pre", "--instrument", "nope"], CSV, "instrument 'nope'"),
    ],
)
def test_bad_input_exits_65_with_a_clear_message(args, data, message):
    base = ["-", "--post-column", "post", "--direction", "lower-is-better"]
    if "--reliability" not in args and "--instrument" not in args:
        base += ["--reliability", "0.9"]
    result = run(*base, *args, input=data)
    assert result.exit_code == 65, result.output
    assert message in result.stderr


def test_needs_reliability_or_instrument():
    result = run("-", "--pre-column", "pre", "--post-column", "post", input=CSV)
    assert result.exit_code == 65
    assert "give --instrument or --reliability" in result.stderr
