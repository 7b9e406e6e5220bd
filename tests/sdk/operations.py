"""Prints every HTTP operation the installed official Svix Python SDK can call, one per line:
`METHOD /path` with each path parameter written `{}`, sorted and without duplicates.

Used by the test that keeps README's operation list true (`sdk::the_readme_lists_every_sdk_operation`).
The SDK's API modules are generated code that names each call's method and path literally.
"""

import os
import re

import svix.api

API_DIR = os.path.dirname(svix.api.__file__)
CALL = re.compile(r'method="(\w+)",\s*path="([^"]+)"')


def main():
    ops = set()
    for name in sorted(os.listdir(API_DIR)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(API_DIR, name), encoding="utf-8") as source:
            for method, path in CALL.findall(source.read()):
                ops.add(f"{method.upper()} {re.sub(r'{[^}]+}', '{}', path)}")
    for op in sorted(ops):
        print(op)


if __name__ == "__main__":
    main()
