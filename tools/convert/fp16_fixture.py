"""Makes test/fixtures/convert/sd15-sdpa-fp16/model.onnx: the sd15-sdpa fixture UNet in float16
(initializers, constants, casts, inputs/outputs; Resize scales stay float32 as ONNX requires), one
file, for the converters' fp16 path.   /usr/bin/python3 tools/convert/fp16_fixture.py"""
import onnx, numpy as np, sys
from onnx import numpy_helper, TensorProto
import os
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
src = os.path.join(ROOT, 'test/fixtures/sd/sd15-sdpa/unet/model.onnx')
dst = os.path.join(ROOT, 'test/fixtures/convert/sd15-sdpa-fp16/model.onnx')
os.makedirs(os.path.dirname(dst), exist_ok=True)
m = onnx.load(src)
keep = {n.input[2] for n in m.graph.node if n.op_type == 'Resize' and len(n.input) > 2}
def conv(t, name=None):
    if name in keep: return
    if t.data_type == TensorProto.FLOAT:
        a = numpy_helper.to_array(t).astype(np.float16)
        t.CopyFrom(numpy_helper.from_array(a, t.name))
for t in m.graph.initializer: conv(t, t.name)
for n in m.graph.node:
    for a in n.attribute:
        if a.type == onnx.AttributeProto.TENSOR: conv(a.t, n.output[0])
        if n.op_type == 'Cast' and a.name == 'to' and a.i == TensorProto.FLOAT: a.i = TensorProto.FLOAT16
    if n.op_type == 'ConstantOfShape':
        pass
for v in list(m.graph.input) + list(m.graph.output):
    if v.type.tensor_type.elem_type == TensorProto.FLOAT: v.type.tensor_type.elem_type = TensorProto.FLOAT16
del m.graph.value_info[:]
onnx.save(m, dst)
