"""Validates Kubernetes objects with kubernetes-validate's bundled OpenAPI
schemas, strictly (unknown fields are errors): one line per object and
version, exit 1 if any is invalid or has no schema. Shared by tests/deploy.rs
(manifests/) and tests/chart.rs (charts/tagwatch).

  python tests/k8s_validate.py FILE VERSION[,VERSION...] SKIP_API_GROUP
"""
import sys, yaml, kubernetes_validate
from kubernetes_validate import utils
path, versions, skip = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
failed = 0
for doc in yaml.safe_load_all(open(path)):
    if not doc or doc["apiVersion"].split("/")[0] == skip:
        continue
    name = "%s/%s" % (doc["kind"], doc["metadata"]["name"])
    for version in versions:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            print("valid:", name, "against Kubernetes", version)
        except utils.ValidationError as e:
            failed = 1
            print("INVALID: %s against Kubernetes %s at %s: %s"
                  % (name, version, ".".join(map(str, e.path)) or "(top)", e.message))
        except utils.SchemaNotFoundError as e:
            failed = 1
            print("NO SCHEMA:", name, e.message)
sys.exit(failed)
