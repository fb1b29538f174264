#!/usr/bin/env bash
# Your own CSV and your own Keras teacher, end to end: the walkthrough of
# README.md's "Your own model and data" (tests/test_own_data.py runs it).
#
#   tools/own_data_walkthrough.sh WORK
#
# Writes WORK/clicks.csv, teacher.keras and requests.json
# (tools/own_data_example.py), distils tfkd's student from that teacher,
# exports the student as full-int8 LiteRT and scores the requests with
# LiteRT alone. Each command is printed, after "$ ", before it runs.
# TFKD and PYTHON pick other installs (default: the repository's .venv;
# relative paths start at the repository root).
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 WORK   (a folder for the files, created if missing)" >&2
  exit 2
fi
mkdir -p "$1"
work=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
TFKD=${TFKD:-.venv/bin/tfkd}
PYTHON=${PYTHON:-.venv/bin/python}

run() {
  echo "\$ $*"
  "$@"
}

run "$PYTHON" tools/own_data_example.py "$work"
run "$TFKD" distill --data "$work/clicks.csv" --label clicked \
  --teacher "$work/teacher.keras" --spec-out "$work/spec.json" \
  --output "$work/student.keras"
run "$TFKD" export "$work/student.keras" "$work/student.tflite" \
  --data "$work/clicks.csv" --label clicked --spec "$work/spec.json"
run "$PYTHON" export/run_tflite.py "$work/student.tflite" \
  --requests "$work/requests.json"
