"""The tiny fixture families: each is a real published configuration (keys as
published, see test/fixtures/sd-configs/) with tiny widths, plus the oracle case
(prompt, seed, steps, guidance). Key lists are the real files'; only sizes differ.
"""
TE_TINY = {  # CLIPTextModel (SD 1.5 / SDXL text_encoder: openai ViT-L/14 text tower), tiny widths
    'architectures': ['CLIPTextModel'], 'attention_dropout': 0.0, 'bos_token_id': 0, 'dropout': 0.0,
    'eos_token_id': 2, 'hidden_act': 'quick_gelu', 'hidden_size': 32, 'initializer_factor': 1.0,
    'initializer_range': 0.02, 'intermediate_size': 64, 'layer_norm_eps': 1e-05, 'max_position_embeddings': 77,
    'model_type': 'clip_text_model', 'num_attention_heads': 2, 'num_hidden_layers': 2, 'pad_token_id': 1,
    'projection_dim': 32, 'torch_dtype': 'float32', 'transformers_version': '4.25.1', 'vocab_size': None,
}
VAE_TINY = {
    '_class_name': 'AutoencoderKL', '_diffusers_version': '0.20.0', 'act_fn': 'silu',
    'block_out_channels': [4, 8, 8, 8],
    'down_block_types': ['DownEncoderBlock2D'] * 4, 'in_channels': 3, 'latent_channels': 4,
    'layers_per_block': 1, 'norm_num_groups': 4, 'out_channels': 3, 'sample_size': 64,
    'up_block_types': ['UpDecoderBlock2D'] * 4,
}
UNET_SD15_TINY = {
    '_class_name': 'UNet2DConditionModel', '_diffusers_version': '0.6.0', 'act_fn': 'silu',
    'attention_head_dim': 2, 'block_out_channels': [8, 16], 'center_input_sample': False,
    'cross_attention_dim': 32, 'down_block_types': ['CrossAttnDownBlock2D', 'DownBlock2D'],
    'downsample_padding': 1, 'flip_sin_to_cos': True, 'freq_shift': 0, 'in_channels': 4, 'layers_per_block': 1,
    'mid_block_scale_factor': 1, 'norm_eps': 1e-05, 'norm_num_groups': 4, 'out_channels': 4, 'sample_size': 8,
    'up_block_types': ['UpBlock2D', 'CrossAttnUpBlock2D'],
}


def _sd15_scheduler():
    return {'_class_name': 'PNDMScheduler', '_diffusers_version': '0.6.0', 'beta_end': 0.012,
            'beta_schedule': 'scaled_linear', 'beta_start': 0.00085, 'num_train_timesteps': 1000,
            'set_alpha_to_one': False, 'skip_prk_steps': True, 'steps_offset': 1, 'trained_betas': None,
            'clip_sample': False}


FAMILIES = {
    'sd15': {
        'describe': 'SD 1.5-shaped: CLIPTextModel (quick_gelu, EOS padding), conv proj_in/proj_out, PNDM (PLMS), epsilon, VAE 0.18215',
        'real': 'runwayml-stable-diffusion-v1-5',
        'pipeline': 'StableDiffusionPipeline',
        'text_encoders': [('text_encoder', 'tokenizer', 'CLIPTextModel', dict(TE_TINY), '<|endoftext|>')],
        'unet': dict(UNET_SD15_TINY),
        'vae': dict(VAE_TINY),
        'scheduler': _sd15_scheduler(),
        'case': {'prompt': 'a photo of an astronaut riding a horse on the moon', 'negative_prompt': None,
                 'steps': 4, 'guidance_scale': 7.5, 'seed': 42},
    },
    'sd21v': {
        'describe': 'SD 2.1-v-shaped: OpenCLIP text tower (gelu, "!" padding), linear proj_in/proj_out, per-block heads, DDIM, v_prediction',
        'real': 'stabilityai-stable-diffusion-2-1',
        'pipeline': 'StableDiffusionPipeline',
        'text_encoders': [('text_encoder', 'tokenizer', 'CLIPTextModel',
                           dict(TE_TINY, hidden_act='gelu', projection_dim=16, transformers_version='4.25.0.dev0'), '!')],
        'unet': dict(UNET_SD15_TINY, _diffusers_version='0.10.0.dev0', attention_head_dim=[1, 2], dual_cross_attention=False,
                     num_class_embeds=None, only_cross_attention=False, sample_size=12, upcast_attention=True,
                     use_linear_projection=True),
        'vae': dict(VAE_TINY, sample_size=96),
        'scheduler': {'_class_name': 'DDIMScheduler', '_diffusers_version': '0.10.0.dev0', 'beta_end': 0.012,
                      'beta_schedule': 'scaled_linear', 'beta_start': 0.00085, 'clip_sample': False,
                      'num_train_timesteps': 1000, 'prediction_type': 'v_prediction', 'set_alpha_to_one': False,
                      'skip_prk_steps': True, 'steps_offset': 1, 'trained_betas': None},
        'case': {'prompt': 'a beautiful landscape painting of a mountain river at sunset',
                 'negative_prompt': 'blurry, lowres', 'steps': 4, 'guidance_scale': 7.5, 'seed': 7},
    },
    'sdxl': {
        'describe': 'SDXL-shaped: two text encoders (penultimate hidden states concatenated; pooled text_embeds from text_encoder_2), '
                    'add_embedding with time ids, transformer_layers_per_block, EulerDiscrete (leading), VAE 0.13025',
        'real': 'stabilityai-stable-diffusion-xl-base-1.0',
        'pipeline': 'StableDiffusionXLPipeline',
        'text_encoders': [
            ('text_encoder', 'tokenizer', 'CLIPTextModel', dict(TE_TINY, transformers_version='4.32.0.dev0'), '<|endoftext|>'),
            ('text_encoder_2', 'tokenizer_2', 'CLIPTextModelWithProjection',
             dict(TE_TINY, architectures=['CLIPTextModelWithProjection'], hidden_act='gelu', hidden_size=48,
                  intermediate_size=96, num_attention_heads=4, projection_dim=48,
                  transformers_version='4.32.0.dev0'), '!'),
        ],
        'unet': {
            '_class_name': 'UNet2DConditionModel', '_diffusers_version': '0.19.0.dev0', 'act_fn': 'silu',
            'addition_embed_type': 'text_time', 'addition_embed_type_num_heads': 64, 'addition_time_embed_dim': 8,
            'attention_head_dim': [1, 2], 'block_out_channels': [8, 16], 'center_input_sample': False,
            'class_embed_type': None, 'class_embeddings_concat': False, 'conv_in_kernel': 3, 'conv_out_kernel': 3,
            'cross_attention_dim': 80, 'cross_attention_norm': None, 'down_block_types': ['DownBlock2D', 'CrossAttnDownBlock2D'],
            'downsample_padding': 1, 'dual_cross_attention': False, 'encoder_hid_dim': None, 'encoder_hid_dim_type': None,
            'flip_sin_to_cos': True, 'freq_shift': 0, 'in_channels': 4, 'layers_per_block': 1,
            'mid_block_only_cross_attention': None, 'mid_block_scale_factor': 1, 'mid_block_type': 'UNetMidBlock2DCrossAttn',
            'norm_eps': 1e-05, 'norm_num_groups': 4, 'num_attention_heads': None, 'num_class_embeds': None,
            'only_cross_attention': False, 'out_channels': 4, 'projection_class_embeddings_input_dim': 96,
            'resnet_out_scale_factor': 1.0, 'resnet_skip_time_act': False, 'resnet_time_scale_shift': 'default',
            'sample_size': 12, 'time_cond_proj_dim': None, 'time_embedding_act_fn': None, 'time_embedding_dim': None,
            'time_embedding_type': 'positional', 'timestep_post_act': None, 'transformer_layers_per_block': [1, 2],
            'up_block_types': ['CrossAttnUpBlock2D', 'UpBlock2D'], 'upcast_attention': None, 'use_linear_projection': True,
        },
        'vae': dict(VAE_TINY, _diffusers_version='0.20.0.dev0', force_upcast=True, sample_size=96, scaling_factor=0.13025),
        'scheduler': {'_class_name': 'EulerDiscreteScheduler', '_diffusers_version': '0.19.0.dev0', 'beta_end': 0.012,
                      'beta_schedule': 'scaled_linear', 'beta_start': 0.00085, 'clip_sample': False,
                      'interpolation_type': 'linear', 'num_train_timesteps': 1000, 'prediction_type': 'epsilon',
                      'sample_max_value': 1.0, 'set_alpha_to_one': False, 'skip_prk_steps': True, 'steps_offset': 1,
                      'timestep_spacing': 'leading', 'trained_betas': None, 'use_karras_sigmas': False},
        'force_zeros_for_empty_prompt': True,
        'case': {'prompt': 'a watercolor painting of a red car in the city at night', 'negative_prompt': None,
                 'steps': 4, 'guidance_scale': 5.0, 'seed': 1234},
    },
    'sdturbo': {
        'describe': 'SD-Turbo-shaped: SD 2.1-base architecture, EulerAncestralDiscrete with trailing spacing '
                    '(per-step noise), guidance 0 (no CFG branch), 2 steps',
        'real': 'stabilityai-sd-turbo',
        'pipeline': 'StableDiffusionPipeline',
        'text_encoders': [('text_encoder', 'tokenizer', 'CLIPTextModel', dict(TE_TINY, hidden_act='gelu', projection_dim=16), '!')],
        'unet': dict(UNET_SD15_TINY, attention_head_dim=[1, 2], dual_cross_attention=False, num_class_embeds=None,
                     only_cross_attention=False, sample_size=8, upcast_attention=False, use_linear_projection=True),
        'vae': dict(VAE_TINY, force_upcast=True, sample_size=64),
        'scheduler': {},
        'case': {'prompt': 'a cartoon sketch of a small yellow house by the sea', 'negative_prompt': None,
                 'steps': 2, 'guidance_scale': 0.0, 'seed': 99},
    },
    'lcm': {
        'describe': 'LCM-shaped (LCM_Dreamshaper_v7): SD 1.5 UNet with time_cond_proj_dim (guidance embedded as timestep_cond), '
                    'LCMScheduler, no CFG branch',
        'real': 'SimianLuo-LCM_Dreamshaper_v7',
        'pipeline': 'LatentConsistencyModelPipeline',
        'text_encoders': [('text_encoder', 'tokenizer', 'CLIPTextModel', dict(TE_TINY), '<|endoftext|>')],
        'unet': dict(UNET_SD15_TINY, _diffusers_version='0.22.0.dev0', time_cond_proj_dim=32),
        'vae': dict(VAE_TINY),
        'scheduler': {'_class_name': 'LCMScheduler', '_diffusers_version': '0.22.0.dev0', 'beta_end': 0.012,
                      'beta_schedule': 'scaled_linear', 'beta_start': 0.00085, 'clip_sample': False,
                      'clip_sample_range': 1.0, 'dynamic_thresholding_ratio': 0.995, 'num_train_timesteps': 1000,
                      'original_inference_steps': 50, 'prediction_type': 'epsilon', 'rescale_betas_zero_snr': False,
                      'sample_max_value': 1.0, 'set_alpha_to_one': True, 'steps_offset': 1, 'thresholding': False,
                      'timestep_scaling': 10.0, 'timestep_spacing': 'leading', 'trained_betas': None},
        'case': {'prompt': 'portrait of a smiling happy dog, oil painting, high quality', 'negative_prompt': None,
                 'steps': 4, 'guidance_scale': 8.5, 'seed': 2024},
    },
}
