"""Schema: ``fednode schema infer | check``: draft a data schema, check a site's file against it.

``check`` exit codes: 0 at least one row fits; 1 nothing fits (the file is refused whole, or
every row is); 2 an error (unreadable file or schema). Output holds counts and places
(file, line, column) only, never a cell's content.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fednode.schema import (
    CheckReport,
    Problem,
    ReadOptions,
    check_rows,
    infer_schema,
    load_schema,
    read_table,
    render_schema_toml,
    schema_digest,
)

__all__ = ["add_schema_parser", "report_json"]


def _read_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("file", type=Path, help="a CSV or Parquet file")
    sub.add_argument("--delimiter", help="CSV field delimiter (default: sniffed); \\t for tab")
    sub.add_argument("--thousands", default=",", help="thousands separator ('' for none)")
    sub.add_argument("--decimal", default=".", help="decimal mark")


def add_schema_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers the ``schema`` verbs."""
    schema = commands.add_parser("schema", help="draft a data schema; check a file against it")
    verbs = schema.add_subparsers(dest="verb", required=True, metavar="VERB")
    infer = verbs.add_parser("infer", help="draft a schema from a sample file, for review")
    _read_args(infer)
    infer.add_argument("--label", required=True, help="the label column")
    infer.add_argument("--name", default="draft", help="the schema's name")
    infer.add_argument("--out", type=Path, help="write the TOML here (default: stdout)")
    infer.set_defaults(handler=_infer)
    check = verbs.add_parser("check", help="rows accepted and refused per reason")
    _read_args(check)
    check.add_argument("--schema", type=Path, required=True, help="schema TOML (or .json)")
    check.add_argument("--json", action="store_true", help="print JSON instead of text")
    check.set_defaults(handler=_check)


def _options(args: argparse.Namespace) -> ReadOptions:
    delimiter = args.delimiter.replace("\\t", "\t") if args.delimiter else None
    return ReadOptions(delimiter=delimiter, thousands=args.thousands, decimal=args.decimal)


def _infer(args: argparse.Namespace) -> int:
    options = _options(args)
    draft = infer_schema(read_table(args.file, options), label=args.label, name=args.name,
                         options=options)
    text = render_schema_toml(draft.schema, notes=dict(draft.notes))
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"drafted {args.out}: {len(draft.schema.columns)} columns, "
              f"{len(draft.schema.ignore)} ignored; review it before use", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    options = _options(args)
    schema = load_schema(args.schema)
    report = check_rows(read_table(args.file, options), schema, options)
    if args.json:
        payload = report_json(report)
        payload["schema_digest"] = "0x" + schema_digest(schema).hex()
        print(json.dumps(payload, indent=2, sort_keys=True))
    else:
        print(_report_text(report))
    return 0 if report.fits else 1


def report_json(report: CheckReport) -> dict[str, object]:
    """The report as JSON values: counts, places and feature names; never a cell."""
    return {
        "file": report.source,
        "rows_read": report.rows_read,
        "rows_accepted": report.rows_accepted,
        "refused": {reason.value: count for reason, count in report.refused},
        "file_problems": [_problem_json(problem) for problem in report.file_problems],
        "problems": [_problem_json(problem) for problem in report.problems],
        "features": list(report.feature_names),
        "fits": report.fits,
    }


def _problem_json(problem: Problem) -> dict[str, object]:
    return {"reason": problem.reason.value, problem.place_word: problem.place,
            "column": problem.column, "text": str(problem)}


def _report_text(report: CheckReport) -> str:
    lines = [f"{report.source}: {report.rows_accepted} of {report.rows_read} rows accepted"]
    lines += [f"  file refused: {problem}" for problem in report.file_problems]
    lines += [f"  refused {count:>6}  {reason.value}" for reason, count in report.refused]
    if report.problems:
        lines.append("  first refused rows:")
        lines += [f"    {problem}" for problem in report.problems[:10]]
    lines.append(f"  features: {len(report.feature_names)}")
    return "\n".join(lines)
