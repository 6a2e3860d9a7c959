"""Bytes of a shard set's column chunks, from pyarrow: image bytes, every other column, and the rest
of each file (leading magic, page indexes, footer, trailing magic). Prints the three numbers.

    python column_bytes.py OUT    # OUT: a build output folder

What `--images skip` should download (the "other" columns and the footers) and what it should not.
Used by benches/objstore/run.sh and tests/it/object_store.rs.
"""
import glob
import os
import sys

import pyarrow.parquet as pq

images = other = footers = 0
for path in glob.glob(sys.argv[1] + "/*/shard-*.parquet"):
    meta = pq.ParquetFile(path).metadata
    chunks_end = 4
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            col = meta.row_group(g).column(c)
            if col.path_in_schema == "images.list.element.bytes":
                images += col.total_compressed_size
            else:
                other += col.total_compressed_size
            start = col.dictionary_page_offset or col.data_page_offset
            chunks_end = max(chunks_end, start + col.total_compressed_size)
    footers += os.path.getsize(path) - chunks_end + 4
print(images, other, footers)
