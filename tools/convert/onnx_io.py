"""Thin ONNX protobuf <-> JSON bridge for `ragdiff convert` (src/convert/onnx-model.ts calls it).

  /usr/bin/python3 tools/convert/onnx_io.py read MODEL.onnx      # ModelProto as JSON on stdout
  /usr/bin/python3 tools/convert/onnx_io.py read-shared MODEL.onnx
      # the same, but every inline initializer of >= 64 bytes becomes an external-data reference to
      # its own bytes inside MODEL.onnx, so a large single-file model never crosses as base64
  /usr/bin/python3 tools/convert/onnx_io.py write OUT.onnx       # JSON on stdin -> OUT.onnx

Why a Python bridge: the shared node_modules has no protobuf library with the ONNX schema, and
Debian's python3-onnx is already on the machines that build fixtures. Only (de)serialisation lives
here; every decision about the graph is made in TypeScript.

External data is never loaded: an initializer stored outside the .onnx file stays a reference
(data_location EXTERNAL + its location/offset/length), so no weight byte is read or copied.
Inline initializers travel as base64 raw_data (the protobuf JSON mapping of bytes).
"""
import json
import sys

import onnx
from google.protobuf import json_format


def reference_inline(m, path, min_bytes=64):
    """Points large inline initializers at their identical bytes in the model file (protobuf
    stores raw_data verbatim; initializers are serialised in order, so the search moves forward)."""
    import mmap
    import os
    with open(path, 'rb') as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos = 0
        for t in m.graph.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL or len(t.raw_data) < min_bytes:
                continue
            raw = t.raw_data
            at = data.find(raw, pos)
            if at < 0:
                at = data.find(raw)
            if at < 0:
                raise ValueError(f'initializer {t.name}: its bytes are not in {path}')
            t.ClearField('raw_data')
            t.data_location = onnx.TensorProto.EXTERNAL
            del t.external_data[:]
            for k, v in (('location', os.path.basename(path)), ('offset', str(at)), ('length', str(len(raw)))):
                e = t.external_data.add()
                e.key, e.value = k, v
            pos = at + len(raw)


def read(path, shared=False):
    m = onnx.load(path, load_external_data=False)
    if shared:
        reference_inline(m, path)
    d = json_format.MessageToDict(m, preserving_proto_field_name=True)
    json.dump(d, sys.stdout, separators=(',', ':'))


def write(path):
    d = json.load(sys.stdin)
    m = onnx.ModelProto()
    json_format.ParseDict(d, m)
    data = m.SerializeToString()
    if len(data) > 2**31 - 1:
        sys.stderr.write('model graph over the 2 GB protobuf limit: its large initializers must be external data\n')
        sys.exit(3)
    with open(path, 'wb') as f:
        f.write(data)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ('read', 'read-shared', 'write'):
        sys.stderr.write(__doc__)
        sys.exit(2)
    try:
        if sys.argv[1] == 'write':
            write(sys.argv[2])
        else:
            read(sys.argv[2], shared=sys.argv[1] == 'read-shared')
    except OSError as e:
        sys.stderr.write(f'{e}\n')
        sys.exit(4)
    except json_format.ParseError as e:
        sys.stderr.write(f'invalid model JSON: {e}\n')
        sys.exit(5)
    except Exception as e:  # protobuf DecodeError and friends: the file is not an ONNX model
        sys.stderr.write(f'{type(e).__name__}: {e}\n')
        sys.exit(6)


if __name__ == '__main__':
    main()
