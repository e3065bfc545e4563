"""Per-crate line coverage as Markdown, from `cargo llvm-cov report --json --summary-only`.

Usage: cargo metadata --no-deps --format-version 1 | coverage_table.py SUMMARY.json HOW
Each source file counts for the workspace crate whose directory holds it (the deepest one);
the system-test harness (ktrdr-system-tests) is test code and is left out.
"""

import json
import os
import sys

LEFT_OUT = {"ktrdr-system-tests"}


def main() -> None:
    summary_path, how = sys.argv[1], sys.argv[2]
    metadata = json.load(sys.stdin)
    crates = sorted(
        ((os.path.dirname(p["manifest_path"]) + os.sep, p["name"]) for p in metadata["packages"]),
        key=lambda c: len(c[0]),
        reverse=True,
    )
    with open(summary_path) as f:
        report = json.load(f)
    totals: dict[str, list[int]] = {}
    for entry in report["data"]:
        for file in entry["files"]:
            crate = next((name for root, name in crates if file["filename"].startswith(root)), None)
            if crate is None or crate in LEFT_OUT:
                continue
            lines = file["summary"]["lines"]
            counts = totals.setdefault(crate, [0, 0])
            counts[0] += lines["covered"]
            counts[1] += lines["count"]
    print("# Test coverage")
    print()
    print(f"Line coverage per crate, written by {how}; regenerate it rather than editing it.")
    if "--workspace" in how:
        print("Unit tests and the cross-service tests (the real binaries, instrumented) together.")
    else:
        print("Only the selected crates' own tests ran.")
    print()
    print("| crate | lines | covered | % |")
    print("|---|---:|---:|---:|")
    covered = count = 0
    for crate, (c, n) in sorted(totals.items()):
        covered, count = covered + c, count + n
        print(f"| {crate} | {n} | {c} | {100 * c / max(n, 1):.1f} |")
    print(f"| **all** | {count} | {covered} | {100 * covered / max(count, 1):.1f} |")


if __name__ == "__main__":
    main()
