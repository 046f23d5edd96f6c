#!/usr/bin/env bash
# The Python side of loupe's S3 conformance suite: a venv with the pinned boto3 / pytest /
# requests, created once under ~/.cache/loupe/venvs/s3conformance-<hash of requirements.txt>
# (idempotent: an existing, working venv is kept). Prints the venv's python.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
h=$(sha256sum "$here/requirements.txt" | cut -c1-12)
venv="${LOUPE_CACHE:-$HOME/.cache/loupe}/venvs/s3conformance-$h"
if ! "$venv/bin/python" -c 'import boto3, pytest, requests' >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt" >&2
fi
echo "$venv/bin/python"
