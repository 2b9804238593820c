"""One table of bounds on what a file may declare, shared by every backend.

A data file states its own sizes: column counts, ranks, dimensions, header lengths,
frame counts, compressed and decompressed sizes. A broken or hostile file can state
anything, so every parser checks what it is told against these limits *and* against the
file's real size before it allocates or loops. What exceeds a limit is skipped with one
log line (``vfs.logutil.log_once``); the rest of the file is still served.

The numbers are documented in docs/layout.md ("Limits"); change them here only.
"""

from __future__ import annotations

from vfs.errors import Unreadable

#: array rank (HDF5 allows 32; NumPy 64)
MAX_RANK = 32
#: elements in one array a file declares (2**48: far above any real detector stack)
MAX_ELEMENTS = 1 << 48
#: columns of one SPEC scan (#N / #L / a data line)
MAX_COLUMNS = 65536
#: channels of one MCA spectrum (#@CHANN, @A lines)
MAX_CHANNELS = 1 << 20
#: one text line of a SPEC file, in bytes
MAX_LINE = 16 << 20
#: one EDF header, in bytes
MAX_HEADER = 512 * 512
#: frames of one EDF/image file, or files of one stack
MAX_FRAMES = 10_000_000
#: bytes a small rendered text (scalars, attributes, headers) may take in memory
MAX_TEXT = 64 << 20
#: bytes one decoded chunk may take (a larger declared chunk is refused, not decoded)
MAX_CHUNK_BYTES = 1 << 30
#: decompressed bytes never exceed the declared size times this factor of slack
DECOMPRESS_SLACK = 1
#: names longer than this (bytes, UTF-8) are cut; NAME_MAX of Linux is 255
MAX_NAME = 255
#: seconds a listing or open may take before it is given up
MAX_PROBE_SECONDS = 2.0
#: source data a preview picture may read, in bytes
PREVIEW_READ_BUDGET = 256 << 20
#: bytes of a zip file's central directory (about 10 million members)
MAX_ZIP_DIRECTORY = 1 << 30


def check_count(what: str, value: int, limit: int) -> int:
    """Return ``value`` when ``0 <= value <= limit``; raise :class:`Unreadable` otherwise."""
    if value < 0 or value > limit:
        raise Unreadable(f"{what} = {value} is outside 0..{limit}")
    return value


def check_shape(shape: tuple[int, ...], itemsize: int, available: int | None = None) -> tuple[int, ...]:
    """Check a declared array shape: rank, element count, and, when ``available`` (bytes
    the file really holds for it) is given, that the data fit in the file."""
    check_count("rank", len(shape), MAX_RANK)
    total = 1
    for dim in shape:
        if dim < 0:
            raise Unreadable(f"negative dimension in shape {shape}")
        total *= dim
    check_count("elements", total, MAX_ELEMENTS)
    if available is not None and total * itemsize > available:
        raise Unreadable(f"shape {shape} needs {total * itemsize} bytes; the file holds {available}")
    return shape

#: scans of one SPEC file (the index keeps one entry per scan)
MAX_SCANS = 200_000
#: MCA analysers (interleaved spectra) of one SPEC scan
MAX_ANALYSERS = 1024
#: built nodes the tree keeps; beyond, folders used least recently drop their children
#: (rebuilt on demand, with the same inode numbers)
MAX_LIVE_NODES = 100_000
#: bytes of rendered texts kept; a larger total drops the least recently read
TEXT_CACHE_BYTES = 64 << 20
#: keys remembered by the log-once table (a key forgotten may be logged once more)
MAX_LOG_KEYS = 10_000
#: distinct labels the per-object chunk-load counters keep
MAX_COUNTER_KEYS = 1024
#: arrays up to this many elements get the short .txt layout (made whole on first stat)
SHORT_TEXT_ELEMENTS = 100_000
#: bytes of short .txt texts kept in memory, all files together (evicted ones are remade)
SHORT_TEXT_CACHE = 64 << 20
#: image-like arrays (2-D and more) above this many elements keep the fixed .txt layout,
#: whose size is arithmetic: a folder of 1,000 images lists without reading them
SHORT_TEXT_IMAGE_ELEMENTS = 1024
#: files of one folder waiting to be probed again (seen incomplete); more are plain files
MAX_PENDING_PROBES = 4096
#: a filtered chunk may be stored this many bytes larger than its decoded size (the
#: headers a compressor adds to incompressible data); a larger stored size is not read
STORED_CHUNK_SLACK = 1 << 20
#: chunks of one HDF5 dataset whose file offsets are kept in memory (a table of
#: CHUNK_TABLE_ENTRY bytes each) for reads outside h5py; a dataset with more is read
#: through h5py instead
MAX_CHUNK_INDEX = 1 << 18
#: entries of a source folder whose readdir reply is kept with its listing (about 56 bytes
#: each, counted in the listing's weight); a larger folder's reply is made per listing
LISTING_CACHE_ENTRIES = 1_000_000
#: memory one built node is counted as in the bound on built nodes (measured: about 630
#: bytes for a SPEC column's files); bytes a build holds besides its nodes (a SPEC scan's
#: text, a source folder's listing) count one node per this many
NODE_BYTES = 640
#: memory of one source folder entry besides its node (the listing's name and inode maps,
#: the kept readdir reply; measured: about 620 bytes an entry in all for a plain file,
#: 1,070 for a data file, node included)
SOURCE_ENTRY_BYTES = 640
#: files whose kind (data or plain) is remembered after their folder's listing is dropped,
#: so a folder listed again opens none of its unchanged files (about 90 bytes each)
PROBE_MEMO_ENTRIES = 1 << 19
#: memory counted per indexed frame of an image file (its header text and layout;
#: measured: about 890 bytes for EDF frames of 30 motors)
FRAME_INDEX_BYTES = 900
#: memory counted per value of the per-frame metadata of an image file (one str each)
METADATA_VALUE_BYTES = 60

#: bytes of HDF5's metadata cache per open file (its default grows to 32 MiB; measured:
#: listing, chunk_iter and reads through h5py are as fast from 256 KiB)
H5_METADATA_CACHE = 256 << 10
#: bytes h5py's own chunk cache may hold per open dataset (datasets are open only while
#: the h5py lock is held; vfs keeps decoded chunks in its own cache)
H5_CHUNK_CACHE = 1 << 20
#: what one open HDF5 file may hold in memory with the caches above, counted against
#: --cache-size (measured: 3.0 MiB a file after walking 500 chunked datasets with
#: attributes, most of it HDF5's decoded metadata, about 10x its size on disk)
H5_FILE_BYTES = 4 << 20
#: open HDF5 files at most / at least, whatever --cache-size allows
H5_MAX_OPEN_FILES = 128
H5_MIN_OPEN_FILES = 4
#: the part of --cache-size given to open HDF5 files, and to chunk offset tables (1/8 each)
H5_FILES_SHARE = 8
CHUNK_TABLE_SHARE = 8
#: bytes per chunk of a chunk offset table (file offset, stored size, filter mask)
CHUNK_TABLE_ENTRY = 20
#: blocks of one chunk whose layout is walked to decode part of it (a 4 MiB chunk in
#: bitshuffle's default 8 KiB blocks has 512); more, and the chunk is decoded whole
MAX_PART_BLOCKS = 1 << 16
