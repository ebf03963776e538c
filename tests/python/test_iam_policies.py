"""deploy/iam/*.json against what docs/aws.md says of them and against what Orchard does.

IAM itself is not available here, so the policies are evaluated by ``allows`` below: a small
model of IAM's rules for identity policies (Allow/Deny statements, ``*``/``?`` wildcards in
actions and resources, StringLike/StringEquals conditions, a missing condition key fails the
condition). The requests come from real runs: a C++ run (as the CLI on EC2 and the Spark
driver do it, new then --overwrite) and an ``orchard.spark`` run, through a proxy that
records every S3 request, plus the notebook's read-back. Each request is mapped to the IAM
action S3 authorizes it with; a request kind the map does not know fails the test, so a new
kind of S3 call cannot slip past the policies unnoticed.
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.s3 import fixtures as s3fx
from tests.s3.fault_proxy import FaultProxy

REPO = Path(__file__).resolve().parents[2]
IAM = REPO / "deploy" / "iam"
AWS_DOC = REPO / "docs" / "aws.md"

# The layout of docs/aws.md ("Bucket layout") and how its fill() fills the placeholders:
# the policies name the top-level folders, so one policy serves every dataset and run.
BUCKET = "my-orchard-bucket"
ACCOUNT = "123456789012"
INPUT_TOP, OUTPUT_TOP = "datasets", "runs"
INPUT = "datasets/fruits-360/Training"
OUTPUT = "runs/2024-06-01"


class Request(NamedTuple):
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()  # condition keys and values

    def top(self) -> str:
        """The top-level folder the request is about (of its key, or its s3:prefix)."""
        _, _, key = self.resource.partition("/")
        return (key or dict(self.context).get("s3:prefix", "")).split("/", 1)[0]


def load(name: str) -> dict[str, Any]:
    return json.loads((IAM / name).read_text(encoding="utf-8"))


def fill(name: str, bucket: str = BUCKET, input_prefix: str = INPUT_TOP,
         output_prefix: str = OUTPUT_TOP) -> dict[str, Any]:
    """The placeholders replaced as docs/aws.md's fill() does."""
    text = (IAM / name).read_text(encoding="utf-8")
    for placeholder, value in (("BUCKET", bucket), ("INPUT_PREFIX", input_prefix),
                               ("OUTPUT_PREFIX", output_prefix), ("ACCOUNT_ID", ACCOUNT)):
        text = text.replace(placeholder, value)
    return json.loads(text)


def as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def wildcard(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM's matching: * any run of characters (also /), ? one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def condition_holds(condition: dict[str, dict[str, Any]],
                    context: tuple[tuple[str, str], ...]) -> bool:
    values = dict(context)
    for operator, tests in condition.items():
        for key, patterns in tests.items():
            if key not in values:
                return False  # no ...IfExists operators in these policies
            if operator == "StringLike":
                ok = any(wildcard(p, values[key]) for p in as_list(patterns))
            elif operator == "StringEquals":
                ok = values[key] in as_list(patterns)
            else:
                raise AssertionError(f"condition operator {operator} is not modelled here")
            if not ok:
                return False
    return True


def allows(policy: dict[str, Any], request: Request) -> bool:
    """True when an Allow statement matches the request and no Deny statement does."""
    allowed = False
    for st in policy["Statement"]:
        if not any(wildcard(a, request.action, case_sensitive=False)
                   for a in as_list(st["Action"])):
            continue
        if not any(wildcard(r, request.resource) for r in as_list(st["Resource"])):
            continue
        if not condition_holds(st.get("Condition", {}), request.context):
            continue
        if st["Effect"] == "Deny":
            return False
        allowed = True
    return allowed


def s3_request(action: str, key: str | None = None, prefix: str | None = None,
               bucket: str = BUCKET) -> Request:
    resource = f"arn:aws:s3:::{bucket}" + ("" if key is None else f"/{key}")
    return Request(f"s3:{action}", resource, () if prefix is None else (("s3:prefix", prefix),))


def policy_files() -> list[Path]:
    return sorted(IAM.glob("*.json"))


# ---- the documents ----------------------------------------------------------------------


@pytest.mark.parametrize("path", policy_files(), ids=lambda p: p.name)
def test_policy_documents_are_well_formed(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["Version"] == "2012-10-17"
    sids = [st["Sid"] for st in doc["Statement"]]
    assert len(sids) == len(set(sids)), "Sids must be unique"
    for st in doc["Statement"]:
        assert st["Effect"] in ("Allow", "Deny")
        assert set(st) <= {"Sid", "Effect", "Action", "Resource", "Condition", "Principal"}
        assert ("Principal" in st) == path.name.endswith("-trust.json")
        for action in as_list(st["Action"]):
            if action.startswith("s3:"):
                resources = as_list(st["Resource"])
                assert not [r for r in resources if r in ("*", "arn:aws:s3:::*")], (
                    f"{path.name} {st['Sid']}: an s3 action on every bucket")
                assert all(r.startswith("arn:aws:s3:::BUCKET") for r in resources)


def test_the_policies_shown_in_docs_are_the_files() -> None:
    """docs/aws.md prints the data policy in full: it must be the file, not a copy that
    drifted."""
    text = AWS_DOC.read_text(encoding="utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]
    assert load("orchard-data-policy.json") in blocks


@pytest.mark.parametrize("name", ["orchard-data-policy.json", "orchard-emr-instance-policy.json"])
def test_listing_is_limited_to_the_input_and_output_prefixes(name: str) -> None:
    policy = fill(name)
    for prefix in (INPUT + "/", OUTPUT + "/", INPUT_TOP + "/", OUTPUT_TOP + "/"):
        assert allows(policy, s3_request("ListBucket", prefix=prefix)), prefix
    for prefix in ("", "emr-logs/", "other/", "runsX/", "datasetsX/"):
        assert not allows(policy, s3_request("ListBucket", prefix=prefix)), prefix
    # No s3:prefix at all (ListObjectsV2 of the whole bucket, HeadBucket) is refused.
    assert not allows(policy, s3_request("ListBucket"))
    # Narrowed to one dataset and one run, as docs/aws.md suggests, it still covers both.
    narrow = fill(name, input_prefix=INPUT, output_prefix=OUTPUT)
    assert allows(narrow, s3_request("ListBucket", prefix=INPUT + "/"))
    assert allows(narrow, s3_request("ListBucket", prefix=OUTPUT + "/"))
    assert not allows(narrow, s3_request("ListBucket", prefix="runs/2024-06-02/"))


@pytest.mark.parametrize("name", ["orchard-data-policy.json", "orchard-emr-instance-policy.json"])
def test_objects_the_runs_read_and_write(name: str) -> None:
    policy = fill(name)
    image = f"{INPUT}/Apple Braeburn/r0_0.jpg"
    assert allows(policy, s3_request("GetObject", image))
    # The results: written, read back (descriptor store, notebook), replaced (--overwrite,
    # the old manifest removed first), and multipart uploads aborted on failure.
    for action in ("PutObject", "GetObject", "DeleteObject", "AbortMultipartUpload"):
        for key in (f"{OUTPUT}/features.csv", f"{OUTPUT}/_orchard/segments/0.npy"):
            assert allows(policy, s3_request(action, key)), (action, key)
    # The images are never modified; nothing outside the two prefixes is touched.
    for action in ("PutObject", "DeleteObject"):
        assert not allows(policy, s3_request(action, image)), action
    for key in ("other/x", "datasets", "runsX/features.csv"):
        assert not allows(policy, s3_request("GetObject", key)), key
    assert not allows(policy, s3_request("GetObject", f"{INPUT}/a.jpg", bucket="another-bucket"))


def test_instance_role_reads_the_deployment_and_writes_logs_only() -> None:
    policy = fill("orchard-emr-instance-policy.json")
    assert allows(policy, s3_request("GetObject", "orchard/wheels/orchard.whl"))
    assert allows(policy, s3_request("ListBucket", prefix="orchard/models/"))
    log = "emr-logs/j-1/node/i-1/bootstrap-actions/1/stderr.gz"
    assert allows(policy, s3_request("PutObject", log))
    # A node must not be able to replace the wheel or bootstrap that every node installs.
    for action in ("PutObject", "DeleteObject"):
        assert not allows(policy, s3_request(action, "orchard/deploy/emr-bootstrap.sh")), action
    assert not allows(policy, s3_request("DeleteObject", "emr-logs/j-1/x"))


def documented_roles() -> dict[str, str]:
    """The roles docs/aws.md passes to EMR: {'service': name, 'instance': name}."""
    text = AWS_DOC.read_text(encoding="utf-8")
    service = set(re.findall(r"--service-role\s+([\w+=,.@-]+)", text))
    instance = set(re.findall(r"InstanceProfile=([\w+.@-]+)", text))  # ends at the comma
    assert len(service) == 1 and len(instance) == 1, (service, instance)
    return {"service": service.pop(), "instance": instance.pop()}


def test_operator_may_pass_exactly_the_documented_roles() -> None:
    roles = documented_roles()
    assert roles["service"] == "EMR_DefaultRole_V2"  # v1 EMR_DefaultRole is being deprecated
    policy = fill("orchard-operator-policy.json")
    passable = {r.rsplit("/", 1)[1]
                for st in policy["Statement"] if "iam:PassRole" in as_list(st["Action"])
                for r in as_list(st["Resource"])}
    assert passable == {roles["service"], roles["instance"]}

    def pass_role(role: str, service: str) -> Request:
        return Request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/{role}",
                       (("iam:PassedToService", service),))

    assert allows(policy, pass_role(roles["service"], "elasticmapreduce.amazonaws.com"))
    assert allows(policy, pass_role(roles["instance"], "ec2.amazonaws.com"))
    # Each role goes to its own service only, and no other role (the broad
    # EMR_EC2_DefaultRole included) can be handed to a cluster.
    assert not allows(policy, pass_role(roles["service"], "ec2.amazonaws.com"))
    assert not allows(policy, pass_role(roles["instance"], "lambda.amazonaws.com"))
    assert not allows(policy, pass_role("EMR_EC2_DefaultRole", "ec2.amazonaws.com"))
    assert not allows(policy, pass_role("AdminRole", "ec2.amazonaws.com"))


def test_operator_starts_only_clusters_tagged_for_the_v2_service_policy() -> None:
    """AmazonEMRServicePolicy_v2 acts only on resources tagged
    for-use-with-amazon-emr-managed-policies=true: docs/aws.md passes the tag, and the
    operator policy refuses a cluster without it."""
    policy = fill("orchard-operator-policy.json")
    tag = "aws:RequestTag/for-use-with-amazon-emr-managed-policies"
    run = "elasticmapreduce:RunJobFlow"
    assert allows(policy, Request(run, "*", ((tag, "true"),)))
    assert not allows(policy, Request(run, "*"))
    assert not allows(policy, Request(run, "*", ((tag, "false"),)))
    text = AWS_DOC.read_text(encoding="utf-8")
    create = re.search(r"aws emr create-cluster .*?(?=\n\S*aws emr wait)", text, re.S)
    assert create is not None
    assert "--tags for-use-with-amazon-emr-managed-policies=true" in create.group(0)
    assert "AmazonEMRServicePolicy_v2" in text


def test_operator_uploads_and_reads_back() -> None:
    policy = fill("orchard-operator-policy.json")
    assert allows(policy, s3_request("PutObject", f"{INPUT}/Apple Braeburn/r0_0.jpg"))
    assert allows(policy, s3_request("PutObject", "orchard/wheels/orchard.whl"))
    assert allows(policy, s3_request("GetObject", f"{OUTPUT}/manifest.json"))
    assert allows(policy, s3_request("GetObject", "emr-logs/j-1/steps/s-1/stderr.gz"))
    assert not allows(policy, s3_request("DeleteObject", f"{OUTPUT}/manifest.json"))
    assert not allows(policy, s3_request("PutObject", f"{OUTPUT}/features.csv"))


# ---- what runs really do ----------------------------------------------------------------


class RecordingProxy(FaultProxy):
    """A FaultProxy without faults that keeps (method, target) of every request."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.requests: list[tuple[str, str]] = []

    def _choose(self, req: Any) -> Any:
        self.requests.append((req.method, req.target))
        return super()._choose(req)


def to_iam(method: str, target: str, bucket: str) -> Request:
    """The IAM action S3 authorizes a path-style request with (S3's "Actions, resources, and
    condition keys" table); AssertionError for a request kind not modelled here."""
    url = urllib.parse.urlsplit(target)
    query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
    _, req_bucket, *rest = url.path.split("/", 2)
    assert req_bucket == bucket, target
    key = urllib.parse.unquote(rest[0]) if rest and rest[0] else None
    if key is None:
        if method == "GET" and query.get("list-type") == ["2"] and set(query) <= {
                "list-type", "prefix", "continuation-token", "max-keys", "encoding-type",
                "delimiter", "start-after"}:
            return s3_request("ListBucket", prefix=query.get("prefix", [""])[0], bucket=bucket)
        raise AssertionError(f"bucket request not modelled: {method} {target}")
    if method in ("GET", "HEAD") and not set(query) - {"partNumber"}:
        return s3_request("GetObject", key, bucket=bucket)
    if method == "PUT" and (not query or set(query) == {"partNumber", "uploadId"}):
        return s3_request("PutObject", key, bucket=bucket)
    if method == "POST" and set(query) in ({"uploads"}, {"uploadId"}):
        return s3_request("PutObject", key, bucket=bucket)  # create / complete multipart
    if method == "DELETE" and set(query) == {"uploadId"}:
        return s3_request("AbortMultipartUpload", key, bucket=bucket)
    if method == "DELETE" and not query:
        return s3_request("DeleteObject", key, bucket=bucket)
    raise AssertionError(f"object request not modelled: {method} {target}")


@pytest.fixture()
def recorded_runs(s3_server: s3fx.S3TestConfig, s3_client: Any, s3_bucket: str,
                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Request]]:
    """Every S3 request of: a run and a run with overwrite (C++ run, as the CLI), an
    orchard.spark run on local[2], and the notebook's read-back, all through one proxy."""
    import orchard

    s3fx.upload_folder(s3_client, REPO / "samples" / "fruits-360-mini" / "Test", s3_bucket,
                       INPUT + "/")
    env = s3fx.aws_env(s3_server, tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    src, out = f"s3://{s3_bucket}/{INPUT}", f"s3://{s3_bucket}/{OUTPUT}/cli"
    with RecordingProxy(s3_server.endpoint) as proxy:
        for overwrite in (False, True):
            orchard.run(src, out, size=64, pca_components=3, s3_endpoint=proxy.endpoint,
                        overwrite=overwrite)
        spark, created = spark_session(env)
        try:
            import orchard.spark as ospark
            ospark.run(src, f"s3://{s3_bucket}/{OUTPUT}/spark", spark=spark, size=64,
                       pca_components=3, s3_endpoint=proxy.endpoint)
        finally:
            if created:
                spark.stop()
        results = orchard.Storage(out, s3_endpoint=proxy.endpoint)  # notebook, section 7
        assert "features.csv" in [key for key, _ in results.list()]
        assert results.read("features.csv").startswith(b"path,label,pc_1")
        requests = list(proxy.requests)
    yield [to_iam(method, target, s3_bucket) for method, target in requests]


def spark_session(env: dict[str, str]) -> tuple[Any, bool]:
    """The active session if there is one (one SparkContext per process; the other test
    modules give their executors the test server's credentials too), else a new local[2]
    one whose executors get ``env``; True when it was created here."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    builder = (SparkSession.builder.master("local[2]").appName("orchard-iam-test")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1"))
    for key, value in env.items():
        builder = builder.config(f"spark.executorEnv.{key}", value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark, True


@pytest.mark.slow
def test_real_runs_need_nothing_the_policies_do_not_grant(s3_bucket: str,
                                                          recorded_runs: list[Request]) -> None:
    seen = {(r.action, r.top()) for r in recorded_runs}
    # The recording saw every kind of call the docs explain the policies with.
    assert {("s3:ListBucket", INPUT_TOP), ("s3:ListBucket", OUTPUT_TOP),
            ("s3:GetObject", INPUT_TOP), ("s3:GetObject", OUTPUT_TOP),
            ("s3:PutObject", OUTPUT_TOP), ("s3:DeleteObject", OUTPUT_TOP)} <= seen, seen
    for name in ("orchard-data-policy.json", "orchard-emr-instance-policy.json"):
        # As docs/aws.md fills them (top-level folders), and narrowed to one dataset and run.
        for input_prefix, output_prefix in ((INPUT_TOP, OUTPUT_TOP), (INPUT, OUTPUT)):
            policy = fill(name, bucket=s3_bucket, input_prefix=input_prefix,
                          output_prefix=output_prefix)
            denied = sorted({r for r in recorded_runs if not allows(policy, r)})
            assert not denied, f"{name} ({input_prefix}, {output_prefix}) refuses {denied[:10]}"
