#!/usr/bin/env python3
"""Time is read only through common/clock: anywhere else in the product tree, a read of a
system clock is a defect (code given a clock object runs on the virtual time of tests and of
the HA simulator; code reading the system clock behind its back does not).
Usage: clock_discipline.py SOURCE_DIR"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
FOLDERS = ["common", "proto", "storage", "actors", "gateway", "xen", "sm", "ha", "cli"]
ALLOWED = {"common/clock.cpp"}
# Any static ::now() (std::chrono clocks and aliases of them), C time functions.
READS = re.compile(r"::now\s*\(|\bclock_gettime\s*\(|\bgettimeofday\s*\(|(?<![\w.>])time\s*\(\s*(nullptr|NULL|0|&)"
                   r"|\bstd::time\s*\(")
found = []
for folder in FOLDERS:
    for path in sorted((root / folder).rglob("*")):
        if path.suffix not in {".cpp", ".hpp", ".h", ".cc"}:
            continue
        rel = path.relative_to(root).as_posix()
        if rel in ALLOWED:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            code = line.split("//", 1)[0]
            if READS.search(code):
                found.append(f"{rel}:{number}: {line.strip()}")
if found:
    print("clocks read outside common/clock:\n" + "\n".join(found))
    sys.exit(1)
print(f"clock discipline: no clock read outside common/clock in {', '.join(FOLDERS)}")
