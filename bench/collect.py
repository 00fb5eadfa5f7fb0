"""All stages: assembles docs/BENCHMARKS.md from the per-topic results in docs/benchmarks/.

Each benchmark script writes its own ``docs/benchmarks/<topic>.md`` (the table, the exact
command that made it, the machine). This script puts them together, in pipeline order, so
docs/BENCHMARKS.md always matches the per-topic files. Run:

    .venv/bin/python bench/collect.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPICS = (
    ("learning", "Learning: accuracy, privacy, compression, asynchrony, Flower"),
    ("gas", "Chain: gas per operation on real geth"),
    ("edge", "Edge: load, latency, calldata ceiling"),
    ("reliability", "Reliability and performance: faults, attacks, throughput"),
)
HEADER = """# Benchmarks

Every number below was produced by a script in `bench/` on this project's machine (2 CPU cores,
24 GiB, no GPU) and is reproducible with the command printed next to it. Ratios are measured side
by side in one run. This file is assembled by `.venv/bin/python bench/collect.py` from
`docs/benchmarks/<topic>.md`, which the benchmark scripts write.
"""


def _demote(markdown: str) -> str:
    """Drops the topic's own title and shifts its headings down under this file's '##'."""
    lines = []
    body = markdown.strip().splitlines()
    if body and body[0].startswith("# "):
        body = body[1:]
    for line in body:
        lines.append("#" + line if line.startswith("#") else line)
    return "\n".join(lines).strip()


def collect(source: Path, *, title_by_topic=TOPICS) -> str:
    """The assembled document: header, contents, then one section per available topic."""
    parts, contents = [], []
    for topic, title in title_by_topic:
        path = source / f"{topic}.md"
        if not path.exists():
            continue
        contents.append(f"- [{title}](#{topic})")
        parts.append(f'<a id="{topic}"></a>\n\n## {title}\n\n_Source: docs/benchmarks/{topic}.md_'
                     f"\n\n{_demote(path.read_text())}")
    return "\n\n".join([HEADER.strip(), "\n".join(contents), *parts]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()
    args.out.write_text(collect(args.source))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
