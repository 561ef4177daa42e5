"""Print the signalling protocol's JSON Schema.

`python -m maillage_session_signalling.signalling.schema`; the README embeds this output
and a test fails when they drift.
"""

from __future__ import annotations

import json

from maillage_session_signalling.signalling.protocol import json_schema


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True)


if __name__ == "__main__":
    print(render())
