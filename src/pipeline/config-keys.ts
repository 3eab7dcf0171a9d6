/**
 * The keys diffusers and transformers publish in a bundle's JSON configs, so that a
 * key ragdiff does not know is named (a warning in the loaded bundle's info), not
 * silently ignored. Lists written from diffusers' UNet2DConditionModel and
 * AutoencoderKL constructors, transformers' CLIPTextConfig and PretrainedConfig, and
 * the published model_index.json files of SD 1.5, SD 2.1, SDXL, SD(XL)-Turbo and LCM.
 */

const COMMON = ['_class_name', '_diffusers_version', '_name_or_path', '_use_default_values'];

export const MODEL_INDEX_KEYS = new Set([
  ...COMMON, 'text_encoder', 'text_encoder_2', 'tokenizer', 'tokenizer_2', 'unet', 'vae', 'vae_decoder', 'vae_encoder',
  'scheduler', 'safety_checker', 'feature_extractor', 'image_encoder', 'image_proj', 'requires_safety_checker',
  'force_zeros_for_empty_prompt', 'add_watermarker', 'requires_aesthetics_score', 'ragdiff',
]);

export const UNET_KEYS = new Set([
  ...COMMON, 'sample_size', 'in_channels', 'out_channels', 'center_input_sample', 'flip_sin_to_cos', 'freq_shift',
  'down_block_types', 'mid_block_type', 'up_block_types', 'only_cross_attention', 'block_out_channels',
  'layers_per_block', 'downsample_padding', 'mid_block_scale_factor', 'dropout', 'act_fn', 'norm_num_groups',
  'norm_eps', 'cross_attention_dim', 'transformer_layers_per_block', 'reverse_transformer_layers_per_block',
  'encoder_hid_dim', 'encoder_hid_dim_type', 'attention_head_dim', 'num_attention_heads', 'dual_cross_attention',
  'use_linear_projection', 'class_embed_type', 'addition_embed_type', 'addition_time_embed_dim', 'num_class_embeds',
  'upcast_attention', 'resnet_time_scale_shift', 'resnet_skip_time_act', 'resnet_out_scale_factor',
  'time_embedding_type', 'time_embedding_dim', 'time_embedding_act_fn', 'timestep_post_act', 'time_cond_proj_dim',
  'conv_in_kernel', 'conv_out_kernel', 'projection_class_embeddings_input_dim', 'attention_type',
  'class_embeddings_concat', 'mid_block_only_cross_attention', 'cross_attention_norm', 'addition_embed_type_num_heads',
]);

export const VAE_KEYS = new Set([
  ...COMMON, 'in_channels', 'out_channels', 'down_block_types', 'up_block_types', 'block_out_channels',
  'layers_per_block', 'act_fn', 'latent_channels', 'norm_num_groups', 'sample_size', 'scaling_factor',
  'shift_factor', 'latents_mean', 'latents_std', 'force_upcast', 'use_quant_conv', 'use_post_quant_conv',
  'mid_block_add_attention',
]);

/** CLIPTextConfig's own fields and PretrainedConfig's, which older transformers versions write out in full. */
export const TEXT_ENCODER_KEYS = new Set([
  ...COMMON, 'vocab_size', 'hidden_size', 'intermediate_size', 'projection_dim', 'num_hidden_layers',
  'num_attention_heads', 'max_position_embeddings', 'hidden_act', 'layer_norm_eps', 'attention_dropout',
  'initializer_range', 'initializer_factor', 'pad_token_id', 'bos_token_id', 'eos_token_id', 'dropout',
  'model_type', 'architectures', 'torch_dtype', 'transformers_version',
  'return_dict', 'output_hidden_states', 'output_attentions', 'torchscript', 'use_bfloat16', 'tf_legacy_loss',
  'pruned_heads', 'tie_word_embeddings', 'chunk_size_feed_forward', 'is_encoder_decoder', 'is_decoder',
  'cross_attention_hidden_size', 'add_cross_attention', 'tie_encoder_decoder', 'max_length', 'min_length',
  'do_sample', 'early_stopping', 'num_beams', 'num_beam_groups', 'diversity_penalty', 'temperature', 'top_k',
  'top_p', 'typical_p', 'repetition_penalty', 'length_penalty', 'no_repeat_ngram_size',
  'encoder_no_repeat_ngram_size', 'bad_words_ids', 'num_return_sequences', 'output_scores',
  'return_dict_in_generate', 'forced_bos_token_id', 'forced_eos_token_id', 'remove_invalid_values',
  'exponential_decay_length_penalty', 'suppress_tokens', 'begin_suppress_tokens', 'finetuning_task', 'id2label',
  'label2id', 'tokenizer_class', 'prefix', 'sep_token_id', 'decoder_start_token_id', 'task_specific_params',
  'problem_type', 'gradient_checkpointing', 'use_cache', 'attn_implementation',
]);

/** Names every key of `config` that `known` lacks, as "<file>: unknown key <k>" warnings. */
export function unknownKeys(config: Record<string, unknown>, known: ReadonlySet<string>, file: string): string[] {
  return Object.keys(config).filter((k) => !known.has(k)).map((k) => `${file}: unknown key ${JSON.stringify(k)} (not read by ragdiff)`);
}
