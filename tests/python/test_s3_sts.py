"""Role profiles (``role_arn`` + ``source_profile`` in ~/.aws/config) end to end: ``orchard ls
s3://...`` assumes the role through STS AssumeRole and lists with the role's temporary
credentials.

The moto of scripts/s3-test-server accepts any signature, so these tests start their own
moto server and turn on its IAM enforcement (``/moto-api/reset-auth``) once the users,
roles and objects exist. From then on moto checks every request's SigV4 signature against
the secret of the access key that signed it and the IAM policies of that identity, as AWS
does. The source user may only call sts:AssumeRole, the role may only read S3: a listing
that succeeds was signed with the role's temporary credentials, and an AssumeRole that
succeeds was signed with the source profile's keys.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

ACCOUNT = "123456789012"  # moto's default account
READER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/orchard-reader"
POWERLESS_ROLE = f"arn:aws:iam::{ACCOUNT}:role/orchard-powerless"
OBJECTS = ["fruits/Apple/a1.jpg", "fruits/Apple/a2.jpg", "fruits/Banana/b1.jpg"]


@dataclass
class IamMoto:
    endpoint: str
    bucket: str
    access_key_id: str
    secret_access_key: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _policy(actions: list[str]) -> str:
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]})


@pytest.fixture(scope="module")
def iam_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamMoto]:
    log = tmp_path_factory.mktemp("moto-iam") / "moto.log"
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto did not start: {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.2)

        # Set up while moto still accepts anything.
        kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIASETUPSETUPSETUP",
                  aws_secret_access_key="setup")
        iam = boto3.client("iam", **kw)
        iam.create_user(UserName="orchard-source")
        key = iam.create_access_key(UserName="orchard-source")["AccessKey"]
        # The source user may assume roles and nothing else: no S3 at all.
        iam.put_user_policy(UserName="orchard-source", PolicyName="assume",
                            PolicyDocument=_policy(["sts:AssumeRole"]))
        # Only the source user may assume the roles (moto checks the trust policy too).
        trust = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/orchard-source"},
             "Action": "sts:AssumeRole"}]})
        iam.create_role(RoleName="orchard-reader", AssumeRolePolicyDocument=trust)
        iam.put_role_policy(RoleName="orchard-reader", PolicyName="read",
                            PolicyDocument=_policy(["s3:ListBucket", "s3:GetObject"]))
        iam.create_role(RoleName="orchard-powerless", AssumeRolePolicyDocument=trust)
        s3 = boto3.client("s3", **kw)
        bucket = "orchard-sts-test"
        s3.create_bucket(Bucket=bucket)
        for name in OBJECTS:
            s3.put_object(Bucket=bucket, Key=name, Body=b"not really a jpeg")

        # From now on every request is authenticated and authorised.
        request = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        assert json.loads(urllib.request.urlopen(request, timeout=10).read())["status"] == "ok"
        yield IamMoto(endpoint, bucket, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _env(moto: IamMoto, home: Path, profile: str | None, config: str,
         credentials: str) -> dict[str, str]:
    aws = home / ".aws"
    aws.mkdir(parents=True, exist_ok=True)
    (aws / "config").write_text(config)
    (aws / "credentials").write_text(credentials)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(aws / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
        "AWS_ENDPOINT_URL": moto.endpoint,  # S3 and STS
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    if profile is not None:
        env["AWS_PROFILE"] = profile
    return env


def _source_credentials(moto: IamMoto, secret: str | None = None) -> str:
    return (f"[base]\naws_access_key_id = {moto.access_key_id}\n"
            f"aws_secret_access_key = {secret or moto.secret_access_key}\n")


def _ls(build_dir: Path, env: dict[str, str], moto: IamMoto) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(build_dir / "orchard"), "ls", f"s3://{moto.bucket}/fruits"],
                          capture_output=True, text=True, env=env, timeout=120)


def test_role_profile_lists_with_the_role_credentials(build_dir: Path, iam_moto: IamMoto,
                                                      tmp_path: Path) -> None:
    config = (f"[profile reader]\nrole_arn = {READER_ROLE}\nsource_profile = base\n"
              "role_session_name = orchard-pytest\nduration_seconds = 900\n")
    env = _env(iam_moto, tmp_path, "reader", config, _source_credentials(iam_moto))
    result = _ls(build_dir, env, iam_moto)
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert "Apple" in out and "Banana" in out, out
    assert iam_moto.secret_access_key not in out


def test_the_source_keys_alone_cannot_list(build_dir: Path, iam_moto: IamMoto, tmp_path: Path) -> None:
    # The control for the test above: the source user has no S3 permission, so that listing
    # was not signed with its keys.
    env = _env(iam_moto, tmp_path, "base", "", _source_credentials(iam_moto))
    result = _ls(build_dir, env, iam_moto)
    assert result.returncode != 0
    assert "permission denied" in result.stderr and "AccessDenied" in result.stderr, result.stderr
    assert iam_moto.secret_access_key not in result.stderr


def test_a_wrong_source_secret_is_refused_by_sts(build_dir: Path, iam_moto: IamMoto,
                                                 tmp_path: Path) -> None:
    wrong = "WrongSecretWrongSecretWrongSecretWrong00"
    config = f"[profile reader]\nrole_arn = {READER_ROLE}\nsource_profile = base\n"
    env = _env(iam_moto, tmp_path, "reader", config, _source_credentials(iam_moto, secret=wrong))
    result = _ls(build_dir, env, iam_moto)
    assert result.returncode != 0
    assert f"AssumeRole {READER_ROLE} (profile 'reader')" in result.stderr, result.stderr
    assert "SignatureDoesNotMatch" in result.stderr, result.stderr
    assert wrong not in result.stderr
    assert iam_moto.secret_access_key not in result.stderr


def test_a_role_without_s3_permission_is_denied_and_named(build_dir: Path, iam_moto: IamMoto,
                                                          tmp_path: Path) -> None:
    config = f"[profile powerless]\nrole_arn = {POWERLESS_ROLE}\nsource_profile = base\n"
    env = _env(iam_moto, tmp_path, "powerless", config, _source_credentials(iam_moto))
    result = _ls(build_dir, env, iam_moto)
    assert result.returncode != 0
    assert "permission denied" in result.stderr and "AccessDenied" in result.stderr, result.stderr
    # The message names the identity used: the role's temporary key, not the source's.
    assert f"from role {POWERLESS_ROLE} (profile powerless), with session token" in result.stderr, \
        result.stderr


@pytest.mark.parametrize("key,line", [
    ("mfa_serial", f"role_arn = {READER_ROLE}\nsource_profile = base\n"
                   f"mfa_serial = arn:aws:iam::{ACCOUNT}:mfa/me\n"),
    ("web_identity_token_file", f"role_arn = {READER_ROLE}\nweb_identity_token_file = /tmp/token\n"),
    ("credential_process", "credential_process = /bin/false\n"),
    ("sso_session", "sso_session = corp\n"),
])
def test_unsupported_profiles_name_the_key(build_dir: Path, iam_moto: IamMoto, tmp_path: Path,
                                           key: str, line: str) -> None:
    env = _env(iam_moto, tmp_path, "odd", "[profile odd]\n" + line, _source_credentials(iam_moto))
    result = _ls(build_dir, env, iam_moto)
    assert result.returncode != 0
    assert f"profile 'odd' in {tmp_path / '.aws' / 'config'} uses {key}" in result.stderr, result.stderr
    assert "which Orchard does not support" in result.stderr
