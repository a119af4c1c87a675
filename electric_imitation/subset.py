"""Subset snapshots (`subset__*` GET or POST body): an object, not a log array (protocol §2.6)."""

from __future__ import annotations

import random

from aiohttp import hdrs, web

from electric_imitation.call import ShapeCall
from electric_imitation.catalog import schema_header
from electric_imitation.headers import JSON_TYPE
from electric_imitation.messages import encode
from electric_imitation.offsets import LogOffset
from electric_imitation.params import SubsetParams
from electric_imitation.serve import seek
from electric_imitation.snapshot import take_subset


async def serve_subset(call: ShapeCall, subset: SubsetParams) -> web.StreamResponse:
    """Run the shape's query narrowed by the subset and answer `{"metadata":..., "data":[...]}`."""
    shape = call.shape
    mark = random.randint(0, 2**31 - 1)
    async with call.state.db.session() as conn:
        pg, rows = await take_subset(
            conn, shape.definition, shape.table, shape.selected, subset, mark
        )
    metadata = {
        "database_lsn": str(pg.lsn),
        "snapshot_mark": mark,
        "xip_list": [str(xid) for xid in pg.xip],
        "xmax": str(pg.xmax),
        "xmin": str(pg.xmin),
    }
    offset = call.params.offset
    position = seek(shape, offset).chunk_end if isinstance(offset, LogOffset) else shape.last_offset
    headers = {
        hdrs.CACHE_CONTROL: "no-cache",
        "electric-snapshot": "true",
        "electric-handle": shape.handle,
        "electric-offset": str(position),
        hdrs.CONTENT_TYPE: JSON_TYPE,
    }
    if not call.params.live:
        headers["electric-schema"] = encode(schema_header(shape.table, shape.selected))
    response = web.StreamResponse(status=200, headers=headers)
    body = call.open_body(response)
    await body.start()
    # Byte for byte what `Encoder.JSON.subset/1` writes, including its spaces.
    await body.write('{"metadata":' + encode(metadata) + ', "data": ')
    await body.write("[" + ",".join(rows) + "]")
    await body.write("}")
    await body.finish()
    return response
