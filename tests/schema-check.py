#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Check the JSON Schemas for editors against the files the loader accepts and refuses.

Every example model file and config/example-model.yaml must validate against
config/model.schema.json, config/modelkeeper.yaml against config/modelkeeper.schema.json, and a
few files the loader refuses must fail the schema too (the schema is a second, editor-side
opinion; config/config.c stays the authority). SKIPs (exit 77) without python3-jsonschema.
"""
import glob
import json
import os
import sys

try:
    import jsonschema
    import yaml
except ImportError as e:
    print(f"SKIP: {e}")
    sys.exit(77)

top = os.environ.get("TOP_SRCDIR", os.path.join(os.path.dirname(__file__), ".."))


def load(path):
    with open(path) as f:
        return json.load(f)


def check(schema, doc, name, expect_ok):
    v = jsonschema.Draft7Validator(schema)
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
    if expect_ok and errors:
        print(f"FAIL {name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5]))
        return False
    if not expect_ok and not errors:
        print(f"FAIL {name}: accepted, but the loader refuses it")
        return False
    print(f"ok   {name}")
    return True


model = load(os.path.join(top, "config/model.schema.json"))
main = load(os.path.join(top, "config/modelkeeper.schema.json"))
jsonschema.Draft7Validator.check_schema(model)
jsonschema.Draft7Validator.check_schema(main)

ok = True
files = sorted(glob.glob(os.path.join(top, "policies/examples/*.yaml"))) + [os.path.join(top, "config/example-model.yaml")]
for f in files:
    with open(f) as fh:
        ok &= check(model, yaml.safe_load(fh), os.path.relpath(f, top), True)
with open(os.path.join(top, "config/modelkeeper.yaml")) as fh:
    ok &= check(main, yaml.safe_load(fh), "config/modelkeeper.yaml", True)

bad_models = {
    "unknown key": "model: m\nsourc: {}\n",
    "missing channel": "model: m\nsource: {url: 'https://x/'}\n",
    "plain http source": "model: m\nsource: {url: 'http://x/', channel: stable}\n",
    "two reload kinds": "model: m\nserve: {reload: {systemd_unit: a.service, exec: [/bin/true]}}\n",
    "bad duration": "model: m\nsource: {url: 'https://x/', channel: s, check_every: 15x}\n",
    "keep_versions 1": "model: m\nstorage: {keep_versions: 1}\n",
    "bad no-data": "model: m\nrollout: {on_no_data: maybe, checks: [{expr: x}]}\n",
    "rule without action": "model: m\nrules: [{name: r, when: x > 1}]\n",
    "prune without sparsity": "model: m\nrecompress: {profiles: {p: {method: prune}}}\n",
    "relative exec": "model: m\nserve: {reload: {exec: [reload.sh]}}\n",
    "bad define name": "model: m\nmetrics: {define: {'1x': up}}\n",
}
for name, text in bad_models.items():
    ok &= check(model, yaml.safe_load(text), f"refused: {name}", False)
ok &= check(main, yaml.safe_load("encryption: {recipient: AGE-SECRET-KEY-1XYZ}\n"), "refused: secret key as recipient", False)

sys.exit(0 if ok else 1)
