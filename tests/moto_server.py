"""moto's ECR in server mode, patched to page and filter DescribeImages like real ECR.

    python tests/moto_server.py [--host 127.0.0.1] [--port 0] [--call-log FILE]

Prints exactly one line, `READY http://HOST:PORT`, once the socket listens; exits 0 on
SIGTERM/SIGINT; request logs are silenced.  Gaps in moto 5.x that this fills:

1. DescribeImages pagination.  Real ECR returns at most `maxResults` (1..1000, default 100)
   image details per call plus a `nextToken`, so a client that drops nextToken misses
   images; moto returns everything at once.  Pages here are ordered by digest and the token
   names the last digest served, so order is stable across pages.  A bad token, or
   maxResults/nextToken together with imageIds, is an InvalidParameterException, as on ECR.
2. DescribeImages `filter.tagStatus` (TAGGED/UNTAGGED/ANY), which moto ignores.
3. `imagePushedAt` is moto's wall clock at push with no API to set it, and thousands of
   put_image calls are slow (moto scans the repository on each): hence a control API.

Control API on the same port (no AWS call uses /_tagwatch/), JSON in and out:
  POST /_tagwatch/seed  {"region", "repositoryName", "registryId"?, "images": [{"tag": str|null
      or "tags": [str], "pushedAt"?: epoch s, "digest"?: "sha256:..."}]} -> {"images":
      [{"imageDigest", "imageTags", "imagePushedAt"}]}.  Creates the repository if missing;
      a tag already on another image moves (that image stays, untagged, as on ECR); a
      digest already present gains the tags.
  POST /_tagwatch/pushed-at  {"region", "repositoryName", "imageTag", "pushedAt",
      "registryId"?} -> 200 {"imageDigest", "imagePushedAt"}, or 404.
  GET /_tagwatch/calls  ECR calls so far (also appended as JSON lines to --call-log):
      [{"operation", "region", "repositoryName", "maxResults", "nextToken": bool,
        "tagStatus", "status", "registryId", "imageIds"}];
      DELETE clears it.
  POST /_tagwatch/reset  resets all moto state and the call log (as does /moto-api/reset).
  POST /_tagwatch/scan  {"repositoryName", "imageDigest", "status": "COMPLETE" | "IN_PROGRESS" |
      "FAILED" | "UNSUPPORTED_IMAGE", "counts"?: {"CRITICAL": 2, "UNDEFINED": 1, ...},
      "enhanced"?: bool} -> 200 {}.  The image's scan, as DescribeImageScanFindings reports it.

4. Per-image scan findings.  moto answers DescribeImageScanFindings with one static (or
   queued) result whatever the image; here each digest has its own, set through
   /_tagwatch/scan, paged by maxResults (default 100) with findingSeverityCounts on every
   page, and ScanNotFoundException for a digest without one, as on ECR.
7. DescribeImages `artifactMediaType` and `imageStatus` (neither in moto 5.2): the first is
   the stored manifest's `config.mediaType` (seed a Helm chart with a "manifest" whose config
   has `application/vnd.cncf.helm.config.v1+json`), the second ACTIVE unless set with
   POST /_tagwatch/status {"region", "repositoryName", "imageTag", "status": "ARCHIVED" |
   "ACTIVE", "registryId"?}.  Both paths of DescribeImages (listing and imageIds) report them.
6. GetDownloadUrlForLayer (not in moto 5.2): a URL on this server for a blob set through
   POST /_tagwatch/blob {"digest", "base64"}; GET /_tagwatch/blob/<digest> serves it.  An
   image spec's "manifest" (a JSON object) is stored as that image's manifest as written
   (cosign's .sig images carry their signatures as layer annotations).
5. ListImageReferrers (not in moto 5.2): the images of the repository whose manifest's
   `subject.digest` is the asked digest, each with its manifest's `artifactType`.  Seed a
   referrer with {"subject": "sha256:...", "artifactType": "..."} in an image spec.
"""

import argparse
import base64
import binascii
import copy
import hashlib
import io
import itertools
import json
import logging
import os
import re
import signal
import sys
import threading

from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult
from moto.ecr.exceptions import InvalidParameterException
from moto.ecr.models import Image, ecr_backends
from moto.ecr.responses import ECRResponse
from moto.moto_api._internal import moto_api_backend
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921."
MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
TOKEN_PREFIX = "tagwatch-v1:"
_orig_describe_images = ECRResponse.describe_images
_lock = threading.Lock()
_calls: list = []
_seeded = itertools.count()
_call_log = None
_scans: dict = {}  # (repositoryName, imageDigest) -> the /_tagwatch/scan request
_blobs: dict = {}  # layer digest -> bytes


def _bad(msg):
    return InvalidParameterException(f"Invalid parameter at '{msg}")


def describe_images(self):
    """ECRResponse.describe_images with real-ECR pagination and tagStatus filtering."""
    max_results, token = self._get_param("maxResults"), self._get_param("nextToken")
    if self._get_param("imageIds"):
        if max_results is not None or token is not None:
            raise _bad("maxResults/nextToken' failed to satisfy constraint: "
                       "'cannot be used with imageIds'")
        images = self.ecr_backend.describe_images(  # raises ImageNotFoundException
            self._get_param("repositoryName"), self._get_param("registryId"),
            self._get_param("imageIds"))
        return ActionResult({"imageDetails": [_detail(i) for i in images]})
    if max_results is None:
        max_results = 100
    if not isinstance(max_results, int) or not 1 <= max_results <= 1000:
        raise _bad("maxResults' failed to satisfy constraint: 'Member must have value "
                   "between 1 and 1000'")
    status = (self._get_param("filter") or {}).get("tagStatus", "ANY")
    if status not in ("TAGGED", "UNTAGGED", "ANY"):
        raise _bad("filter.tagStatus' failed to satisfy constraint: "
                   "'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]'")
    images = self.ecr_backend.describe_images(  # raises RepositoryNotFoundException
        self._get_param("repositoryName"), self._get_param("registryId"))
    images = sorted((i for i in images if status == "ANY"
                     or (status == "TAGGED") == bool(i.image_tags)),
                    key=lambda i: i.image_digest)
    if token is not None:
        try:
            after = base64.b64decode(token, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            after = ""
        if not after.startswith(TOKEN_PREFIX):
            raise _bad("nextToken' failed to satisfy constraint: 'Invalid NextToken'")
        images = [i for i in images if i.image_digest > after[len(TOKEN_PREFIX):]]
    page = images[:max_results]
    details = [_detail(i) for i in page]
    for dto in details:  # as moto (and ECR) do: no imageTags key on untagged images
        if not dto.image_tags:
            del dto.image_tags
    result = {"imageDetails": details}
    if len(images) > max_results:
        result["nextToken"] = base64.b64encode(
            (TOKEN_PREFIX + page[-1].image_digest).encode()).decode()
    return ActionResult(result)


_UNPARSED = object()


def _detail(image):
    """A copy of a moto image as DescribeImages reports it, with the two fields moto 5.2
    leaves out: `artifactMediaType` (the manifest's config media type, as ECR reports it;
    Helm's chart config type for a chart) and `imageStatus` (ACTIVE, or what
    /_tagwatch/status set)."""
    dto = copy.copy(image)
    # Parsed once per image, not once per listing: a listing reports every
    # image, and tests that push images as fast as moto takes them list
    # thousands of them many times a second.
    media_type = getattr(image, "tagwatch_artifact_media_type", _UNPARSED)
    if media_type is _UNPARSED:
        try:
            config = (json.loads(image.image_manifest) or {}).get("config") or {}
        except (TypeError, ValueError, AttributeError):
            config = {}
        media_type = image.tagwatch_artifact_media_type = config.get("mediaType")
    if media_type:
        dto.artifact_media_type = media_type
    dto.image_status = getattr(image, "tagwatch_status", "ACTIVE")
    return dto


ECRResponse.describe_images = describe_images


def _backend(req):
    return ecr_backends[req.get("registryId") or os.environ.get(
        "MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)][req["region"]]


def seed(req):
    backend, name = _backend(req), req["repositoryName"]
    if name not in backend.repositories:
        backend.create_repository(name, None, None, None, None, [])
    repo = backend.repositories[name]
    by_digest = {i.image_digest: i for i in repo.images}
    by_tag = {t: i for i in repo.images for t in i.image_tags}
    out = []
    for spec in req["images"]:
        tags = spec.get("tags") or ([spec["tag"]] if spec.get("tag") else [])
        layer = hashlib.sha256(f"{name}:{next(_seeded)}:{tags}".encode()).hexdigest()
        body = {"schemaVersion": 2, "mediaType": MEDIA_TYPE, "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 2811969, "digest": "sha256:" + layer}]}
        if spec.get("subject"):  # an OCI referrer: a signature, an attestation
            body["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
            body["artifactType"] = spec.get("artifactType")
            body["subject"] = {"mediaType": MEDIA_TYPE, "digest": spec["subject"], "size": 1}
        manifest = json.dumps(spec["manifest"] if spec.get("manifest") else body)
        digest = spec.get("digest") or "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
        image = by_digest.get(digest)
        if image is None:
            image = Image(backend.account_id, None, manifest, name, MEDIA_TYPE, digest)
            repo.images.append(image)
            by_digest[digest] = image
        for tag in tags:
            old = by_tag.get(tag)
            if old is not None and old is not image:
                old.remove_tag(tag)
                if not old.image_tags:  # moto's remove_tag keeps a stale image_tag
                    old.image_tag = None
            image.update_tag(tag)
            by_tag[tag] = image
        if spec.get("pushedAt") is not None:
            image.image_pushed_at = spec["pushedAt"]
        out.append({"imageDigest": digest, "imageTags": list(image.image_tags),
                    "imagePushedAt": image.image_pushed_at})
    return 200, {"images": out}


def set_pushed_at(req):
    repo = _backend(req).repositories.get(req["repositoryName"])
    for image in repo.images if repo else []:
        if req["imageTag"] in image.image_tags:
            image.image_pushed_at = req["pushedAt"]
            return 200, {"imageDigest": image.image_digest, "imagePushedAt": req["pushedAt"]}
    return 404, {"error": f"no image tagged {req['imageTag']!r} in {req['repositoryName']!r}"}


def set_status(req):
    repo = _backend(req).repositories.get(req["repositoryName"])
    for image in repo.images if repo else []:
        if req["imageTag"] in image.image_tags:
            image.tagwatch_status = req["status"]
            return 200, {"imageDigest": image.image_digest, "imageStatus": req["status"]}
    return 404, {"error": f"no image tagged {req['imageTag']!r} in {req['repositoryName']!r}"}


def set_scan(req):
    _scans[(req["repositoryName"], req["imageDigest"])] = req
    return 200, {}


def set_blob(req):
    _blobs[req["digest"]] = base64.b64decode(req["base64"])
    return 200, {}


def download_url(params, host_url):
    digest = params.get("layerDigest")
    if digest not in _blobs:
        return _ecr_error("LayerNotFoundException", f"no layer {digest}")
    return 200, {"downloadUrl": f"{host_url}_tagwatch/blob/{digest}", "layerDigest": digest}


def _ecr_error(kind, message):
    return 400, {"__type": kind, "message": message}


def scan_findings(params):
    """DescribeImageScanFindings for one digest, from what /_tagwatch/scan set."""
    repo, digest = params.get("repositoryName"), (params.get("imageId") or {}).get("imageDigest")
    scan = _scans.get((repo, digest))
    if scan is None:
        return _ecr_error("ScanNotFoundException",
                          f"Image scan does not exist for the image with '{digest}' "
                          f"in the repository with name '{repo}'")
    counts = {k: v for k, v in (scan.get("counts") or {}).items() if v}
    findings = [{"name": f"CVE-2026-{n:05d}", "severity": severity, "uri": "https://example"}
                for severity, count in sorted(counts.items()) for n in range(count)]
    size = params.get("maxResults") or 100
    start = int(base64.b64decode(params["nextToken"]).decode()) if params.get("nextToken") else 0
    body = {"repositoryName": repo, "registryId": params.get("registryId") or DEFAULT_ACCOUNT_ID,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": scan["status"], "description": "as the test set it"}}
    if scan["status"] == "COMPLETE":
        key = "enhancedFindings" if scan.get("enhanced") else "findings"
        page = findings[start:start + size]
        if scan.get("enhanced"):
            page = [{"severity": f["severity"], "title": f["name"]} for f in page]
        body["imageScanFindings"] = {key: page, "findingSeverityCounts": counts,
                                     "imageScanCompletedAt": 1_700_000_000}
        if start + size < len(findings):
            body["nextToken"] = base64.b64encode(str(start + size).encode()).decode()
    return 200, body


def image_referrers(params, region):
    """ListImageReferrers: the images whose manifest names the digest as its subject."""
    repo_name = params.get("repositoryName")
    digest = (params.get("subjectId") or {}).get("imageDigest")
    backend = ecr_backends[params.get("registryId") or os.environ.get(
        "MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)][region or "us-east-1"]
    repo = backend.repositories.get(repo_name)
    if repo is None:
        return _ecr_error("RepositoryNotFoundException",
                          f"The repository with name '{repo_name}' does not exist")
    referrers = []
    for image in repo.images:
        try:
            manifest = json.loads(image.image_manifest)
        except (TypeError, ValueError):
            continue
        if (manifest.get("subject") or {}).get("digest") == digest:
            referrers.append({"digest": image.image_digest, "mediaType": manifest["mediaType"],
                              "artifactType": manifest.get("artifactType"), "size": 1,
                              "artifactStatus": "ACTIVE"})
    return 200, {"referrers": referrers}


def control(request):
    route = (request.method, request.path)
    with _lock:
        if route == ("GET", "/_tagwatch/calls"):
            return 200, list(_calls)
        if route == ("DELETE", "/_tagwatch/calls"):
            _calls.clear()
            return 200, {}
        if route == ("POST", "/_tagwatch/reset"):
            moto_api_backend.reset()
            _calls.clear()
            _scans.clear()
            _blobs.clear()
            return 200, {}
        handler = {"/_tagwatch/seed": seed, "/_tagwatch/pushed-at": set_pushed_at,
                   "/_tagwatch/scan": set_scan, "/_tagwatch/blob": set_blob,
                   "/_tagwatch/status": set_status}
        handler = handler.get(request.path) if request.method == "POST" else None
        if handler is None:
            return 404, {"error": f"unknown control route {route}"}
        try:
            return handler(json.loads(request.get_data()))
        except (KeyError, TypeError, ValueError) as e:
            return 400, {"error": f"bad request: {e!r}"}


def make_app():
    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):
        request = Request(environ)
        if request.method == "GET" and request.path.startswith("/_tagwatch/blob/"):
            blob = _blobs.get(request.path[len("/_tagwatch/blob/"):])
            return Response(blob or b"", 200 if blob is not None else 404,
                            mimetype="application/octet-stream")(environ, start_response)
        if request.path.startswith("/_tagwatch/"):
            status, body = control(request)
            return Response(json.dumps(body), status, mimetype="application/json")(
                environ, start_response)
        if request.path == "/moto-api/reset":
            with _lock:
                _calls.clear()
                _scans.clear()
                _blobs.clear()
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(ECR_TARGET):
            return moto_app(environ, start_response)
        data = request.get_data()
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(data), str(len(data))
        try:
            params = json.loads(data or b"{}")
        except ValueError:
            params = {}
        scope = re.search(r"Credential=[^/]+/\d+/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
        # DescribeRepositories names its repositories in a list; the first is logged.
        named = params.get("repositoryName") or (params.get("repositoryNames") or [None])[0]
        call = {"operation": target[len(ECR_TARGET):], "region": scope and scope.group(1),
                "repositoryName": named,
                "registryId": params.get("registryId"), "imageIds": params.get("imageIds"),
                "maxResults": params.get("maxResults"), "nextToken": "nextToken" in params,
                "tagStatus": (params.get("filter") or {}).get("tagStatus")}

        def record(status, headers, *rest):
            call["status"] = int(status.split()[0])
            with _lock:
                _calls.append(call)
                if _call_log:
                    _call_log.write(json.dumps(call) + "\n")
                    _call_log.flush()
            return start_response(status, headers, *rest)

        operation = call["operation"]
        if operation in ("DescribeImageScanFindings", "ListImageReferrers",
                         "GetDownloadUrlForLayer"):
            with _lock:
                if operation == "DescribeImageScanFindings":
                    status, body = scan_findings(params)
                elif operation == "ListImageReferrers":
                    status, body = image_referrers(params, call["region"])
                else:
                    status, body = download_url(params, request.host_url)
            call["imageIds"] = [params.get("imageId") or params.get("subjectId")]
            return Response(json.dumps(body), status,
                            mimetype="application/x-amz-json-1.1")(environ, record)
        return moto_app(environ, record)

    return app


def main():
    global _call_log
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--call-log")
    args = parser.parse_args()
    if args.call_log:
        _call_log = open(args.call_log, "a", encoding="utf-8")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server(args.host, args.port, make_app(), threaded=True,
                         request_handler=MotoRequestHandler)  # bound and listening
    for sig in (signal.SIGTERM, signal.SIGINT):  # shutdown() blocks until serve_forever ends
        signal.signal(sig, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"READY http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
