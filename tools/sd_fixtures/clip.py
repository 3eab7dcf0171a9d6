"""CLIP text encoders with transformers' parameter names: `CLIPTextModel`
(text_model.*) and `CLIPTextModelWithProjection` (text_model.* +
text_projection), built from a transformers text_encoder/config.json dict.

Written from transformers' published source (models/clip/modeling_clip.py:
CLIPTextEmbeddings, CLIPAttention, CLIPMLP, CLIPEncoderLayer,
CLIPTextTransformer), not copied.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def activation(name):
    if name == 'quick_gelu':
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == 'gelu':
        return F.gelu
    raise ValueError(f'hidden_act {name!r} is not modelled')


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_embedding = nn.Embedding(c['vocab_size'], c['hidden_size'])
        self.position_embedding = nn.Embedding(c['max_position_embeddings'], c['hidden_size'])
        self.register_buffer('position_ids', torch.arange(c['max_position_embeddings'])[None], persistent=False)

    def forward(self, ids):
        return self.token_embedding(ids) + self.position_embedding(self.position_ids[:, :ids.shape[1]])


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c['hidden_size']
        self.heads = c['num_attention_heads']
        self.scale = (d // self.heads) ** -0.5
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, mask):
        b, n, d = x.shape
        h = self.heads

        def split(t):
            return t.reshape(b, n, h, d // h).transpose(1, 2).reshape(b * h, n, d // h)
        q = split(self.q_proj(x) * self.scale)
        k, v = split(self.k_proj(x)), split(self.v_proj(x))
        w = torch.bmm(q, k.transpose(1, 2)).reshape(b, h, n, n) + mask
        w = w.reshape(b * h, n, n).softmax(dim=-1)
        out = torch.bmm(w, v).reshape(b, h, n, d // h).transpose(1, 2).reshape(b, n, d)
        return self.out_proj(out)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.act = activation(c.get('hidden_act', 'quick_gelu'))
        self.fc1 = nn.Linear(c['hidden_size'], c['intermediate_size'])
        self.fc2 = nn.Linear(c['intermediate_size'], c['hidden_size'])

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class EncoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        eps = c.get('layer_norm_eps', 1e-5)
        self.self_attn = SelfAttention(c)
        self.layer_norm1 = nn.LayerNorm(c['hidden_size'], eps=eps)
        self.mlp = MLP(c)
        self.layer_norm2 = nn.LayerNorm(c['hidden_size'], eps=eps)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(c) for _ in range(c['num_hidden_layers'])])


class TextTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.eos_token_id = c.get('eos_token_id', 2)
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)
        self.final_layer_norm = nn.LayerNorm(c['hidden_size'], eps=c.get('layer_norm_eps', 1e-5))

    def forward(self, ids):
        ids = ids.long()
        n = ids.shape[1]
        x = self.embeddings(ids)
        mask = torch.full((n, n), torch.finfo(x.dtype).min).triu(1)[None, None]
        hidden = [x]
        for layer in self.encoder.layers:
            x = layer(x, mask)
            hidden.append(x)
        last = self.final_layer_norm(x)
        if self.eos_token_id == 2:
            # transformers' legacy rule (configs with eos_token_id 2, as SD's are): the highest id is EOS.
            eos_pos = ids.argmax(dim=-1)
        else:
            eos_pos = (ids == self.eos_token_id).int().argmax(dim=-1)
        pooled = last[torch.arange(last.shape[0]), eos_pos]
        return last, pooled, hidden


class CLIPTextModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = dict(config)
        self.text_model = TextTransformer(config)

    def forward(self, input_ids):
        return self.text_model(input_ids)


class CLIPTextModelWithProjection(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = dict(config)
        self.text_model = TextTransformer(config)
        self.text_projection = nn.Linear(config['hidden_size'], config['projection_dim'], bias=False)

    def forward(self, input_ids):
        last, pooled, hidden = self.text_model(input_ids)
        return last, self.text_projection(pooled), hidden


class TextEncoderExport(nn.Module):
    """optimum's outputs: last_hidden_state, pooler_output | text_embeds, [hidden_states.0..N]."""

    def __init__(self, model, hidden_states):
        super().__init__()
        self.model = model
        self.hidden_states = hidden_states

    def forward(self, input_ids):
        last, pooled, hidden = self.model(input_ids)
        return (last, pooled, *hidden) if self.hidden_states else (last, pooled)
