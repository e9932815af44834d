"""Write the comparison of ``recipes/variants/run.sh`` from its per-domain reports: OUT.md, OUT.csv and OUT.png.

    python recipes/variants/table.py work/variants/speech.json work/variants/music.json -o work/variants/comparison

Each JSON is a report of ``audiovae evaluate variants --json``; its domain is its file name (``speech``, ``music``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audiovae.evaluation.variants import load_report, write_comparison


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="JSON reports, one per domain (named for it)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output path without suffix")
    args = parser.parse_args()
    for path in write_comparison({p.stem: load_report(p) for p in args.reports}, args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
