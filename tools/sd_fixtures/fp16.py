"""fp16 storage and boundaries for an exported fp32 graph, the shape of an fp16
optimum export as ONNX Runtime's CPU sees it: float16 weights and float16 graph
inputs/outputs, with the arithmetic in between kept in float32 (Cast nodes after
each fp16 weight and input, before each output) so ONNX Runtime's CPU kernels run it.

Only initializers that fp16 represents exactly are stored as fp16 (the build rounds
the module's parameters to fp16 before exporting); constants the exporter folded
(e.g. the sinusoidal frequencies) stay float32, so the PyTorch oracle can reproduce
the graph exactly: fp16-rounded parameters, fp16 rounding at every model boundary.
"""
import numpy as np
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper


def convert(model):
    g = model.graph
    new_inits, casts = [], []
    for init in g.initializer:
        if init.data_type != TensorProto.FLOAT:
            new_inits.append(init)
            continue
        a = numpy_helper.to_array(init)
        h = a.astype(np.float16)
        if a.size < 2 or not np.array_equal(h.astype(np.float32), a):
            new_inits.append(init)
            continue
        half = numpy_helper.from_array(h, init.name + '_fp16')
        new_inits.append(half)
        casts.append(helper.make_node('Cast', [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + '_cast'))
    del g.initializer[:]
    g.initializer.extend(new_inits)

    head, tail = [], []
    for inp in g.input:
        if inp.type.tensor_type.elem_type == TensorProto.FLOAT:
            inp.type.tensor_type.elem_type = TensorProto.FLOAT16
            inner = inp.name + '_fp32'
            for node in g.node:
                for j, x in enumerate(node.input):
                    if x == inp.name:
                        node.input[j] = inner
            head.append(helper.make_node('Cast', [inp.name], [inner], to=TensorProto.FLOAT, name=inp.name + '_to_fp32'))
    for out in g.output:
        if out.type.tensor_type.elem_type == TensorProto.FLOAT:
            out.type.tensor_type.elem_type = TensorProto.FLOAT16
            inner = out.name + '_fp32'
            for node in g.node:
                for j, x in enumerate(node.output):
                    if x == out.name:
                        node.output[j] = inner
                for j, x in enumerate(node.input):
                    if x == out.name:  # an output read by another node (e.g. SDXL's hidden states)
                        node.input[j] = inner
            tail.append(helper.make_node('Cast', [inner], [out.name], to=TensorProto.FLOAT16, name=out.name + '_to_fp16'))
    nodes = casts + head + list(g.node) + tail
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    return model


def _round(x):
    if isinstance(x, torch.Tensor):
        return x.half().float() if x.is_floating_point() else x
    if isinstance(x, (list, tuple)):
        return type(x)(_round(v) for v in x)
    return x


class RoundIO(nn.Module):
    """A module seen through fp16 boundaries: float inputs and outputs rounded to fp16, as the fp16 export's are."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, *args, **kw):
        return _round(self.inner(*_round(args), **{k: _round(v) for k, v in kw.items()}))


class RoundVae:
    def __init__(self, vae):
        self.vae = vae

    def decode(self, z):
        return _round(self.vae.decode(_round(z)))

    def encode_mean(self, x):
        return _round(self.vae.encode_mean(_round(x)))


def oracle_view(models):
    """Rounds every parameter to fp16 (so the fp16 export stores them exactly) and returns the oracle's view."""
    with torch.no_grad():
        for m in [models['unet'], models['vae'], *models['text_encoders']]:
            for p in m.parameters():
                p.copy_(p.half().float())
    return {'unet': RoundIO(models['unet']), 'vae': RoundVae(models['vae']),
            'text_encoders': [RoundIO(t) for t in models['text_encoders']]}
