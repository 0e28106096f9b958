"""`helm lint` and `helm template` for tests/chart.rs, through Helm's own Go
code: helm-python-sdk (tests/requirements.txt) wraps Helm v4's SDK as a shared
library, since Debian has no helm package and nothing may be downloaded at
test time. Nothing here renders or validates anything itself.

  python tests/helm.py lint CHART [-f VALUES]... [--set-file KEY=PATH]...
  python tests/helm.py template RELEASE CHART --namespace NS [-f VALUES]... [--set-file KEY=PATH]...

`lint` runs Helm's linter (with --strict: warnings fail too) and prints its
findings; `template` is an install with a client-only dry run, the action
`helm template` runs, and prints the manifest. Both exit 1 with Helm's message
when it refuses (a value the chart's values.schema.json rejects, a template
`fail`). The values come from the -f files, merged in order as Helm merges
them (a later file wins key by key), then Helm's own --set-file parser.
"""
import argparse
import json
import sys

import helm_python as helm


def merge(base, override):
    """Helm's MergeValues for each -f in turn, then --set-file: maps merge
    key by key, anything else is replaced."""
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def values(args):
    merged = {}
    for path in args.values:
        with open(path, encoding="utf-8") as f:
            merge(merged, helm.values_from_yaml(f.read()) or {})
    for expression in args.set_file:
        merge(merged, helm.parse_set_file(expression))
    return merged


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    lint = sub.add_parser("lint")
    lint.add_argument("chart")
    template = sub.add_parser("template")
    template.add_argument("release")
    template.add_argument("chart")
    template.add_argument("--namespace", required=True)
    for p in (lint, template):
        p.add_argument("-f", "--values", action="append", default=[])
        p.add_argument("--set-file", action="append", default=[])
    args = parser.parse_args()
    helm.disable_logging()

    try:
        if args.command == "lint":
            report = helm.lint(args.chart, values(args), strict=True)
            for message in report["messages"]:
                print("%s: %s" % (message["path"], message["error"]))
            print(json.dumps({"helm": helm.helm_sdk_version(), "lint": report}))
            # Severity 2 is a warning, 3 an error; --strict fails on both.
            failed = report["errors"] or any(m["severity"] >= 2 for m in report["messages"])
            return 1 if failed else 0
        config = helm.Config(
            storage_driver="memory",
            namespace=args.namespace,
            # A client-only dry run contacts no cluster; this address only
            # makes sure of it (nothing listens on port 1).
            kube_apiserver="https://127.0.0.1:1",
        )
        release = config.install(
            args.chart, args.release, values(args), namespace=args.namespace, dry_run="client"
        )
        sys.stdout.write(release["manifest"])
        return 0
    except helm.HelmError as e:
        print("helm refused: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
