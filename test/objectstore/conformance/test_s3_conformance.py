"""loupe's S3 conformance suite, run with boto3 (an independent client and signer).

Modelled on the core object-API cases of ceph/s3-tests (buckets, objects, listings, multipart,
copy, ranges, conditionals, checksums, signatures), written for loupe: that suite cannot be
fetched in CI. Each case states the S3 behaviour it checks. The store keeps one version per key,
has ACLs off (bucket owner enforced) and one key pair.
"""
import base64
import datetime
import hashlib
import zlib

import pytest
import requests
from botocore.exceptions import ClientError

MiB = 1024 * 1024


def err(call, *args, **kwargs):
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    r = e.value.response
    return r['ResponseMetadata']['HTTPStatusCode'], r['Error'].get('Code')


def body(s3, bucket, key, **kw):
    return s3.get_object(Bucket=bucket, Key=key, **kw)['Body'].read()


def put_keys(s3, bucket, keys):
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())


# ---- buckets ----

def test_bucket_create_list_head_delete(s3, bucket):
    assert bucket in [b['Name'] for b in s3.list_buckets()['Buckets']]
    assert s3.head_bucket(Bucket=bucket)['ResponseMetadata']['HTTPStatusCode'] == 200
    assert err(s3.head_bucket, Bucket=bucket + 'x') == (404, '404')


def test_bucket_recreate_own_in_us_east_1_is_ok(s3, bucket):
    assert s3.create_bucket(Bucket=bucket)['ResponseMetadata']['HTTPStatusCode'] == 200


@pytest.mark.parametrize('name', ['ab', 'Upper-case', 'under_score', '-dash-first', 'a' * 64, '192.168.5.4', 'dot..dot'])
def test_bucket_bad_names(s3, name):
    from botocore.handlers import validate_bucket_name
    s3.meta.events.unregister('before-parameter-build.s3', validate_bucket_name)
    try:
        status, code = err(s3.create_bucket, Bucket=name)
        assert status == 400 and code == 'InvalidBucketName'
    finally:
        s3.meta.events.register('before-parameter-build.s3', validate_bucket_name)


def test_bucket_delete_nonempty_and_missing(s3, bucket):
    s3.put_object(Bucket=bucket, Key='x', Body=b'1')
    assert err(s3.delete_bucket, Bucket=bucket) == (409, 'BucketNotEmpty')
    assert err(s3.delete_bucket, Bucket=bucket + 'gone') == (404, 'NoSuchBucket')


def test_list_buckets_paginated(s3, bucket):
    first = s3.list_buckets(MaxBuckets=1, Prefix='conf-')
    assert len(first['Buckets']) == 1


def test_bucket_location_and_unversioned(s3, bucket):
    assert s3.get_bucket_location(Bucket=bucket).get('LocationConstraint') in (None, '')
    assert 'Status' not in s3.get_bucket_versioning(Bucket=bucket)


def test_bucket_settings_not_kept_are_refused(s3, bucket):
    status, code = err(s3.put_bucket_versioning, Bucket=bucket, VersioningConfiguration={'Status': 'Enabled'})
    assert status == 501 and code == 'NotImplemented'


# ---- objects ----

def test_put_get_head_delete(s3, bucket):
    r = s3.put_object(Bucket=bucket, Key='obj', Body=b'hello', ContentType='text/plain', CacheControl='no-cache', Metadata={'a': '1'})
    assert r['ETag'] == '"%s"' % hashlib.md5(b'hello').hexdigest()
    g = s3.get_object(Bucket=bucket, Key='obj')
    assert g['Body'].read() == b'hello'
    assert g['ContentType'] == 'text/plain' and g['CacheControl'] == 'no-cache' and g['Metadata'] == {'a': '1'}
    h = s3.head_object(Bucket=bucket, Key='obj')
    assert h['ContentLength'] == 5 and h['ETag'] == r['ETag']
    s3.delete_object(Bucket=bucket, Key='obj')
    assert err(s3.get_object, Bucket=bucket, Key='obj') == (404, 'NoSuchKey')
    # deleting what is not there is not an error
    assert s3.delete_object(Bucket=bucket, Key='obj')['ResponseMetadata']['HTTPStatusCode'] == 204


def test_zero_bytes_and_overwrite_replaces_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key='z', Body=b'', Metadata={'old': 'yes'})
    assert s3.head_object(Bucket=bucket, Key='z')['ContentLength'] == 0
    s3.put_object(Bucket=bucket, Key='z', Body=b'new')
    h = s3.head_object(Bucket=bucket, Key='z')
    assert h['Metadata'] == {} and h['ContentLength'] == 3


def test_write_to_missing_bucket(s3):
    assert err(s3.put_object, Bucket='conf-no-such-bucket-x', Key='k', Body=b'1') == (404, 'NoSuchBucket')


@pytest.mark.parametrize('key', [' ', ' a', 'a ', '"', '$', '%', '&', "'", '<', '>', '_ _', 'a\nb', 'dir//x', '../up', 'ünïcødé/ключ', '?versionId=1', 'a+b c'])
def test_special_key_names_round_trip(s3, bucket, key):
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert body(s3, bucket, key) == key.encode()
    assert [o['Key'] for o in s3.list_objects_v2(Bucket=bucket)['Contents']] == [key]


def test_unicode_metadata_value_is_signed_and_kept(s3, bucket):
    s3.put_object(Bucket=bucket, Key='m', Body=b'1', Metadata={'x': 'plain'})
    assert s3.head_object(Bucket=bucket, Key='m')['Metadata'] == {'x': 'plain'}


def test_content_encoding_aws_chunked_not_stored(s3, bucket):
    s3.put_object(Bucket=bucket, Key='e', Body=b'x', ContentEncoding='gzip, aws-chunked')
    assert s3.head_object(Bucket=bucket, Key='e')['ContentEncoding'] == 'gzip'
    s3.put_object(Bucket=bucket, Key='e', Body=b'x', ContentEncoding='aws-chunked')
    assert 'ContentEncoding' not in s3.head_object(Bucket=bucket, Key='e')


def test_bad_content_md5_keeps_old_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key='k', Body=b'original')
    bad = base64.b64encode(hashlib.md5(b'other').digest()).decode()
    status, code = err(s3.put_object, Bucket=bucket, Key='k', Body=b'tampered', ContentMD5=bad)
    assert (status, code) == (400, 'BadDigest')
    assert body(s3, bucket, 'k') == b'original'


def test_canned_acl_private_only(s3, bucket):
    s3.put_object(Bucket=bucket, Key='k', Body=b'1', ACL='private')
    assert err(s3.put_object, Bucket=bucket, Key='k', Body=b'1', ACL='public-read') == (400, 'AccessControlListNotSupported')
    grants = s3.get_object_acl(Bucket=bucket, Key='k')['Grants']
    assert [g['Permission'] for g in grants] == ['FULL_CONTROL']


# ---- listings ----

KEYS = ['asdf', 'boo/bar', 'boo/baz/xyzzy', 'cquux/thud', 'cquux/bla']


def test_list_v1_delimiter_prefix(s3, bucket):
    put_keys(s3, bucket, KEYS)
    r = s3.list_objects(Bucket=bucket, Delimiter='/')
    assert [o['Key'] for o in r['Contents']] == ['asdf']
    assert [p['Prefix'] for p in r['CommonPrefixes']] == ['boo/', 'cquux/']
    r = s3.list_objects(Bucket=bucket, Prefix='boo/', Delimiter='/')
    assert r['Prefix'] == 'boo/'
    assert [o['Key'] for o in r['Contents']] == ['boo/bar'] and [p['Prefix'] for p in r['CommonPrefixes']] == ['boo/baz/']


def test_list_v2_delimiter_prefix_and_keycount(s3, bucket):
    put_keys(s3, bucket, KEYS)
    r = s3.list_objects_v2(Bucket=bucket, Delimiter='/')
    assert r['KeyCount'] == 3
    assert [p['Prefix'] for p in r['CommonPrefixes']] == ['boo/', 'cquux/']


def test_list_max_keys_and_paging(s3, bucket):
    put_keys(s3, bucket, ['a', 'b', 'c', 'd', 'e'])
    r = s3.list_objects(Bucket=bucket, MaxKeys=2)
    assert r['IsTruncated'] and [o['Key'] for o in r['Contents']] == ['a', 'b']
    r = s3.list_objects(Bucket=bucket, Marker='b', MaxKeys=2)
    assert [o['Key'] for o in r['Contents']] == ['c', 'd']
    keys, token = [], None
    while True:
        kw = {'ContinuationToken': token} if token else {}
        r = s3.list_objects_v2(Bucket=bucket, MaxKeys=2, **kw)
        keys += [o['Key'] for o in r.get('Contents', [])]
        if not r['IsTruncated']:
            break
        token = r['NextContinuationToken']
    assert keys == ['a', 'b', 'c', 'd', 'e']
    assert [o['Key'] for o in s3.list_objects_v2(Bucket=bucket, StartAfter='c')['Contents']] == ['d', 'e']


def test_list_max_keys_zero_is_empty_and_not_truncated(s3, bucket):
    put_keys(s3, bucket, ['a', 'b'])
    for r in (s3.list_objects(Bucket=bucket, MaxKeys=0), s3.list_objects_v2(Bucket=bucket, MaxKeys=0)):
        assert r['IsTruncated'] is False and 'Contents' not in r


def test_list_max_keys_invalid(s3, bucket):
    def bad(params, **kw):
        params['url'] = params['url'].replace('max-keys=1', 'max-keys=blah')
    s3.meta.events.register('before-call.s3.ListObjects', bad)
    try:
        assert err(s3.list_objects, Bucket=bucket, MaxKeys=1) == (400, 'InvalidArgument')
    finally:
        s3.meta.events.unregister('before-call.s3.ListObjects', bad)


def test_list_encoding_url_round_trips_odd_keys(s3, bucket):
    keys = ['a b/c', 'x+y', 'ü/1', 'tab\tkey']
    put_keys(s3, bucket, keys)
    assert sorted(o['Key'] for o in s3.list_objects(Bucket=bucket)['Contents']) == sorted(keys)
    assert sorted(o['Key'] for o in s3.list_objects_v2(Bucket=bucket)['Contents']) == sorted(keys)
    r = s3.list_objects(Bucket=bucket, Prefix='a b', Delimiter='/')
    assert r['Prefix'] == 'a b' and [p['Prefix'] for p in r['CommonPrefixes']] == ['a b/']


def test_list_object_versions_unversioned(s3, bucket):
    put_keys(s3, bucket, ['a', 'b'])
    v = s3.list_object_versions(Bucket=bucket)['Versions']
    assert [(x['Key'], x['VersionId'], x['IsLatest']) for x in v] == [('a', 'null', True), ('b', 'null', True)]


# ---- DeleteObjects ----

def test_delete_objects_exact_keys(s3, bucket):
    put_keys(s3, bucket, ['a', ' a', 'a ', 'a\n', 'keep'])
    r = s3.delete_objects(Bucket=bucket, Delete={'Objects': [{'Key': ' a'}, {'Key': 'a\n'}]})
    assert sorted(d['Key'] for d in r['Deleted']) == sorted([' a', 'a\n'])
    assert sorted(o['Key'] for o in s3.list_objects_v2(Bucket=bucket)['Contents']) == sorted(['a', 'a ', 'keep'])


def test_delete_objects_quiet_and_limit(s3, bucket):
    put_keys(s3, bucket, ['x', 'y'])
    r = s3.delete_objects(Bucket=bucket, Delete={'Objects': [{'Key': 'x'}, {'Key': 'y'}, {'Key': 'never'}], 'Quiet': True})
    assert 'Deleted' not in r and 'Errors' not in r
    status, _ = err(s3.delete_objects, Bucket=bucket, Delete={'Objects': [{'Key': f'k{i}'} for i in range(1001)]})
    assert status == 400


# ---- ranges ----

def test_ranges(s3, bucket):
    data = bytes(range(256)) * 40
    s3.put_object(Bucket=bucket, Key='r', Body=data)
    r = s3.get_object(Bucket=bucket, Key='r', Range='bytes=4-7')
    assert r['ResponseMetadata']['HTTPStatusCode'] == 206 and r['Body'].read() == data[4:8]
    assert r['ContentRange'] == 'bytes 4-7/%d' % len(data)
    assert body(s3, bucket, 'r', Range='bytes=-5') == data[-5:]
    assert body(s3, bucket, 'r', Range='bytes=10000-') == data[10000:]
    assert body(s3, bucket, 'r', Range='bytes=0-999999') == data
    assert err(s3.get_object, Bucket=bucket, Key='r', Range='bytes=20000-20010') == (416, 'InvalidRange')


# ---- conditionals ----

def test_get_conditionals(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key='c', Body=b'x')['ETag']
    assert body(s3, bucket, 'c', IfMatch=etag) == b'x'
    assert err(s3.get_object, Bucket=bucket, Key='c', IfMatch='"bogus"') == (412, 'PreconditionFailed')
    assert err(s3.get_object, Bucket=bucket, Key='c', IfNoneMatch=etag)[0] == 304
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    assert body(s3, bucket, 'c', IfModifiedSince=past) == b'x'
    assert err(s3.get_object, Bucket=bucket, Key='c', IfModifiedSince=future)[0] == 304
    assert body(s3, bucket, 'c', IfUnmodifiedSince=future) == b'x'
    assert err(s3.get_object, Bucket=bucket, Key='c', IfUnmodifiedSince=past) == (412, 'PreconditionFailed')


def test_put_conditionals(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key='p', Body=b'1', IfNoneMatch='*')['ETag']
    assert err(s3.put_object, Bucket=bucket, Key='p', Body=b'2', IfNoneMatch='*') == (412, 'PreconditionFailed')
    assert err(s3.put_object, Bucket=bucket, Key='p', Body=b'2', IfMatch='"bogus"') == (412, 'PreconditionFailed')
    assert err(s3.put_object, Bucket=bucket, Key='absent', Body=b'2', IfMatch='*') == (404, 'NoSuchKey')
    assert body(s3, bucket, 'p') == b'1'
    s3.put_object(Bucket=bucket, Key='p', Body=b'3', IfMatch=etag)
    assert body(s3, bucket, 'p') == b'3'


# ---- copy ----

def test_copy_same_and_other_bucket_keeps_metadata(s3, bucket, make_client):
    s3.put_object(Bucket=bucket, Key='src', Body=b'payload', ContentType='x/y', Metadata={'m': '1'})
    s3.copy_object(Bucket=bucket, Key='dst', CopySource={'Bucket': bucket, 'Key': 'src'})
    h = s3.head_object(Bucket=bucket, Key='dst')
    assert h['ContentType'] == 'x/y' and h['Metadata'] == {'m': '1'}
    s3.copy_object(Bucket=bucket, Key='dst2', CopySource={'Bucket': bucket, 'Key': 'src'}, MetadataDirective='REPLACE', Metadata={'n': '2'}, ContentType='a/b')
    h = s3.head_object(Bucket=bucket, Key='dst2')
    assert h['Metadata'] == {'n': '2'} and h['ContentType'] == 'a/b'
    assert body(s3, bucket, 'dst2') == b'payload'


def test_copy_to_itself_needs_replace(s3, bucket):
    s3.put_object(Bucket=bucket, Key='self', Body=b'1')
    assert err(s3.copy_object, Bucket=bucket, Key='self', CopySource={'Bucket': bucket, 'Key': 'self'}) == (400, 'InvalidRequest')
    s3.copy_object(Bucket=bucket, Key='self', CopySource={'Bucket': bucket, 'Key': 'self'}, MetadataDirective='REPLACE', Metadata={'v': '2'})
    assert s3.head_object(Bucket=bucket, Key='self')['Metadata'] == {'v': '2'}


def test_copy_missing_source(s3, bucket):
    assert err(s3.copy_object, Bucket=bucket, Key='d', CopySource={'Bucket': bucket, 'Key': 'nope'}) == (404, 'NoSuchKey')
    assert err(s3.copy_object, Bucket=bucket, Key='d', CopySource={'Bucket': 'conf-missing-bucket-x', 'Key': 'nope'}) == (404, 'NoSuchBucket')


def test_copy_from_key_with_versionid_text(s3, bucket):
    s3.put_object(Bucket=bucket, Key='foo', Body=b'plain')
    s3.put_object(Bucket=bucket, Key='foo?versionId=1', Body=b'other')
    s3.copy_object(Bucket=bucket, Key='d', CopySource={'Bucket': bucket, 'Key': 'foo?versionId=1'})
    assert body(s3, bucket, 'd') == b'other'
    s3.copy_object(Bucket=bucket, Key='d2', CopySource={'Bucket': bucket, 'Key': 'foo', 'VersionId': 'null'})
    assert body(s3, bucket, 'd2') == b'plain'


def test_copy_conditionals_leave_destination_alone(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key='s', Body=b'new')['ETag']
    s3.put_object(Bucket=bucket, Key='d', Body=b'old')
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    src = {'Bucket': bucket, 'Key': 's'}
    for kw in ({'CopySourceIfMatch': '"bogus"'}, {'CopySourceIfNoneMatch': etag}, {'CopySourceIfModifiedSince': future}, {'CopySourceIfUnmodifiedSince': past}):
        assert err(s3.copy_object, Bucket=bucket, Key='d', CopySource=src, **kw) == (412, 'PreconditionFailed'), kw
    assert body(s3, bucket, 'd') == b'old'
    s3.copy_object(Bucket=bucket, Key='d', CopySource=src, CopySourceIfMatch=etag, CopySourceIfModifiedSince=past)
    assert body(s3, bucket, 'd') == b'new'


# ---- multipart ----

def _mpu(s3, bucket, key, sizes, **create):
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)['UploadId']
    parts, data = [], b''
    for i, n in enumerate(sizes, 1):
        chunk = bytes([65 + i % 26]) * n
        data += chunk
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=i, Body=chunk)
        parts.append({'PartNumber': i, 'ETag': r['ETag']})
    return up, parts, data


def test_multipart_upload_etag_and_parts(s3, bucket):
    up, parts, data = _mpu(s3, bucket, 'mp', [5 * MiB, 1 * MiB])
    listed = s3.list_parts(Bucket=bucket, Key='mp', UploadId=up)['Parts']
    assert [p['Size'] for p in listed] == [5 * MiB, MiB]
    r = s3.complete_multipart_upload(Bucket=bucket, Key='mp', UploadId=up, MultipartUpload={'Parts': parts})
    md5s = b''.join(bytes.fromhex(p['ETag'].strip('"')) for p in parts)
    assert r['ETag'] == '"%s-2"' % hashlib.md5(md5s).hexdigest()
    assert body(s3, bucket, 'mp') == data


def test_multipart_complete_retry_gets_same_answer(s3, bucket):
    up, parts, _ = _mpu(s3, bucket, 'mp', [10])
    first = s3.complete_multipart_upload(Bucket=bucket, Key='mp', UploadId=up, MultipartUpload={'Parts': parts})
    again = s3.complete_multipart_upload(Bucket=bucket, Key='mp', UploadId=up, MultipartUpload={'Parts': parts})
    assert again['ETag'] == first['ETag']


def test_multipart_errors(s3, bucket):
    up, parts, _ = _mpu(s3, bucket, 'mp', [100, 100])
    assert err(s3.complete_multipart_upload, Bucket=bucket, Key='mp', UploadId=up, MultipartUpload={'Parts': parts}) == (400, 'EntityTooSmall')
    assert err(s3.complete_multipart_upload, Bucket=bucket, Key='mp', UploadId=up, MultipartUpload={'Parts': [{'PartNumber': 1, 'ETag': '"00"'}]}) == (400, 'InvalidPart')
    assert err(s3.complete_multipart_upload, Bucket=bucket, Key='mp', UploadId=up, MultipartUpload={'Parts': parts[::-1]}) == (400, 'InvalidPartOrder')
    s3.abort_multipart_upload(Bucket=bucket, Key='mp', UploadId=up)
    assert err(s3.list_parts, Bucket=bucket, Key='mp', UploadId=up) == (404, 'NoSuchUpload')
    assert err(s3.complete_multipart_upload, Bucket=bucket, Key='mp', UploadId='0' * 32, MultipartUpload={'Parts': parts}) == (404, 'NoSuchUpload')


def test_multipart_list_uploads(s3, bucket):
    a = s3.create_multipart_upload(Bucket=bucket, Key='a')['UploadId']
    s3.create_multipart_upload(Bucket=bucket, Key='b')
    ups = s3.list_multipart_uploads(Bucket=bucket)['Uploads']
    assert sorted(u['Key'] for u in ups) == ['a', 'b']
    s3.abort_multipart_upload(Bucket=bucket, Key='a', UploadId=a)
    assert [u['Key'] for u in s3.list_multipart_uploads(Bucket=bucket)['Uploads']] == ['b']


def test_multipart_get_part(s3, bucket):
    up, parts, data = _mpu(s3, bucket, 'mp', [5 * MiB, 2 * MiB])
    s3.complete_multipart_upload(Bucket=bucket, Key='mp', UploadId=up, MultipartUpload={'Parts': parts})
    p2 = s3.get_object(Bucket=bucket, Key='mp', PartNumber=2)
    assert p2['PartsCount'] == 2 and p2['ContentLength'] == 2 * MiB and p2['Body'].read() == data[5 * MiB:]
    assert s3.head_object(Bucket=bucket, Key='mp', PartNumber=1)['ContentLength'] == 5 * MiB
    assert err(s3.get_object, Bucket=bucket, Key='mp', PartNumber=3) == (400, 'InvalidPart')
    s3.put_object(Bucket=bucket, Key='plain', Body=b'body')
    assert body(s3, bucket, 'plain', PartNumber=1) == b'body'
    assert err(s3.get_object, Bucket=bucket, Key='plain', PartNumber=2) == (400, 'InvalidPart')


def test_upload_part_copy_ranges(s3, bucket):
    src = bytes(range(256)) * (6 * 4096)  # 6 MiB
    s3.put_object(Bucket=bucket, Key='src', Body=src)
    up = s3.create_multipart_upload(Bucket=bucket, Key='dst')['UploadId']
    cs = {'Bucket': bucket, 'Key': 'src'}
    r1 = s3.upload_part_copy(Bucket=bucket, Key='dst', UploadId=up, PartNumber=1, CopySource=cs, CopySourceRange='bytes=0-%d' % (5 * MiB - 1))
    r2 = s3.upload_part_copy(Bucket=bucket, Key='dst', UploadId=up, PartNumber=2, CopySource=cs, CopySourceRange='bytes=%d-%d' % (5 * MiB, len(src) - 1))
    assert err(s3.upload_part_copy, Bucket=bucket, Key='dst', UploadId=up, PartNumber=3, CopySource=cs, CopySourceRange='bytes=0-%d' % len(src))[1] == 'InvalidRange'
    assert err(s3.upload_part_copy, Bucket=bucket, Key='dst', UploadId=up, PartNumber=3, CopySource=cs, CopySourceRange='bytes=hello-') == (400, 'InvalidArgument')
    parts = [{'PartNumber': 1, 'ETag': r1['CopyPartResult']['ETag']}, {'PartNumber': 2, 'ETag': r2['CopyPartResult']['ETag']}]
    s3.complete_multipart_upload(Bucket=bucket, Key='dst', UploadId=up, MultipartUpload={'Parts': parts})
    assert body(s3, bucket, 'dst') == src


def test_large_copy_uses_upload_part_copy(s3, bucket):
    data = b'z' * (9 * MiB)
    s3.put_object(Bucket=bucket, Key='big', Body=data)
    from boto3.s3.transfer import TransferConfig
    s3.copy({'Bucket': bucket, 'Key': 'big'}, bucket, 'big2', Config=TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=5 * MiB))
    assert s3.head_object(Bucket=bucket, Key='big2')['ETag'].endswith('-2"')
    assert body(s3, bucket, 'big2') == data


# ---- checksums ----

def _b64(d):
    return base64.b64encode(d).decode()


def test_put_checksums_verified_and_returned(s3, bucket):
    data = b'checksummed'
    sha = _b64(hashlib.sha256(data).digest())
    s3.put_object(Bucket=bucket, Key='c', Body=data, ChecksumSHA256=sha)
    assert s3.head_object(Bucket=bucket, Key='c', ChecksumMode='ENABLED')['ChecksumSHA256'] == sha
    crc = _b64((zlib.crc32(b'other') & 0xffffffff).to_bytes(4, 'big'))
    assert err(s3.put_object, Bucket=bucket, Key='c', Body=data, ChecksumCRC32=crc) == (400, 'BadDigest')


def test_multipart_composite_checksum_and_complete_header(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key='m', ChecksumAlgorithm='SHA256')['UploadId']
    part = b'A' * 1024
    r = s3.upload_part(Bucket=bucket, Key='m', UploadId=up, PartNumber=1, Body=part, ChecksumAlgorithm='SHA256')
    assert r['ChecksumSHA256'] == _b64(hashlib.sha256(part).digest())
    parts = [{'PartNumber': 1, 'ETag': r['ETag'], 'ChecksumSHA256': r['ChecksumSHA256']}]
    composite = _b64(hashlib.sha256(hashlib.sha256(part).digest()).digest()) + '-1'
    assert err(s3.complete_multipart_upload, Bucket=bucket, Key='m', UploadId=up, ChecksumSHA256='bad', MultipartUpload={'Parts': parts}) == (400, 'BadDigest')
    done = s3.complete_multipart_upload(Bucket=bucket, Key='m', UploadId=up, ChecksumSHA256=composite, MultipartUpload={'Parts': parts})
    assert done['ChecksumSHA256'] == composite
    assert 'ChecksumSHA256' not in s3.head_object(Bucket=bucket, Key='m')
    assert s3.head_object(Bucket=bucket, Key='m', ChecksumMode='ENABLED')['ChecksumSHA256'] == composite


# ---- signatures ----

def test_wrong_keys_are_refused(make_client, bucket):
    import os
    bad_secret = make_client(secret='x' * 40)
    assert err(bad_secret.list_objects_v2, Bucket=bucket) == (403, 'SignatureDoesNotMatch')
    bad_id = make_client(access='AKIANOTTHEKEY0000000')
    assert err(bad_id.list_objects_v2, Bucket=bucket) == (403, 'InvalidAccessKeyId')
    assert os.environ['S3CONF_ACCESS_KEY'] != 'loupe-local'


def test_unsigned_request_is_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key='k', Body=b'1')
    r = requests.get('%s/%s/k' % (s3.meta.endpoint_url, bucket))
    assert r.status_code == 403


def test_presigned_urls(s3, bucket):
    s3.put_object(Bucket=bucket, Key='k', Body=b'presigned')
    url = s3.generate_presigned_url('get_object', Params={'Bucket': bucket, 'Key': 'k'}, ExpiresIn=60)
    r = requests.get(url)
    assert r.status_code == 200 and r.content == b'presigned'
    assert requests.get(url.replace('/k?', '/other?')).status_code == 403
    assert requests.get(s3.generate_presigned_url('get_object', Params={'Bucket': bucket, 'Key': 'k'}, ExpiresIn=0)).status_code == 403
    assert requests.get(s3.generate_presigned_url('get_object', Params={'Bucket': bucket, 'Key': 'k'}, ExpiresIn=604801)).status_code == 403
    put = s3.generate_presigned_url('put_object', Params={'Bucket': bucket, 'Key': 'up'}, ExpiresIn=60)
    assert requests.put(put, data=b'via url').status_code == 200
    assert body(s3, bucket, 'up') == b'via url'


def test_chunked_transfer_encoding_upload(s3, bucket):
    def gen():
        yield b'part one,'
        yield b'part two'
    url = s3.generate_presigned_url('put_object', Params={'Bucket': bucket, 'Key': 'te'}, ExpiresIn=60)
    assert requests.put(url, data=gen()).status_code == 200
    assert body(s3, bucket, 'te') == b'part one,part two'
