"""A real S3-compatible server (moto) on localhost, for tests: started and always stopped."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import requests

ADMIN = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@contextlib.contextmanager
def moto_server(bucket: str = "feats") -> Iterator[dict]:
    """The environment (endpoint, credentials, region) that points pyarrow and boto at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    # Port 0: the server binds a free port itself. A port picked first and bound later could
    # be taken in between by a test on the other xdist worker, and start() would then wait
    # forever for a server thread that died on the bind.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        **ADMIN,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], **_keys(env)).create_bucket(
            Bucket=bucket
        )
        yield env
    finally:
        set_auth(env, enforced=False)  # moto keeps this setting and its data process-wide
        with contextlib.suppress(requests.RequestException):
            requests.post(f"{env['AWS_ENDPOINT_URL']}/moto-api/reset", timeout=10)
        server.stop()


def _keys(env: dict) -> dict:
    return {"aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
            "region_name": env["AWS_DEFAULT_REGION"]}  # fmt: skip


def set_auth(env: dict, enforced: bool) -> None:
    """moto checks IAM (keys and policies) on every request only when told to."""
    count = "0" if enforced else "inf"
    with contextlib.suppress(requests.RequestException):
        requests.post(f"{env['AWS_ENDPOINT_URL']}/moto-api/reset-auth", data=count, timeout=10)


def user_denied(env: dict, actions: list[str], resource: str) -> dict:
    """Keys of an IAM user who may do anything except `actions` on `resource`."""
    import boto3

    iam = boto3.client("iam", endpoint_url=env["AWS_ENDPOINT_URL"], **_keys(env))
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": actions, "Resource": resource},
        ],
    }
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    return {**env, "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}  # fmt: skip


def objects(env: dict, bucket: str = "feats") -> dict[str, bytes]:
    """Every object's bytes (read with the admin keys, auth not enforced)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], **_keys({**env, **ADMIN}))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}
