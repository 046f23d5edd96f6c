#!/usr/bin/env bash
# Run loupe's selection of ceph/s3-tests (selection.txt) against an S3 endpoint, by hand:
#   run.sh CHECKOUT PORT ACCESS_KEY SECRET_KEY > result.txt
# CHECKOUT: a checkout of github.com/ceph/s3-tests with its requirements installed (a venv with
# boto3 munch isodate pytz httplib2 lxml pytest). Not run in CI: CI cannot fetch that suite;
# test/objectstore/conformance is loupe's own suite modelled on these cases, and runs in CI.
# The main, alt and tenant users all get the one key pair (the store has one owner);
# api_name is left empty (us-east-1 reports no LocationConstraint), so test_bucket_get_location skips.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
checkout=$1 port=$2 ak=$3 sk=$4
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
users=""
for u in "s3 main" "s3 alt" "s3 tenant" "iam" "iam root" "iam alt root"; do
  users+=$'\n'"[$u]"$'\n'"display_name = loupe"$'\n'"user_id = loupe"$'\n'"email = loupe@example.com"$'\n'"access_key = $ak"$'\n'"secret_key = $sk"$'\n'"api_name ="$'\n'"tenant = loupe"$'\n'
done
printf '[DEFAULT]\nhost = 127.0.0.1\nport = %s\nis_secure = False\nssl_verify = False\n[fixtures]\nbucket prefix = s3t-{random}-\niam name prefix = s3-tests-\niam path prefix = /s3-tests/\n%s' "$port" "$users" > "$conf"
cd "$checkout"
mapfile -t tests < <(sed 's#^#s3tests/functional/test_s3.py::#' "$here/selection.txt")
S3TEST_CONF=$conf python -m pytest -q -p no:cacheprovider -rf --tb=line "${tests[@]}"
