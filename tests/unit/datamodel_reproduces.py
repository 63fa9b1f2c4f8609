#!/usr/bin/env python3
"""Re-runs the extractor on the seed and checks it reproduces the committed datamodel exactly,
and that the datamodel has as many RPCs as the seed has "RPC name:" entries.
Exits 77 (ctest: skipped) when the seed is not beside the checkout."""
import glob
import json
import os
import subprocess
import sys
import tempfile

root = sys.argv[1]
seed_dir = os.environ.get("XAPID_SEED_DIR", os.path.join(root, "..", "shared", "seeds"))
seeds = glob.glob(os.path.join(seed_dir, "001_*.txt"))
if not seeds:
    print(f"seed 001_*.txt not found in {seed_dir}; set XAPID_SEED_DIR")
    sys.exit(77)

committed = os.path.join(root, "proto", "datamodel", "xenapi.json")
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "xenapi.json")
    subprocess.run([sys.executable, os.path.join(root, "proto", "tools", "extract_datamodel.py"), seeds[0],
                    os.path.join(root, "proto", "datamodel", "overrides.json"), out], check=True)
    with open(out, "rb") as a, open(committed, "rb") as b:
        if a.read() != b.read():
            print("the extractor's output differs from proto/datamodel/xenapi.json: re-run it and commit")
            sys.exit(1)

with open(seeds[0], encoding="utf-8") as f:
    seed_rpcs = sum(1 for line in f if line.strip().startswith("RPC name:"))
with open(committed, encoding="utf-8") as f:
    model = json.load(f)
model_rpcs = sum(len(c["messages"]) for c in model["classes"])
if seed_rpcs != model_rpcs:
    print(f"the seed has {seed_rpcs} RPCs, the datamodel {model_rpcs}")
    sys.exit(1)
print(f"datamodel reproduced; {model_rpcs} RPCs, {len(model['classes'])} classes")
