"""Validates candlecast's AsyncAPI document, and messages against it; run by tests/asyncapi.rs.

    validate.py CHECKS.json

CHECKS.json is {"document": <the AsyncAPI document>, "checks": [{"what": "...", "schemas": ["/json/pointer", ...],
"value": <a message>}, ...]}. The document is validated against the official AsyncAPI 3.0.0 JSON schema of the
npm package @asyncapi/specs (tests/asyncapi/node_modules, `npm ci` in scripts/test-deps.sh); each value against
the schemas at its pointers into the document (it must match at least one). Draft 7, as AsyncAPI 3.0's Schema
Object is a superset of it. Prints one line per failure and exits 1 if there is any.
"""

import json
import pathlib
import sys

import jsonschema_rs

HERE = pathlib.Path(__file__).resolve().parent
SPEC = HERE / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0.json"
DOC_URI = "urn:candlecast:asyncapi"


def main() -> int:
    if not SPEC.is_file():
        print(f"{SPEC} is missing: run scripts/test-deps.sh (or `cd tests/asyncapi && npm ci`)")
        return 2
    data = json.loads(pathlib.Path(sys.argv[1]).read_text())
    document = data["document"]
    failures = []

    spec = jsonschema_rs.Draft7Validator(json.loads(SPEC.read_text()))
    for error in spec.iter_errors(document):
        failures.append(f"document: {error.message} at /{'/'.join(map(str, error.instance_path))}")

    registry = jsonschema_rs.Registry([(DOC_URI, document)], draft=jsonschema_rs.Draft7)
    validators = {}
    for check in data["checks"]:
        key = tuple(check["schemas"])
        if key not in validators:
            refs = [{"$ref": f"{DOC_URI}#{pointer}"} for pointer in key]
            schema = refs[0] if len(refs) == 1 else {"anyOf": refs}
            validators[key] = jsonschema_rs.Draft7Validator(schema, registry=registry)
        errors = [e.message for e in validators[key].iter_errors(check["value"])]
        if errors:
            value = json.dumps(check["value"])[:400]
            failures.append(f"{check['what']}: {value} does not match {list(key)}: {errors[:3]}")

    # The first failures say what is wrong; a drift repeats the same one for every message of its kind.
    for failure in failures[:30]:
        print(failure)
    print(f"checked the document and {len(data['checks'])} message(s): {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
