"""Fixtures for loupe's S3 conformance suite: boto3 clients for the store under test.

The store is given by the environment (the vitest wrapper starts `loupe objectstore serve`):
S3CONF_ENDPOINT, S3CONF_ACCESS_KEY, S3CONF_SECRET_KEY. Every test gets a fresh bucket.
"""
import os
import uuid

import boto3
import pytest
from botocore.config import Config


def _client(access=None, secret=None, **cfg):
    return boto3.client(
        's3',
        endpoint_url=os.environ['S3CONF_ENDPOINT'],
        aws_access_key_id=access or os.environ['S3CONF_ACCESS_KEY'],
        aws_secret_access_key=secret or os.environ['S3CONF_SECRET_KEY'],
        region_name='us-east-1',
        config=Config(signature_version='s3v4', s3={'addressing_style': 'path'}, retries={'max_attempts': 1}, **cfg),
    )


@pytest.fixture(scope='session')
def s3():
    return _client()


@pytest.fixture(scope='session')
def make_client():
    return _client


@pytest.fixture
def bucket(s3):
    name = f'conf-{uuid.uuid4().hex[:20]}'
    s3.create_bucket(Bucket=name)
    yield name
    # empty and delete (the store keeps one version per key)
    while True:
        listing = s3.list_objects_v2(Bucket=name)
        keys = [{'Key': o['Key']} for o in listing.get('Contents', [])]
        if not keys:
            break
        s3.delete_objects(Bucket=name, Delete={'Objects': keys, 'Quiet': True})
    for up in s3.list_multipart_uploads(Bucket=name).get('Uploads', []):
        s3.abort_multipart_upload(Bucket=name, Key=up['Key'], UploadId=up['UploadId'])
    s3.delete_bucket(Bucket=name)
