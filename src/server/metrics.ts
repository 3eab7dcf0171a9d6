/**
 * Prometheus metrics (prom-client) in a registry of the server's own, so two
 * servers in one process (tests) never share counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ServerMetrics {
  registry: Registry;
  http: Histogram<'method' | 'route' | 'status'>;
  generation: Histogram<'retrieval' | 'outcome'>;
  retrieval: Histogram;
  denoiserCalls: Counter;
  screening: Counter<'stage' | 'decision'>;
  rejected: Counter<'reason'>;
}

export function createMetrics(queue: () => { running: number; queued: number; capacity: number; inflight: number }): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'ragdiff_' });
  const secs = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120];
  new Gauge({ name: 'ragdiff_queue_depth', help: 'Generations waiting for a worker', registers: [registry], collect() { this.set(queue().queued); } });
  new Gauge({ name: 'ragdiff_generations_running', help: 'Generations on a worker now', registers: [registry], collect() { this.set(queue().running); } });
  new Gauge({ name: 'ragdiff_requests_in_flight', help: 'Generation requests admitted by the server (retrieval, queue and denoising)', registers: [registry], collect() { this.set(queue().inflight); } });
  new Gauge({ name: 'ragdiff_queue_capacity', help: 'Workers plus queue slots', registers: [registry], collect() { this.set(queue().capacity); } });
  return {
    registry,
    http: new Histogram({ name: 'ragdiff_http_request_duration_seconds', help: 'HTTP request latency', labelNames: ['method', 'route', 'status'], buckets: secs, registers: [registry] }),
    generation: new Histogram({ name: 'ragdiff_generation_duration_seconds', help: 'Generation latency, queue included', labelNames: ['retrieval', 'outcome'], buckets: secs, registers: [registry] }),
    retrieval: new Histogram({ name: 'ragdiff_retrieval_duration_seconds', help: 'Retrieval (query, search, screen, plan) before denoising', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [registry] }),
    denoiserCalls: new Counter({ name: 'ragdiff_denoiser_calls_total', help: 'UNet evaluations (each covers every guidance branch and image of a batch)', registers: [registry] }),
    screening: new Counter({ name: 'ragdiff_screening_decisions_total', help: 'Safety screen decisions', labelNames: ['stage', 'decision'], registers: [registry] }),
    rejected: new Counter({ name: 'ragdiff_rejected_total', help: 'Requests refused before any work', labelNames: ['reason'], registers: [registry] }),
  };
}
