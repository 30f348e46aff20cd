#!/bin/sh
# The CI job of a library with its own BatchApply (run from this folder).
set -e
# 1. Known deviations only: exit 1 on a new FAIL, or on a listed one that now passes.
batchapply-conformance mylib.py:BatchApply --expect conformance-expect.txt --json report.json "$@"
# 2. Nothing regressed since the report of the last release (kept in the repository).
if [ -f baseline.json ]; then
  batchapply-conformance diff baseline.json report.json
fi
