"""``mit-fhir reliable-change``: classify every pre/post pair of a CSV file.

Group statistics (pre mean, post mean and SD, pre/post correlation) come from the complete
rows, as clinicalsignificance computes them; so does the SD for the standard error unless
``--sd`` (or the instrument's data file entry) gives one, and so do the clinical mean and SD of
cutoffs a and c unless given. Rows are numbered from 1 after the header row.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import click
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from mit_fhir.cli.exits import Exit, epilog
from mit_fhir.config import env_settings
from mit_fhir.paths import PROFILE_DIR
from mit_fhir.psychometrics.parameters import ParameterSet, load_parameters
from mit_fhir.psychometrics.reliable_change import (
    Category,
    CutoffType,
    Direction,
    GroupStatistics,
    Method,
    ParameterError,
    ReliableChangeParameters,
    classify,
)

MISSING = frozenset({"", "na", "nan", "null", "none"})


class InputError(click.ClickException):
    """Bad input (the CSV or the parameters given): reported on stderr, exit status 65."""

    exit_code = int(Exit.DATA)


class OptionsSchema(Schema):
    reliability = fields.Float(
        allow_none=True,
        validate=validate.Range(
            0,
            1,
            min_inclusive=False,
            max_inclusive=False,
            error="must be between 0 and 1 (exclusive)",
        ),
    )
    sd = fields.Float(allow_none=True, validate=validate.Range(0, min_inclusive=False))
    direction = fields.Enum(Direction, by_value=True, allow_none=True)
    method = fields.Enum(Method, by_value=True, allow_none=True)
    cutoff = fields.Enum(CutoffType, by_value=True, allow_none=True)
    clinical_mean = fields.Float(allow_none=True)
    clinical_sd = fields.Float(allow_none=True, validate=validate.Range(0, min_inclusive=False))
    functional_mean = fields.Float(allow_none=True)
    functional_sd = fields.Float(allow_none=True, validate=validate.Range(0, min_inclusive=False))
    instrument = fields.String(allow_none=True)

    @validates_schema
    def check_source(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("instrument") is None:
            if data.get("reliability") is None:
                raise ValidationError("give --instrument or --reliability", "reliability")
            if data.get("direction") is None:
                raise ValidationError("give --instrument or --direction", "direction")
        needs: tuple[str, ...] = ()
        if data.get("cutoff") in (CutoffType.B, CutoffType.C):
            needs = ("functional_mean", "functional_sd")
        if data.get("instrument") is None:
            for name in needs:
                if data.get(name) is None:
                    option = "--" + name.replace("_", "-")
                    raise ValidationError(f"cutoff {data['cutoff'].value} needs {option}", name)


CELL = fields.Float(allow_nan=False)


def _describe(exc: ValidationError) -> str:
    messages = exc.messages if isinstance(exc.messages, dict) else {"options": exc.messages}
    parts = []
    for key, value in messages.items():
        text = " ".join(value) if isinstance(value, list) else str(value)
        parts.append(f"--{key.replace('_', '-')}: {text}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Pair:
    row: int
    id: str
    pre: float
    post: float


def _cell(value: str, row: int, column: str) -> float | None:
    if value.strip().lower() in MISSING:
        return None
    try:
        return float(CELL.deserialize(value.strip()))
    except ValidationError as exc:
        raise InputError(f"row {row}, column {column!r}: {value!r} is not a number") from exc


def read_pairs(
    stream: IO[str], pre_column: str, post_column: str, id_column: str | None
) -> tuple[list[Pair], list[str]]:
    """Complete pairs, plus one message per skipped row."""
    reader = csv.DictReader(stream)
    columns = reader.fieldnames or []
    for option, column in (
        ("--pre-column", pre_column),
        ("--post-column", post_column),
        ("--id-column", id_column),
    ):
        if column is not None and column not in columns:
            raise InputError(f"{option}: no column {column!r} (columns: {', '.join(columns)})")
    pairs: list[Pair] = []
    skipped: list[str] = []
    for row, record in enumerate(reader, start=1):
        pre = _cell(record.get(pre_column) or "", row, pre_column)
        post = _cell(record.get(post_column) or "", row, post_column)
        ident = (record.get(id_column) or "") if id_column else str(row)
        if pre is None or post is None:
            missing = pre_column if pre is None else post_column
            skipped.append(f"row {row}: missing value in column {missing!r}, skipped")
            continue
        pairs.append(Pair(row, ident, pre, post))
    return pairs, skipped


def group_statistics(pairs: list[Pair]) -> GroupStatistics:
    pre = [p.pre for p in pairs]
    post = [p.post for p in pairs]
    post_sd = statistics.stdev(post)
    correlation = None
    if post_sd > 0 and statistics.stdev(pre) > 0:
        correlation = statistics.correlation(pre, post)
    return GroupStatistics(
        pre_mean=statistics.fmean(pre),
        post_mean=statistics.fmean(post),
        post_sd=post_sd if post_sd > 0 else None,
        correlation=correlation,
    )


def build_parameters(
    options: dict[str, Any], pairs: list[Pair], catalogue: ParameterSet | None
) -> tuple[ReliableChangeParameters, Method]:
    """Data file entry (if any), then explicit options, then statistics of the data."""
    pre = [p.pre for p in pairs]
    sample_sd = statistics.stdev(pre)
    base: dict[str, Any] = {}
    method = Method.JACOBSON_TRUAX
    if options.get("instrument"):
        assert catalogue is not None
        score = catalogue.get(options["instrument"], options.get("score"))
        base = {name: value.value for name, value in score.values.items()}
        base["direction"] = score.direction
        base["cutoff_type"] = score.cutoff_type
        method = score.default_method
    for name in (
        "reliability",
        "sd",
        "direction",
        "clinical_mean",
        "clinical_sd",
        "functional_mean",
        "functional_sd",
    ):
        if options.get(name) is not None:
            base[name] = options[name]
    if options.get("cutoff") is not None:
        base["cutoff_type"] = options["cutoff"]
        base.pop("cutoff_value", None)
    if options.get("reliability") is not None:
        base.pop("critical_difference", None)
        base.pop("critical_difference_functional", None)
    if base.get("reliability") is not None and base.get("sd") is None:
        base["sd"] = sample_sd
    if base.get("cutoff_type") in (CutoffType.A, CutoffType.C):
        base.setdefault("clinical_mean", statistics.fmean(pre))
        base.setdefault("clinical_sd", sample_sd)
    method = options.get("method") or method
    params = ReliableChangeParameters(**base)
    return replace(params, group=group_statistics(pairs)), method


def _rows(pairs: list[Pair], params: ReliableChangeParameters, method: Method) -> list[dict]:
    rows = []
    for pair in pairs:
        result = classify(pair.pre, pair.post, params, method)
        rows.append(
            {
                "row": pair.row,
                "id": pair.id,
                "pre": pair.pre,
                "post": pair.post,
                "change": pair.post - pair.pre,
                "index": round(result.index, 6),
                "reliable": result.reliable,
                "category": result.category.value,
            }
        )
    return rows


def _write(
    rows: list[dict], summary: dict[str, int], meta: dict[str, Any], fmt: str, out: IO[str]
) -> None:
    if fmt == "json":
        json.dump({**meta, "rows": rows, "summary": summary}, out, indent=2)
        out.write("\n")
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["row", "id", "pre", "post", "change", "index", "reliable", "category"])
    for r in rows:
        writer.writerow(
            [
                r["row"],
                r["id"],
                r["pre"],
                r["post"],
                r["change"],
                r["index"],
                str(r["reliable"]).lower(),
                r["category"],
            ]
        )
    writer.writerow([])
    writer.writerow(["category", "n"])
    for category, n in summary.items():
        writer.writerow([category, n])


@click.command("reliable-change", epilog=epilog(Exit.OK, Exit.USAGE, Exit.DATA))
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--pre-column", required=True, help="Column of pre-treatment scores.")
@click.option("--post-column", required=True, help="Column of post-treatment scores.")
@click.option("--id-column", help="Column identifying each patient.")
@click.option("--instrument", help="Questionnaire id whose parameters to use from the data file.")
@click.option("--score", help="Score linkId (default: the instrument's total).")
@click.option(
    "--parameters-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Site override of the psychometric parameter file.",
)
@click.option("--reliability", type=str, help="Reliability in (0, 1).")
@click.option("--sd", type=str, help="SD for the standard error (default: SD of pre scores).")
@click.option("--direction", type=click.Choice([d.value for d in Direction]))
@click.option("--method", type=click.Choice([m.value for m in Method]))
@click.option("--cutoff", type=click.Choice([c.value for c in CutoffType]))
@click.option("--clinical-mean", type=str)
@click.option("--clinical-sd", type=str)
@click.option("--functional-mean", type=str)
@click.option("--functional-sd", type=str)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.option(
    "--output",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="Output file (default: stdout).",
)
def reliable_change(
    csv_file: IO[str],
    pre_column: str,
    post_column: str,
    id_column: str | None,
    parameters_file: Path | None,
    fmt: str,
    output: IO[str],
    **raw: Any,
) -> None:
    """Reliable change index and change category for each row of CSV_FILE."""
    score = raw.pop("score")
    try:
        options = OptionsSchema().load(raw)
    except ValidationError as exc:
        raise InputError(_describe(exc)) from exc
    options["score"] = score
    pairs, skipped = read_pairs(io.StringIO(csv_file.read()), pre_column, post_column, id_column)
    for message in skipped:
        click.echo(message, err=True)
    if len(pairs) < 2:
        raise InputError(f"only {len(pairs)} complete row(s): at least 2 are needed")
    try:
        catalogue = None
        if options.get("instrument"):
            # The same files the service uses: MIT_FHIR_PROFILE_DIR, MIT_FHIR_PSYCHOMETRICS_FILE.
            settings = env_settings()
            profiles = Path(settings.get("PROFILE_DIR", PROFILE_DIR))
            override = parameters_file or settings.get("PSYCHOMETRICS_FILE")
            catalogue = load_parameters(override, profiles / "psychometrics.json")
        params, method = build_parameters(options, pairs, catalogue)
        rows = _rows(pairs, params, method)
    except (ParameterError, statistics.StatisticsError) as exc:
        raise InputError(str(exc)) from exc
    counts = Counter(r["category"] for r in rows)
    summary = {c.value: counts.get(c.value, 0) for c in Category}
    meta = {"method": method.value, "n": len(rows), "skipped": skipped}
    _write(rows, summary, meta, fmt, output)


if __name__ == "__main__":  # pragma: no cover
    reliable_change(sys.argv[1:])
