"""Derive loupe's selection of ceph/s3-tests (the core object API) from a checkout of that suite.

usage: python3 select.py CHECKOUT MARKERS.tsv > selection.txt
MARKERS.tsv: "<test name>\t<marker,marker>" per collected test, written during
`S3TEST_CONF=... pytest -p markers_plugin --collect-only s3tests/functional/test_s3.py` by a plugin
module markers_plugin.py holding:
    def pytest_collection_modifyitems(items):
        with open('markers.tsv', 'w') as f:
            for it in items:
                f.write(it.name + '\t' + ','.join(sorted(m.name for m in it.iter_markers())) + '\n')
Rule: test_s3.py tests, minus those marked for features out of scope (ACLs beyond "private",
policies, versioning, lifecycle, encryption, tagging, object lock, logging, website, ...) or
rgw-only behaviour (fails_on_aws), minus tests that need a second user or tenant.
"""
import ast
import re
import sys

checkout, markers = sys.argv[1], sys.argv[2]
src = open(f'{checkout}/s3tests/functional/test_s3.py').read()
tree = ast.parse(src)
bodies = {n.name: ast.get_source_segment(src, n) for n in tree.body if isinstance(n, ast.FunctionDef)}
excl_marks = {'bucket_logging', 'bucket_logging_cleanup', 'encryption', 'sse_s3', 'bucket_encryption', 'bucket_policy', 'lifecycle', 'lifecycle_expiration',
              'lifecycle_transition', 'tagging', 'object_ownership', 'cloud_transition', 'cloud_restore', 'iam_user', 'iam_account', 'iam_tenant', 'delete_marker',
              'versioning', 'object_lock', 's3website', 'storage_class', 'appendobject', 'fails_on_aws', 'target_by_bucket', 'user_policy', 'group_policy',
              'role_policy', 'abac_test', 'fails_without_logging_rollover', 'auth_aws2', 's3select', 'sns'}
family = re.compile(r'acl|grant|polic|version|lifecycle|encrypt|sse_|_sse|kms|cors|tagging|_tags|object_lock|legal_hold|retention|website|logging|torrent|'
                    r'post_object|ownership|public_block|public_access|anonymous|unauthenticated|notification|restore|transition|tenant|object_attributes|'
                    r'usage|unordered|append|select|storage_class|read_through|cloud')
needs_other_users = re.compile(r"get_alt_client|get_tenant_client|get_unauthenticated_client|get_anon_|check_configure_versioning|put_bucket_versioning|"
                               r"Policy\(|get_iam|get_sts")
seen = set()
for line in open(markers):
    name, marks = line.rstrip('\n').split('\t')
    base = name.split('[')[0]
    if base in seen:
        continue
    seen.add(base)
    body = bodies.get(base, '')
    if set(filter(None, marks.split(','))) & excl_marks or family.search(base) or needs_other_users.search(body):
        continue
    acls = re.findall(r"ACL='([^']*)'", body) + [a for pair in re.findall(r"_acl\('([^']*)'(?:,\s*'([^']*)')?", body) for a in pair if a]
    if any(a != 'private' for a in acls) or re.search(r'Grant|get_bucket_acl|get_object_acl', body):
        continue
    print(base)
