import type { Registry } from 'prom-client';

/** The sum of a metric's values whose labels include `labels`, as a scrape would show them. */
export async function sampleOf(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await registry.getSingleMetric(name)!.get();
  return metric.values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0);
}
