/**
 * LocalGenerator: the Generator port over an in-process RagPipeline and the
 * store it searches (the embedded default, and what a queue worker runs).
 */
import { RagdiffError } from '../errors.js';
import type { RagPipeline, RagResult, ReferenceSource } from '../rag/index.js';
import { modelIdOf, type CapacityState, type GenerateControls, type GenerationRequest, type Generator, type GeneratorInfo } from './port.js';

export class LocalGenerator implements Generator {
  private readonly described: GeneratorInfo;

  /** `rag` and `store` stay their owner's: close() closes neither. */
  constructor(readonly rag: RagPipeline, readonly store?: ReferenceSource) {
    const i = rag.info;
    this.described = {
      name: i.name,
      id: modelIdOf(i),
      image: { width: i.image.width, height: i.image.height },
      neighbourSlots: i.neighbourSlots,
      defaults: { steps: i.defaults.steps, guidanceScale: i.defaults.guidanceScale },
      dir: i.dir,
    };
  }

  info(): GeneratorInfo {
    return this.described;
  }

  get modes(): string[] {
    return this.rag.modes;
  }

  capacity(): CapacityState {
    return this.rag.pipeline.queueState;
  }

  generate(request: GenerationRequest, controls: GenerateControls = {}): Promise<RagResult> {
    const { retrieval, ...rest } = request;
    if (retrieval && !this.store) {
      return Promise.reject(new RagdiffError('NO_STORE', 'this generator has no reference store; send no retrieval'));
    }
    return this.rag.generate({
      ...rest,
      ...(retrieval && this.store ? { retrieval: { ...retrieval, store: this.store } } : {}),
      ...(controls.signal ? { signal: controls.signal } : {}),
      ...(controls.onProgress ? { onProgress: controls.onProgress } : {}),
    });
  }

  async close(): Promise<void> {}
}
