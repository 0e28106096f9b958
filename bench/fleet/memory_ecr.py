"""An in-memory ECR-compatible endpoint for the fleet benchmark at sizes moto cannot serve.

    python bench/fleet/memory_ecr.py [--host 127.0.0.1] [--port 0]

Prints `READY http://HOST:PORT` once it listens; exits 0 on SIGTERM/SIGINT.  Standard
library only (no moto, no botocore), threaded, HTTP/1.1 keep-alive.

What it serves, as the AWS SDK speaks it (JSON 1.1, `X-Amz-Target:
AmazonEC2ContainerRegistry_V20150921.DescribeImages`):

- DescribeImages listing pages: `maxResults` (1..1000, default 100), `nextToken`,
  `filter.tagStatus` (TAGGED/UNTAGGED/ANY); images ordered by digest, the token naming
  the last digest served — exactly tests/moto_server.py's paging, so that a page here
  equals moto's page for the same seeded images.  Each page is encoded once and kept
  until the repository is seeded again: the endpoint's own cost per call is a lookup
  and a socket write, so it does not hide the client's cost.
- DescribeImages by `imageIds` (tagwatch's re-check of a chosen tag).
- DescribeRepositories by `repositoryNames` (whether tags are IMMUTABLE: all MUTABLE).
- RepositoryNotFoundException / ImageNotFoundException / InvalidParameterException as
  moto raises them.

The control API is tests/moto_server.py's, for what bench/fleet/run uses:
`POST /_tagwatch/seed` (same request and answer; digests are computed the same way, so a
fresh server and a fresh moto seeded in the same order hold the same digests), and
`GET`/`DELETE /_tagwatch/calls` (the same call records).  bench/fleet/run
(`--ecr memory`) checks this server against moto page for page on a smaller fleet before
it measures anything; tests/fleet.rs runs that check in CI.
"""

import argparse
import base64
import binascii
import hashlib
import itertools
import json
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921."
MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
TOKEN_PREFIX = "tagwatch-v1:"
DEFAULT_ACCOUNT_ID = "123456789012"
# What moto reports for every seeded image (it has no layer sizes to add up).
IMAGE_SIZE = 52428800

_lock = threading.Lock()
_seeded = itertools.count()
_calls = []
# (registryId, region) -> repositoryName -> Repo
_registries = {}


class Repo:
    def __init__(self, registry_id, name):
        self.registry_id, self.name = registry_id, name
        self.images = []  # dicts: digest, tags (list), pushedAt
        self.by_digest, self.by_tag = {}, {}
        self.pages = {}  # (status, maxResults, after) -> encoded page

    def detail(self, image):
        d = {"registryId": self.registry_id, "repositoryName": self.name,
             "imageDigest": image["digest"]}
        if image["tags"]:
            d["imageTags"] = list(image["tags"])
        d["imageSizeInBytes"] = IMAGE_SIZE
        d["imagePushedAt"] = image["pushedAt"]
        d["imageManifestMediaType"] = MEDIA_TYPE
        # As tests/moto_server.py reports them (moto 5.2 has neither): the
        # manifest's config media type (Helm's for a chart), and the status.
        if image.get("artifactMediaType"):
            d["artifactMediaType"] = image["artifactMediaType"]
        d["imageStatus"] = "ACTIVE"
        return d

    def page(self, status, max_results, after):
        key = (status, max_results, after)
        cached = self.pages.get(key)
        if cached is not None:
            return cached
        images = sorted((i for i in self.images if status == "ANY"
                         or (status == "TAGGED") == bool(i["tags"])),
                        key=lambda i: i["digest"])
        if after is not None:
            images = [i for i in images if i["digest"] > after]
        page = images[:max_results]
        body = {"imageDetails": [self.detail(i) for i in page]}
        if len(images) > max_results:
            body["nextToken"] = base64.b64encode(
                (TOKEN_PREFIX + page[-1]["digest"]).encode()).decode()
        encoded = json.dumps(body).encode()
        self.pages[key] = encoded
        return encoded


class EcrError(Exception):
    def __init__(self, kind, message):
        super().__init__(message)
        self.kind, self.message = kind, message


def _bad(msg):
    return EcrError("InvalidParameterException", f"Invalid parameter at '{msg}")


def _registry(registry_id, region):
    return _registries.setdefault((registry_id or DEFAULT_ACCOUNT_ID, region), {})


def _repo(params, region):
    registry_id = params.get("registryId") or DEFAULT_ACCOUNT_ID
    name = params.get("repositoryName")
    repo = _registry(registry_id, region).get(name)
    if repo is None:
        raise EcrError("RepositoryNotFoundException",
                       f"The repository with name '{name}' does not exist in the registry "
                       f"with id '{registry_id}'")
    return repo


def describe_repositories(params, region):
    """DescribeRepositories by name, as tagwatch asks it (whether a repository's tags
    are IMMUTABLE): every repository here is MUTABLE, as moto creates them."""
    registry_id = params.get("registryId") or DEFAULT_ACCOUNT_ID
    out = []
    for name in params.get("repositoryNames") or []:
        _repo({"registryId": registry_id, "repositoryName": name}, region)
        out.append({
            "repositoryArn": f"arn:aws:ecr:{region}:{registry_id}:repository/{name}",
            "registryId": registry_id, "repositoryName": name,
            "repositoryUri": f"{registry_id}.dkr.ecr.{region}.amazonaws.com/{name}",
            "imageTagMutability": "MUTABLE",
            "imageScanningConfiguration": {"scanOnPush": False},
            "encryptionConfiguration": {"encryptionType": "AES256"}})
    return json.dumps({"repositories": out}).encode()


def describe_images(params, region):
    max_results, token = params.get("maxResults"), params.get("nextToken")
    repo = _repo(params, region)
    if params.get("imageIds"):
        if max_results is not None or token is not None:
            raise _bad("maxResults/nextToken' failed to satisfy constraint: "
                       "'cannot be used with imageIds'")
        out = []
        for image_id in params["imageIds"]:
            image = (repo.by_tag.get(image_id.get("imageTag")) if image_id.get("imageTag")
                     else repo.by_digest.get(image_id.get("imageDigest")))
            if image is None:
                raise EcrError(
                    "ImageNotFoundException",
                    f"The image with imageId {{imageDigest:'{image_id.get('imageDigest')}', "
                    f"imageTag:'{image_id.get('imageTag')}'}} does not exist within the "
                    f"repository with name '{repo.name}' in the registry with id "
                    f"'{repo.registry_id}'")
            out.append(repo.detail(image))
        return json.dumps({"imageDetails": out}).encode()
    if max_results is None:
        max_results = 100
    if not isinstance(max_results, int) or not 1 <= max_results <= 1000:
        raise _bad("maxResults' failed to satisfy constraint: 'Member must have value "
                   "between 1 and 1000'")
    status = (params.get("filter") or {}).get("tagStatus", "ANY")
    if status not in ("TAGGED", "UNTAGGED", "ANY"):
        raise _bad("filter.tagStatus' failed to satisfy constraint: "
                   "'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]'")
    after = None
    if token is not None:
        try:
            after = base64.b64decode(token, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            after = ""
        if not after.startswith(TOKEN_PREFIX):
            raise _bad("nextToken' failed to satisfy constraint: 'Invalid NextToken'")
        after = after[len(TOKEN_PREFIX):]
    return repo.page(status, max_results, after)


def seed(req):
    """tests/moto_server.py's seed: the same digests for the same requests in order."""
    registry_id = req.get("registryId") or DEFAULT_ACCOUNT_ID
    name = req["repositoryName"]
    repos = _registry(registry_id, req["region"])
    repo = repos.get(name)
    if repo is None:
        repo = repos[name] = Repo(registry_id, name)
    out = []
    for spec in req["images"]:
        tags = spec.get("tags") or ([spec["tag"]] if spec.get("tag") else [])
        layer = hashlib.sha256(f"{name}:{next(_seeded)}:{tags}".encode()).hexdigest()
        body = {"schemaVersion": 2, "mediaType": MEDIA_TYPE, "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 2811969, "digest": "sha256:" + layer}]}
        if spec.get("subject"):
            body["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
            body["artifactType"] = spec.get("artifactType")
            body["subject"] = {"mediaType": MEDIA_TYPE, "digest": spec["subject"], "size": 1}
        manifest = json.dumps(spec["manifest"] if spec.get("manifest") else body)
        digest = spec.get("digest") or "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
        image = repo.by_digest.get(digest)
        if image is None:
            config = ((spec.get("manifest") or body).get("config") or {})
            image = {"digest": digest, "tags": [], "pushedAt": int(time.time()),
                     "artifactMediaType": config.get("mediaType")}
            repo.images.append(image)
            repo.by_digest[digest] = image
        for tag in tags:
            old = repo.by_tag.get(tag)
            if old is not None and old is not image:
                old["tags"].remove(tag)
            if tag not in image["tags"]:
                image["tags"].append(tag)
            repo.by_tag[tag] = image
        if spec.get("pushedAt") is not None:
            image["pushedAt"] = spec["pushedAt"]
        out.append({"imageDigest": digest, "imageTags": list(image["tags"]),
                    "imagePushedAt": image["pushedAt"]})
    repo.pages.clear()
    return {"images": out}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/_tagwatch/calls":
            with _lock:
                return self.send(200, json.dumps(_calls).encode())
        self.send(404, b"{}")

    def do_DELETE(self):
        if self.path == "/_tagwatch/calls":
            with _lock:
                _calls.clear()
            return self.send(200, b"{}")
        self.send(404, b"{}")

    def do_POST(self):
        data = self.body()
        try:
            params = json.loads(data or b"{}")
        except ValueError:
            params = {}
        if self.path == "/_tagwatch/seed":
            with _lock:
                return self.send(200, json.dumps(seed(params)).encode())
        if self.path == "/_tagwatch/reset":
            with _lock:
                _calls.clear()
                _registries.clear()
            return self.send(200, b"{}")
        target = self.headers.get("X-Amz-Target", "")
        scope = re.search(r"Credential=[^/]+/\d+/([^/]+)/", self.headers.get("Authorization", ""))
        region = scope and scope.group(1)
        # DescribeRepositories names its repositories in a list; the first is logged.
        named = params.get("repositoryName") or (params.get("repositoryNames") or [None])[0]
        call = {"operation": target[len(ECR_TARGET):], "region": region,
                "repositoryName": named,
                "registryId": params.get("registryId"), "imageIds": params.get("imageIds"),
                "maxResults": params.get("maxResults"), "nextToken": "nextToken" in params,
                "tagStatus": (params.get("filter") or {}).get("tagStatus")}
        try:
            serve = {"DescribeImages": describe_images,
                     "DescribeRepositories": describe_repositories}.get(call["operation"])
            if serve is None:
                raise EcrError("UnsupportedOperationException",
                               f"{call['operation']} is not served by bench/fleet/memory_ecr.py")
            with _lock:
                status, body = 200, serve(params, region)
        except EcrError as e:
            status = 400
            body = json.dumps({"__type": e.kind, "message": e.message,
                               "Message": e.message}).encode()
        call["status"] = status
        with _lock:
            _calls.append(call)
        self.send(status, body, "application/x-amz-json-1.1")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"READY http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
