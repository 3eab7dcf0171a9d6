export { LocalGenerator } from './local.js';
export { modelIdOf } from './port.js';
export type { CapacityState, GenerateControls, GenerationRequest, GenerationRetrieval, Generator, GeneratorInfo } from './port.js';
