"""tests/moto_server.py with a direct JSON encoder for listing pages of DescribeImages.

    python bench/fleet/ecr_server.py [--host 127.0.0.1] [--port 0] [--call-log FILE]

Everything else is tests/moto_server.py as the tests run it: the same moto backend,
pagination, tagStatus filter, control API (/_tagwatch/seed, /_tagwatch/calls, …) and
call log.  Only the encoding of a listing page changes.

Why: moto 5's generic response serializer walks botocore's shape model for every field
of every image, which is nearly all of moto's time on a listing: a 500-image page costs
about 70 ms of moto's single Python thread on a quiet 2-core machine (0.7 s under heavy
load), against about 14 ms encoded here.  That cost is moto's, not ECR's, and it would
hide tagwatch's own cost inside any side-by-side ratio.  The page built here holds exactly the fields moto's serializer
writes for an image detail; bench/fleet/run checks that on the seeded data by asking for
the same pages both ways (a request with the header `X-Tagwatch-Bench-Serializer: moto`
takes moto's own serializer) before it measures anything.

DescribeImages by imageIds (tagwatch's re-check of one tag) and errors go through moto's
serializer unchanged.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "tests"))

import moto_server  # noqa: E402  (tests/moto_server.py; patches ECRResponse on import)
from moto.core.responses import ActionResult  # noqa: E402
from moto.ecr.responses import ECRResponse  # noqa: E402

BYPASS_HEADER = "X-Tagwatch-Bench-Serializer"
_paginated = moto_server.describe_images


def _detail(image):
    """One image detail as moto's serializer writes it (checked by bench/fleet/run)."""
    d = {"registryId": image.registry_id, "repositoryName": image.repository_name,
         "imageDigest": image.image_digest}
    if getattr(image, "image_tags", None):
        d["imageTags"] = list(image.image_tags)
    size = image.image_size_in_bytes
    if size is not None:
        d["imageSizeInBytes"] = size
    d["imagePushedAt"] = image.image_pushed_at
    if image.image_manifest_media_type is not None:
        d["imageManifestMediaType"] = image.image_manifest_media_type
    # The two fields tests/moto_server.py adds to moto's image details.
    if getattr(image, "artifact_media_type", None):
        d["artifactMediaType"] = image.artifact_media_type
    if getattr(image, "image_status", None):
        d["imageStatus"] = image.image_status
    return d


def describe_images(self):
    result = _paginated(self)
    if (self.headers.get(BYPASS_HEADER) == "moto" or self._get_param("imageIds")
            or not isinstance(result, ActionResult) or not isinstance(result.result, dict)):
        return result
    body = {"imageDetails": [_detail(i) for i in result.result["imageDetails"]]}
    if "nextToken" in result.result:
        body["nextToken"] = result.result["nextToken"]
    return 200, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(body)


ECRResponse.describe_images = describe_images

if __name__ == "__main__":
    sys.exit(moto_server.main())
